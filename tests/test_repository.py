"""Repository rules: clean pages, a complete nav, valid workflows, honest READMEs."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.ipynb"))


def _code_cells(page: Path) -> list[dict]:
    return [c for c in json.loads(page.read_text())["cells"] if c["cell_type"] == "code"]


def _nav_files(nav: list) -> list[str]:
    files = []
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            files += _nav_files(value) if isinstance(value, list) else [value]
    return files


def _mkdocs_config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use !!python/name tags (pymdownx); they do not matter here.
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


def test_there_are_pages() -> None:
    assert len(PAGES) >= 8, [p.name for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_committed_pages_carry_no_outputs(page: Path) -> None:
    for cell in _code_cells(page):
        assert cell.get("outputs") == [], f"{page.name}: a code cell has outputs; strip them"
        assert cell.get("execution_count") is None, f"{page.name}: a cell has an execution count"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_page_states_its_assets_and_proves_its_claims(page: Path) -> None:
    sources = ["".join(cell["source"]) for cell in _code_cells(page)]
    assert "tutorial.setup()" in sources[0], f"{page.name}: setup cell first"
    asserts = sum(
        isinstance(node, ast.Assert) for source in sources for node in ast.walk(ast.parse(source))
    )
    assert asserts >= 3, f"{page.name} has {asserts} asserts; every claim needs one"
    text = "".join("".join(c["source"]) for c in json.loads(page.read_text())["cells"])
    assert "## What we proved" in text, f"{page.name} needs a recap"


def test_nav_lists_every_page_once() -> None:
    listed = _nav_files(_mkdocs_config()["nav"])
    assert len(listed) == len(set(listed))
    documents = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*")}
    documents = {d for d in documents if d.endswith((".md", ".ipynb"))}
    assert documents | {"execution-report.md"} == set(listed)


def test_the_site_never_executes_and_never_publishes_errors() -> None:
    plugins = _mkdocs_config()["plugins"]
    (jupyter,) = [
        p["mkdocs-jupyter"] for p in plugins if isinstance(p, dict) and "mkdocs-jupyter" in p
    ]
    assert jupyter["execute"] is False
    assert jupyter["allow_errors"] is False


def test_github_workflows_are_valid() -> None:
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert {w.name for w in workflows} == {"pages.yml", "test.yml"}
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is a test dependency"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", *map(str, workflows)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_pages_workflow_publishes_the_tested_run() -> None:
    steps = yaml.safe_load((ROOT / ".github/workflows/pages.yml").read_text())["jobs"]["build"][
        "steps"
    ]
    runs = [step.get("run") for step in steps if step.get("run")]
    assert runs.index("make test") < runs.index("make site")
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert "actions/upload-pages-artifact" in uses


def test_readme_quick_start_is_word_for_word() -> None:
    readme = (ROOT / "README.md").read_text()
    serve = (
        "make serve   # creates .venv, installs, executes the pages, builds the site, "
        "serves it on http://127.0.0.1:8000"
    )
    test = (
        "make test    # creates .venv if missing, runs the whole test suite "
        "(unit tests + every page via nbmake)"
    )
    assert f"    {serve}\n    {test}\n" in readme
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call the README's test command"


def test_import_transferlens_imports_neither_fastai_nor_torchvision() -> None:
    code = (
        "import sys, transferlens\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastai', 'torchvision'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_are_exported_alphabetically() -> None:
    import transferlens

    assert transferlens.__all__ == sorted(transferlens.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(transferlens, name) for name in transferlens.__all__)


def test_api_reference_documents_every_public_name() -> None:
    import transferlens

    documented = set(
        re.findall(r"^::: transferlens\.(\w+)$", (ROOT / "docs/api.md").read_text(), re.M)
    )
    assert documented == set(transferlens.__all__)


def test_tutorial_reference_documents_every_tutorial_name() -> None:
    from transferlens import tutorial

    assert tutorial.__all__ == sorted(tutorial.__all__, key=lambda n: (not n.isupper(), n))
    reference = (ROOT / "docs/tutorial-api.md").read_text()
    documented = set(re.findall(r"^::: transferlens\.tutorial\.(\w+)$", reference, re.M))
    assert documented == set(tutorial.__all__)


def test_importing_transferlens_loads_no_tutorial_machinery_fastai_or_torchvision() -> None:
    """The core runs wherever torch does: it adds no fastai, no torchvision, no tutorial module."""
    code = (
        "import sys, torch\n"
        "before = set(sys.modules)\n"
        "import transferlens\n"
        "added = set(sys.modules) - before\n"
        "print(sorted(m for m in added if m.split('.')[0] in ('fastai', 'torchvision', 'fcntl')"
        " or m.startswith('transferlens.tutorial')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_core_modules_import_nothing_posix_only_at_module_level() -> None:
    """torch itself imports fcntl on Linux, so the runtime check above cannot see it: read the
    sources. Only transferlens.tutorial (the site's machinery) may lock files."""
    package = ROOT / "src/transferlens"
    core = [p for p in package.rglob("*.py") if "tutorial" not in p.relative_to(package).parts]
    assert core, "no core modules found"
    for path in core:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("fcntl", "msvcrt", "fastai", "torchvision"), (
                    f"{path.relative_to(package)} imports {name} at module level"
                )


def _workflow_steps() -> list[tuple[str, str, dict]]:
    """(workflow file, job, step) for every step of every workflow."""
    steps = []
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for job_name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            steps += [(workflow.name, job_name, step) for step in job.get("steps", [])]
    return steps


def test_every_action_is_pinned_to_a_full_commit_with_its_version() -> None:
    uses = re.findall(
        r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$",
        "".join(w.read_text() for w in (ROOT / ".github" / "workflows").glob("*.yml")),
        re.M,
    )
    assert len(uses) >= 6 and len(uses) == sum("uses" in s for *_, s in _workflow_steps())
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), (
            f"{action}: pin to the release's full 40-hex commit (see shared/github-actions.md)"
        )
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", comment), f"{action}: add '# vX.Y.Z'"


def test_workflows_keep_credentials_and_permissions_minimal() -> None:
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        config = yaml.safe_load(workflow.read_text())
        assert config["permissions"] == {}, f"{workflow.name}: no default permissions"
        for name, job in config["jobs"].items():
            assert job.get("permissions"), f"{workflow.name}: job {name} states its permissions"
            writes = {scope for scope, level in job["permissions"].items() if level == "write"}
            assert writes <= {"pages", "id-token"} and (not writes or name == "deploy")
    steps = [step for *_, step in _workflow_steps()]
    checkouts = [s for s in steps if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_dependabot_updates_actions_and_pip() -> None:
    config = ROOT / ".github" / "dependabot.yml"
    ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(config.read_text())["updates"]}
    assert ecosystems == {"github-actions", "pip"}
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is a test dependency"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.dependabot", str(config)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
