"""The package as a user gets it: built, installed beside torch alone, used without fastai.

``python -m build`` makes an sdist and, from it, a wheel (so the sdist is complete). The wheel is
installed, with its ``[cli,vision]`` extras, into a new venv that has torch and torchvision and
nothing else of this project's environment: no fastai, fastcore or timm, no transferlens source
tree. There a user's session runs: ``import transferlens``, the plain-PyTorch recipe, and the
``transferlens`` command.

Kept cheap without checking less:

- torch is a multi-gigabyte CUDA build, so the clean venv does not install it again: its
  site-packages gets one ``.pth`` line naming a folder of symlinks to exactly torch, torchvision
  and their runtime requirements (computed from their metadata), dist-info included. pip then
  sees them as installed, and the wheel is installed with its dependencies resolved by pip, with
  no index and no config (nothing can be downloaded), so a missing or wrong dependency fails the
  install.
- The build, the venv and the user's session happen once per test run, under a file lock, and
  pytest-xdist's workers share the result instead of each building its own.
- The session is one Python process (each process pays ``import torch``, about a second): it
  reports each step in JSON, with that step's output and traceback, so a failing step fails
  its own test. One more process runs the installed ``transferlens`` launcher itself.
"""

from __future__ import annotations

import email.message
import email.parser
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import transferlens

ROOT = Path(__file__).resolve().parents[1]
# What a build needs from the checkout (a copy, so the build writes nothing into the checkout).
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "src"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The extras a user installs; the others (test, docs, browser) are for developing this repository.
USER_EXTRAS = ("vision", "cli")
INSPECT = ["inspect", "resnet18", "--format", "json"]


def _run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def _requirement_closure(*names: str) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` need at run time, themselves included.

    A requirement's extras count (torch needs ``cuda-toolkit[cublas,...]``); the roots' own
    extras do not.
    """
    found: dict[str, importlib.metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        key = (canonicalize_name(name), extra)
        if key in done:
            continue
        done.add(key)
        dist = found.setdefault(key[0], importlib.metadata.distribution(key[0]))
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, e) for e in ("", *requirement.extras)]
    return list(found.values())


def _top_level_entries(dist: importlib.metadata.Distribution) -> set[str]:
    """The names a distribution put into site-packages (packages, modules, its dist-info)."""
    entries = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first not in ("..", "__pycache__") and not first.endswith(".pth"):
            entries.add(first)
    return entries


def _clean_env(env_dir: Path) -> dict[str, str]:
    """The environment of a user's shell in that venv: none of this checkout's paths."""
    skipped = ("PYTHON", "VIRTUAL_ENV", "PIP_")  # PIP_*: this machine's local wheel folders
    env = {k: v for k, v in os.environ.items() if not k.startswith(skipped)}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _build(out: Path, work: Path) -> None:
    """The sdist and the wheel, built by ``python -m build`` from a copy of the sources."""
    project = work / "project"
    project.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, project / name, ignore=ignore)
        else:
            shutil.copy2(source, project / name)
    # --no-isolation: build with this venv's setuptools (the tests run offline, too)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project])


def _clean_venv(env_dir: Path, linked: Path, wheel: Path) -> None:
    """A new venv with only torch and torchvision (linked), and the wheel installed."""
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_packages = Path(_run([env_dir / "bin/python", "-c", purelib]).stdout.strip())
    linked.mkdir()
    for dist in _requirement_closure("torch", "torchvision"):
        for entry in _top_level_entries(dist):
            target = Path(dist.locate_file(entry))
            if target.exists() and not (linked / entry).exists():
                (linked / entry).symlink_to(target)
    (site_packages / "torch-only.pth").write_text(f"{linked}\n")
    env = {**_clean_env(env_dir), "PIP_CONFIG_FILE": os.devnull}
    extras = ",".join(USER_EXTRAS)
    _run(
        [sys.executable, "-m", "pip", "--python", env_dir / "bin/python", "install", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check",
         f"transferlens[{extras}] @ {wheel.as_uri()}"],
        env=env,
    )  # fmt: skip


RECIPE = """
import sys
import torch
from torch import nn
from torchvision import models
import transferlens as tl

torch.manual_seed(0)
model = tl.create_vision_model(models.resnet18(weights=None), n_out=3)
groups = tl.param_groups(model, "resnet18")
tl.freeze(model, groups)
lrs = tl.discriminative_lrs(slice(1e-5, 1e-3), len(groups))
optimizer = torch.optim.AdamW(
    [{"params": g, "lr": lr} for g, lr in zip(groups, lrs)], weight_decay=0.01
)
body_before = model[0][0].weight.detach().clone()
head_before = model[1][-1].weight.detach().clone()
x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
model.train()
loss = nn.functional.cross_entropy(model(x), y)
loss.backward()
optimizer.step()
assert torch.equal(model[0][0].weight, body_before)  # frozen body: unchanged
assert not torch.equal(model[1][-1].weight, head_before)  # the head trained
assert "fastai" not in sys.modules
print(len(groups), [f"{lr:.0e}" for lr in lrs], torch.isfinite(loss).item())
"""

# A user's session in the clean venv, in the order a user meets it. Each step records what it
# printed and, if it raised, its traceback; the whole report is the last line of stdout.
SESSION = """
import contextlib, importlib.metadata, importlib.util, io, json, runpy, sys, traceback

report = {}

def step(name, action):
    out, err = io.StringIO(), io.StringIO()
    result = {"value": None, "error": None}
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result["value"] = action()
        except SystemExit as exit_:
            result["value"] = {"exit": exit_.code}
        except BaseException:
            result["error"] = traceback.format_exc()
    report[name] = {**result, "stdout": out.getvalue(), "stderr": err.getvalue()}

def found():
    names = ("torch", "torchvision", "fastai", "fastcore", "timm")
    return {n: importlib.util.find_spec(n) is not None for n in names}

def import_():
    import transferlens
    return {"file": transferlens.__file__, "version": transferlens.__version__,
            "metadata": importlib.metadata.version("transferlens"),
            "imported": sorted({m.split(".")[0] for m in sys.modules}
                               & {"fastai", "fastcore", "timm", "torchvision"})}

def command(argv):  # the console script's entry point, called as its launcher calls it
    def run():
        (entry_point,) = importlib.metadata.entry_points(
            group="console_scripts", name="transferlens")
        sys.argv = ["transferlens", *argv]
        return {"exit": entry_point.load()()}
    return run

def module_help():  # python -m transferlens --help
    sys.argv = ["transferlens", "--help"]
    runpy.run_module("transferlens", run_name="__main__", alter_sys=True)

step("found", found)
step("import", import_)
step("inspect", command(INSPECT))
step("module_help", module_help)
step("recipe", lambda: exec(compile(RECIPE, "<recipe>", "exec"), {"__name__": "__main__"}))
print(json.dumps(report))
"""


@dataclass(frozen=True)
class Installed:
    """What the once-per-run fixture made: the built files, the venv, what ran in it."""

    dist: Path
    venv: Path
    session: dict[str, dict]
    launcher_help: dict[str, object]


def _shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's temporary folder, the same for every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _make(root: Path) -> dict[str, object]:
    """Build, install and run everything under ``root``; return what the tests read."""
    (root / "dist").mkdir(parents=True)
    _build(root / "dist", root)
    (wheel,) = (root / "dist").glob("*.whl")
    venv = root / "venv"
    _clean_venv(venv, root / "torch-only", wheel)
    cwd = root / "cwd"  # not the checkout: `import transferlens` must find the venv's copy
    cwd.mkdir()
    # The launcher runs beside the session: a second core is often idle here (another xdist
    # worker may be waiting for this fixture).
    with subprocess.Popen(
        [venv / "bin/transferlens", "--help"], cwd=cwd, env=_clean_env(venv),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as launcher:  # fmt: skip
        try:
            code = f"RECIPE = {RECIPE!r}\nINSPECT = {INSPECT!r}\n{SESSION}"
            session = _run([venv / "bin/python", "-c", code], cwd=cwd, env=_clean_env(venv))
            stdout, stderr = launcher.communicate(timeout=300)
        finally:
            launcher.kill()  # a no-op once it has exited
    return {
        "session": json.loads(session.stdout.splitlines()[-1]),
        "launcher_help": {"returncode": launcher.returncode, "stdout": stdout, "stderr": stderr},
    }


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Built, installed and used once per run; a failed attempt leaves nothing to reuse."""
    root = _shared_tmp(tmp_path_factory) / "packaging"
    report = root / "report.json"
    with FileLock(f"{root}.lock"):
        if not report.exists():
            shutil.rmtree(root, ignore_errors=True)
            report_text = json.dumps(_make(root))
            report.write_text(report_text)
    made = json.loads(report.read_text())
    return Installed(root / "dist", root / "venv", made["session"], made["launcher_help"])


def _step(installed: Installed, name: str) -> dict:
    step = installed.session[name]
    assert step["error"] is None, f"{name} raised in the clean venv:\n{step['error']}"
    return step


def _wheel_names(installed: Installed) -> set[str]:
    (wheel,) = installed.dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _wheel_text(installed: Installed, name: str) -> str:
    (wheel,) = installed.dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(f"transferlens-{transferlens.__version__}.dist-info/{name}").decode()


def _source_modules(installed: Installed) -> set[str]:
    """Every module of the sources the build was given (a copy: the checkout may change)."""
    src = installed.dist.parent / "project" / "src"
    return {
        p.relative_to(src).as_posix()
        for p in (src / "transferlens").rglob("*.py")
        if "__pycache__" not in p.parts
    }


def _requires(metadata: email.message.Message, extra: str) -> list[Requirement]:
    """The wheel's requirements that ``extra`` adds ("": those of the library itself)."""

    def wanted(requirement: Requirement, extra: str) -> bool:
        if requirement.marker is None:
            return not extra
        return requirement.marker.evaluate({"extra": extra})

    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    return [r for r in requirements if wanted(r, extra) and not (extra and wanted(r, ""))]


def _lower_bounds_only(specifiers: SpecifierSet) -> bool:
    return all(s.operator == ">=" for s in specifiers)


def test_build_makes_a_wheel_and_an_sdist_of_the_whole_package(installed: Installed) -> None:
    version = transferlens.__version__
    assert sorted(p.name for p in installed.dist.iterdir()) == [
        f"transferlens-{version}-py3-none-any.whl",
        f"transferlens-{version}.tar.gz",
    ]
    info = f"transferlens-{version}.dist-info"
    names = _wheel_names(installed)
    modules = _source_modules(installed)
    assert "transferlens/__init__.py" in modules and modules <= names, sorted(modules - names)
    assert {n.split("/")[0] for n in names} == {"transferlens", info}  # no tests, tools, docs
    assert f"{info}/licenses/LICENSE" in names
    with tarfile.open(installed.dist / f"transferlens-{version}.tar.gz") as sdist:
        inside = {n.removeprefix(f"transferlens-{version}/") for n in sdist.getnames()}
    assert {"pyproject.toml", "README.md", "LICENSE"} <= inside
    assert {f"src/{m}" for m in modules} <= inside


def test_the_wheel_declares_the_command_of_pyproject(installed: Installed) -> None:
    text = _wheel_text(installed, "entry_points.txt")
    scripts = dict(re.findall(r"^(\S+) = (\S+)$", text.split("[console_scripts]")[1], re.M))
    assert scripts == PYPROJECT["project"]["scripts"]


def test_the_wheel_metadata_states_lower_bounds_only(installed: Installed) -> None:
    """A cap in a library's metadata locks out every user with a newer torch or Python."""
    metadata = email.parser.Parser().parsestr(_wheel_text(installed, "METADATA"))
    python = metadata["Requires-Python"]
    assert _lower_bounds_only(SpecifierSet(python)), f"Requires-Python: {python}"
    assert set(USER_EXTRAS) <= set(metadata.get_all("Provides-Extra"))
    library = [r.name for r in _requires(metadata, "")]
    assert library == ["torch"], f"the library itself needs only torch, not {library}"
    for extra in ("", *USER_EXTRAS):
        for requirement in _requires(metadata, extra):
            assert _lower_bounds_only(requirement.specifier), f"[{extra}] {requirement}"
    everything = [Requirement(line) for line in metadata.get_all("Requires-Dist")]
    capped = [r for r in everything if r.name in ("torch", "torchvision")
              and not _lower_bounds_only(r.specifier)]  # fmt: skip
    assert capped == [], "no extra may cap torch or torchvision, not even a development one"


def test_the_clean_venv_has_torch_and_torchvision_not_fastai(installed: Installed) -> None:
    assert _step(installed, "found")["value"] == {
        "torch": True, "torchvision": True, "fastai": False, "fastcore": False, "timm": False
    }  # fmt: skip


def test_the_installed_wheel_imports_without_fastai(installed: Installed) -> None:
    step = _step(installed, "import")
    report = step["value"]
    assert Path(report["file"]).is_relative_to(installed.venv)  # the wheel's copy, not ours
    assert report["version"] == report["metadata"] == transferlens.__version__
    assert report["imported"] == []  # not even torchvision
    assert step["stdout"] == step["stderr"] == ""


def test_the_command_runs_from_the_wheel(
    installed: Installed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    step = _step(installed, "inspect")
    assert step["value"] == {"exit": 0} and step["stderr"] == ""
    assert json.loads(step["stdout"])["arch"] == "resnet18"
    # this checkout's entry point (named in pyproject), called as its launcher calls it
    (value,) = PYPROJECT["project"]["scripts"].values()
    main = importlib.metadata.EntryPoint("transferlens", value, "console_scripts").load()
    monkeypatch.setattr(sys, "argv", ["transferlens", *INSPECT])
    assert main() == 0
    assert json.loads(step["stdout"]) == json.loads(capsys.readouterr().out)  # as the checkout's


def test_the_installed_launcher_and_python_m_answer_help(installed: Installed) -> None:
    launcher = installed.launcher_help
    assert launcher["returncode"] == 0 and launcher["stderr"] == "", launcher
    assert str(launcher["stdout"]).startswith("usage: transferlens")
    step = _step(installed, "module_help")
    assert step["value"] == {"exit": 0} and step["stderr"] == ""
    assert step["stdout"] == launcher["stdout"]


def test_the_plain_pytorch_recipe_runs_from_the_wheel(installed: Installed) -> None:
    step = _step(installed, "recipe")
    assert step["stdout"].splitlines() == ["3 ['1e-05', '1e-04', '1e-03'] True"]
    assert step["stderr"] == ""


def test_the_version_has_one_source() -> None:
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "transferlens.__version__"
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+", transferlens.__version__)
    assert importlib.metadata.version("transferlens") == transferlens.__version__
