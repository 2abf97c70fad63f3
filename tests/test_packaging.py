"""The package as a user gets it: built, installed into a clean venv, used without fastai.

``python -m build`` makes an sdist and, from it, a wheel. The wheel is installed into a new venv
that has torch and torchvision and nothing else of this project's environment: no fastai, no
transferlens source tree. There the CLI and the plain-PyTorch recipe run.

torch here is a multi-gigabyte CUDA build installed from local files, so the clean venv does not
install it again: its site-packages gets one ``.pth`` line naming a folder of symlinks to exactly
torch, torchvision and their runtime requirements (computed from their metadata), dist-info
included. pip then sees them as installed, and the wheel is installed with its dependencies
resolved by pip, with no index and no config (nothing can be downloaded), so a missing or wrong
dependency fails the install.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import transferlens
from transferlens.inspector import cli

ROOT = Path(__file__).resolve().parents[1]
# What a build needs from the checkout (a copy, so the build writes nothing into the checkout).
SOURCES = ["pyproject.toml", "README.md", "src"]


def _run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built by ``python -m build`` from a copy of the sources."""
    project = tmp_path_factory.mktemp("project")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, project / name, ignore=ignore)
        else:
            shutil.copy2(source, project / name)
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with this venv's setuptools (the tests run offline, too)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project])
    return out


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


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Path:
    """A new venv with only torch and torchvision (linked), and the wheel installed with [cli]."""
    root = tmp_path_factory.mktemp("clean")
    env_dir = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir])
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_packages = Path(_run([env_dir / "bin/python", "-c", purelib]).stdout.strip())
    linked = root / "torch-only"
    linked.mkdir()
    for dist_ in _requirement_closure("torch", "torchvision"):
        for entry in _top_level_entries(dist_):
            target = Path(dist_.locate_file(entry))
            if target.exists() and not (linked / entry).exists():
                (linked / entry).symlink_to(target)
    (site_packages / "torch-only.pth").write_text(f"{linked}\n")
    (wheel,) = dist.glob("*.whl")
    env = {**_clean_env(env_dir), "PIP_CONFIG_FILE": os.devnull}
    _run(
        [sys.executable, "-m", "pip", "--python", env_dir / "bin/python", "install", "--no-index",
         "--no-cache-dir", "--disable-pip-version-check", f"transferlens[cli] @ {wheel.as_uri()}"],
        env=env,
    )  # fmt: skip
    return env_dir


def _clean_env(env_dir: Path) -> dict[str, str]:
    """The environment of a user's shell in that venv: none of this checkout's paths."""
    skipped = ("PYTHON", "VIRTUAL_ENV", "PIP_")  # PIP_*: this machine's local wheel folders
    env = {k: v for k, v in os.environ.items() if not k.startswith(skipped)}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _python(env_dir: Path, code: str, cwd: Path) -> str:
    return _run([env_dir / "bin/python", "-c", code], cwd=cwd, env=_clean_env(env_dir)).stdout


def test_build_makes_a_wheel_and_an_sdist(dist: Path) -> None:
    version = transferlens.__version__
    assert sorted(p.name for p in dist.iterdir()) == [
        f"transferlens-{version}-py3-none-any.whl",
        f"transferlens-{version}.tar.gz",
    ]
    names = zipfile.ZipFile(dist / f"transferlens-{version}-py3-none-any.whl").namelist()
    assert "transferlens/__init__.py" in names and "transferlens/tutorial/__init__.py" in names
    assert not [n for n in names if n.startswith(("tests/", "tools/", "docs/"))]
    info = f"transferlens-{version}.dist-info"
    entry_points = zipfile.ZipFile(dist / f"transferlens-{version}-py3-none-any.whl").read(
        f"{info}/entry_points.txt"
    )
    assert b"transferlens = transferlens.inspector.cli:main" in entry_points


def test_the_clean_venv_has_torch_and_torchvision_not_fastai(venv: Path, tmp_path: Path) -> None:
    out = _python(
        venv,
        "import importlib.util as u, json\n"
        "print(json.dumps({n: u.find_spec(n) is not None\n"
        "                  for n in ('torch', 'torchvision', 'fastai', 'fastcore', 'timm')}))",
        tmp_path,
    )
    assert json.loads(out) == {
        "torch": True, "torchvision": True, "fastai": False, "fastcore": False, "timm": False
    }  # fmt: skip


def test_the_installed_wheel_imports_without_fastai(venv: Path, tmp_path: Path) -> None:
    out = _python(
        venv,
        "import importlib.metadata, json, sys, transferlens\n"
        "print(json.dumps({'file': transferlens.__file__, 'version': transferlens.__version__,\n"
        "  'metadata': importlib.metadata.version('transferlens'),\n"
        "  'imported': sorted({m.split('.')[0] for m in sys.modules}\n"
        "                     & {'fastai', 'torchvision'})}))",
        tmp_path,
    )
    report = json.loads(out)
    assert Path(report["file"]).is_relative_to(venv)  # the wheel's copy, not this checkout's
    assert report["version"] == report["metadata"] == transferlens.__version__
    assert report["imported"] == []


def test_the_cli_runs_from_the_wheel(
    venv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [venv / "bin/transferlens", "inspect", "resnet18", "--format", "json"]
    result = _run(command, cwd=tmp_path, env=_clean_env(venv))
    assert result.stderr == ""
    assert cli.main(["inspect", "resnet18", "--format", "json"]) == 0
    assert json.loads(result.stdout) == json.loads(capsys.readouterr().out)  # as the checkout's
    assert json.loads(result.stdout)["arch"] == "resnet18"


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


def test_the_plain_pytorch_recipe_runs_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    out = _python(venv, RECIPE, tmp_path)
    assert out.splitlines() == ["3 ['1e-05', '1e-04', '1e-03'] True"]


def test_the_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "transferlens.__version__"
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+", transferlens.__version__)
    assert importlib.metadata.version("transferlens") == transferlens.__version__
