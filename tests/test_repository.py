"""Repository rules: clean pages, a complete nav, valid workflows, honest READMEs."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

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


# Releases PyPI marks as yanked (pip never picks them for a range, so no row may pin them).
KNOWN_YANKED = {"fastai": {"2.8.0"}}  # "Compatibility issue"
# Development extras that keep an upper bound, each with its reason beside it in pyproject.toml.
DEV_CAPS_WITH_A_REASON = {"fastai", "mkdocs", "nbmake"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(*extras: str) -> list[Requirement]:
    """pyproject.toml's requirements: the library's and those of ``extras`` (all if none)."""
    project = _project()
    optional = project["optional-dependencies"]
    lines = project["dependencies"] + [line for e in extras or optional for line in optional[e]]
    return [Requirement(line) for line in lines]


def _lower_bounds_only(specifier: SpecifierSet) -> bool:
    return all(s.operator == ">=" for s in specifier)


def _pins(lines: list[str]) -> dict[str, Version]:
    pins = {}
    for line in lines:
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", line)
        assert match, f"{line!r}: pin one release, name==version"
        name = canonicalize_name(match[1])
        assert name not in pins, f"{name} pinned twice"
        pins[name] = Version(match[2])
    return pins


def _dev_constraints() -> dict[str, Version]:
    text = (ROOT / "constraints/dev.txt").read_text()
    return _pins([line for line in text.splitlines() if line and not line.startswith("#")])


def _test_matrix() -> dict[str, dict]:
    workflow = yaml.safe_load((ROOT / ".github/workflows/test.yml").read_text())
    return {row["deps"]: row for row in workflow["jobs"]["test"]["strategy"]["matrix"]["include"]}


def test_metadata_caps_neither_python_nor_torch() -> None:
    """Users install transferlens beside their own torch: its metadata states lower bounds only."""
    python = SpecifierSet(_project()["requires-python"])
    assert _lower_bounds_only(python), f"requires-python = {python}: no upper bound"
    for requirement in _requirements("vision", "cli"):
        assert _lower_bounds_only(requirement.specifier), f"{requirement}: lower bounds only"
    for requirement in _requirements():
        if requirement.name in ("torch", "torchvision"):
            assert _lower_bounds_only(requirement.specifier), f"{requirement}: not even for tests"
    capped = {r.name for r in _requirements("test", "docs", "browser")
              if not _lower_bounds_only(r.specifier)}  # fmt: skip
    assert capped <= DEV_CAPS_WITH_A_REASON, (
        f"{capped - DEV_CAPS_WITH_A_REASON}: exact versions go in constraints/dev.txt; a cap "
        "needs its reason in pyproject.toml and a place in DEV_CAPS_WITH_A_REASON"
    )


def test_dev_constraints_pin_every_package_within_the_metadata() -> None:
    pins = _dev_constraints()
    assert {"torch", "torchvision", "fastai", "pip", "setuptools"} <= set(pins)
    assert "transferlens" not in pins  # the checkout itself is installed editable
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is required but constraints/dev.txt does not pin it"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]}: {requirement}"
    for name, versions in KNOWN_YANKED.items():
        assert str(pins[name]) not in versions, f"{name}=={pins[name]} is yanked"


def test_the_oldest_row_pins_the_lower_bounds_and_the_newest_row_the_dev_constraints() -> None:
    rows = _test_matrix()
    assert set(rows) == {"newest", "oldest"}
    assert rows["newest"]["pins"] == ""  # make venv alone: constraints/dev.txt
    oldest = _pins(rows["oldest"]["pins"].split())
    assert set(oldest) == {"torch", "torchvision", "fastai"}
    requirements = _requirements()
    for name, version in oldest.items():
        assert str(version) not in KNOWN_YANKED.get(name, set()), f"{name}=={version} is yanked"
        specifiers = [r.specifier for r in requirements if canonicalize_name(r.name) == name]
        assert specifiers and all(s.contains(version) for s in specifiers), (name, specifiers)
        bound = max(Version(s.version) for spec in specifiers for s in spec if s.operator == ">=")
        assert version == bound, f"{name}=={version}: the oldest row pins the lower bound"
    python = SpecifierSet(_project()["requires-python"])
    python_bound = max(Version(s.version) for s in python if s.operator == ">=")
    assert Version(rows["oldest"]["python"]) == python_bound, f"oldest Python: {python_bound}"
    (install,) = [s for *_, s in _workflow_steps() if s.get("name") == "Install"]
    assert "pip install" not in install["run"], "install the pins with make venv, not after it"
    assert install["env"]["PINS"] == "${{ matrix.pins }}" and "CONSTRAINTS=" in install["run"]


def _make_venv_dry_run(venv: Path, *variables: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    return subprocess.run(
        ["make", "-n", f"VENV={venv}", *variables, "venv"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_make_venv_installs_the_dev_constraints_and_reinstalls_when_they_change(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    installed = venv / ".installed"
    installed.touch()
    os.utime(installed, (0, 0))  # older than everything: make venv installs
    assert '-c constraints/dev.txt -e ".[test,docs,browser]"' in _make_venv_dry_run(venv)
    constraints = tmp_path / "pins.txt"
    constraints.touch()
    now = time.time()
    os.utime(installed, (now + 3600, now + 3600))  # newer than pyproject.toml and the pins
    assert "pip install" not in _make_venv_dry_run(venv, f"CONSTRAINTS={constraints}")
    os.utime(constraints, (now + 7200, now + 7200))  # the pins changed since
    out = _make_venv_dry_run(venv, f"CONSTRAINTS={constraints}")
    assert f'-c {constraints} -e ".[test,docs,browser]"' in out


def test_readme_versions_are_what_the_workflow_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Versions\n") :].split("\n## ")[0]
    table = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]
    header, rows = table[0], {row[0].split()[0].lower(): row for row in table[1:]}
    newest = header.index("Tested, newest (`constraints/dev.txt`)")
    oldest = header.index("Tested, oldest (GitHub workflow)")
    matrix = _test_matrix()
    dev, pins = _dev_constraints(), _pins(matrix["oldest"]["pins"].split())
    for name in ("torch", "torchvision", "fastai"):
        assert rows[name][newest] == str(dev[name]), f"README: {name} newest is {dev[name]}"
        assert rows[name][oldest] == str(pins[name]), f"README: {name} oldest is {pins[name]}"
    assert rows["python"][newest] == matrix["newest"]["python"]
    assert rows["python"][oldest] == matrix["oldest"]["python"]


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
