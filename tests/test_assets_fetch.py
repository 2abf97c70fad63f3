"""`real` mode on a cold machine: each real asset is downloaded once, before the pages run.

A local HTTP server on 127.0.0.1 stands in for the download hosts: it serves a generated
Pets-format archive and a resnet18 weights file, and counts the requests. A ``sitecustomize``
module, on the ``PYTHONPATH`` of the test session only (so in its controlling process, its
pytest-xdist workers and their kernels alike), points fastai's ``URLs.PETS`` and torchvision's
resnet18 weights URL at it as they are imported.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from transferlens.tutorial import AssetError, fetch_real_assets

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("Bengal_1.jpg", "Bengal_2.jpg", "pug_1.jpg", "pug_2.jpg")

SITECUSTOMIZE = '''
"""Test only: fastai's Pets URL and torchvision's resnet18 weights URL point at a local server."""
import importlib.machinery
import os
import sys

MIRROR = os.environ["TRANSFERLENS_TEST_MIRROR"]


def _fastai(module):
    module.URLs.PETS = MIRROR + "/oxford-iiit-pet.tgz"


def _torchvision(module):
    weights = module.ResNet18_Weights.IMAGENET1K_V1.value
    weights.url = MIRROR + "/" + os.environ["TRANSFERLENS_TEST_WEIGHTS"]


PATCHES = {"fastai.data.external": _fastai, "torchvision.models.resnet": _torchvision}


class PatchAfterImport:
    def find_spec(self, name, path=None, target=None):
        if name not in PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            PATCHES[name](module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, PatchAfterImport())
'''

PAGE = '''
from transferlens import tutorial

assets = tutorial.setup(verbose=False)
assert assets.mode == "real"
---
import torch
from fastai.data.external import URLs, untar_data
from torchvision import models

assert URLs.PETS.startswith("http://127.0.0.1:")  # the kernel sees the local host too
---
path = untar_data(URLs.PETS)
assert sorted(p.name for p in (path / "images").iterdir()) == {photos!r}
---
model = models.resnet18(weights=models.ResNet18_Weights.DEFAULT)
served = torch.load({weights!r}, weights_only=True)
assert all(torch.equal(value, served[key]) for key, value in model.state_dict().items())
'''


class _Mirror(http.server.SimpleHTTPRequestHandler):
    counts: collections.Counter[str]
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.counts[self.path] += 1
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _pets_archive(folder: Path) -> None:
    """oxford-iiit-pet.tgz laid out as the real one: oxford-iiit-pet/images/<Breed>_<n>.jpg."""
    from PIL import Image

    with tarfile.open(folder / "oxford-iiit-pet.tgz", "w:gz") as archive:
        for index, name in enumerate(PHOTOS):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 24), (40 * index, 90, 200)).save(buffer, "JPEG")
            info = tarfile.TarInfo(f"oxford-iiit-pet/images/{name}")
            info.size = buffer.tell()
            buffer.seek(0)
            archive.addfile(info, buffer)
        listing = b"Bengal_1 1 1 1\n"
        info = tarfile.TarInfo("oxford-iiit-pet/annotations/list.txt")
        info.size = len(listing)
        archive.addfile(info, io.BytesIO(listing))


def _weights_file(folder: Path) -> str:
    """A resnet18 state_dict under a torchvision-style name whose hash prefix is its own."""
    import torch
    from torchvision import models

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(models.resnet18(weights=None).state_dict(), buffer)
    name = f"resnet18-{hashlib.sha256(buffer.getvalue()).hexdigest()[:8]}.pth"
    (folder / name).write_bytes(buffer.getvalue())
    return name


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str, dict]]:
    """The stand-in download host: (its URL, its folder, the weights file name, the counts)."""
    served = tmp_path_factory.mktemp("mirror")
    _pets_archive(served)
    weights = _weights_file(served)
    counts: collections.Counter[str] = collections.Counter()
    handler = type("Handler", (_Mirror,), {"counts": counts})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served, weights, counts
    server.shutdown()
    server.server_close()


def test_real_mode_fetches_each_asset_once_before_parallel_pages(
    mirror: tuple[str, Path, str, collections.Counter], tmp_path: Path
) -> None:
    url, served, weights, counts = mirror
    counts.clear()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    page = PAGE.format(photos=sorted(PHOTOS), weights=str(served / weights))
    cells = [textwrap.dedent(cell).strip() for cell in page.split("---")]
    for name in ("pets-first.ipynb", "weights-first.ipynb"):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
        order = cells if name == "pets-first.ipynb" else [*cells[:2], cells[3], cells[2]]
        nb.cells = [nbformat.v4.new_code_cell(source) for source in order]
        nbformat.write(nb, str(project / "docs" / name))
    home = tmp_path / "home"  # a cold machine: nothing cached
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TORCH_HOME", "FASTAI_HOME", "XDG_CACHE_HOME", "TRANSFERLENS_CACHE")
    }
    env.update(
        HOME=str(home),
        TRANSFERLENS_ASSETS="real",
        TRANSFERLENS_PAGES_ROOT=str(project),
        TRANSFERLENS_TEST_MIRROR=url,
        TRANSFERLENS_TEST_WEIGHTS=weights,
        PYTHONPATH=os.pathsep.join([str(site), str(ROOT / "tools")]),
        PYTHONWARNINGS="ignore",
        # matplotlib's font cache where the page runs keep it (built once, not per test run)
        MPLCONFIGDIR=str(ROOT / "build" / "matplotlib"),
    )
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "pages_plugin", "--nbmake", "-n", "2",
         "-p", "no:cacheprovider", "-c", str(project / "pytest.ini"), "--rootdir", str(project),
         "docs/pets-first.ipynb", "docs/weights-first.ipynb"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    print(f"real mode, cold HOME, 2 pages on 2 workers: {time.perf_counter() - started:.1f} s")
    print(run.stdout[run.stdout.find("page execution") :])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "2 passed" in run.stdout
    assert dict(counts) == {"/oxford-iiit-pet.tgz": 1, f"/{weights}": 1}
    assert (home / ".cache/torch/hub/checkpoints" / weights).is_file()
    images = home / ".fastai/data/oxford-iiit-pet/images"
    assert sorted(p.name for p in images.iterdir()) == sorted(PHOTOS)


def test_fetch_skips_what_is_cached_and_explains_a_failed_download(
    mirror: tuple[str, Path, str, collections.Counter],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.hub
    from torchvision import models

    url, _, weights, counts = mirror
    counts.clear()
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        entry = models.ResNet18_Weights.IMAGENET1K_V1.value
        monkeypatch.setattr(entry, "url", f"{url}/{weights}")
        first = fetch_real_assets(pets=False, verbose=False)
        again = fetch_real_assets(pets=False, verbose=False)
        assert first == again == {"weights:resnet18": tmp_path / "hub/checkpoints" / weights}
        assert dict(counts) == {f"/{weights}": 1}
        monkeypatch.setattr(entry, "url", f"{url}/missing/resnet18-0123abcd.pth")
        with pytest.raises(AssetError) as err:
            fetch_real_assets(pets=False, verbose=False)
    finally:
        torch.hub.set_dir(hub_dir)
    message = str(err.value)
    assert message.startswith(f"could not fetch the resnet18 weights ({url}/missing/")
    assert "404" in message and "TRANSFERLENS_ASSETS=standin" in message
