"""The stand-in cache cannot harm a user's real caches, nor itself under parallel page starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from transferlens.tutorial import AssetError, file_lock, use_assets, write_atomically
from transferlens.tutorial import _assets as assets_module

IMAGES = Path("fastai", "data", "oxford-iiit-pet", "images")
WEIGHTS = Path("torch", "hub", "checkpoints", "resnet18-f37072fd.pth")
PARTS = ("weights:resnet18", "pets")


@pytest.fixture(autouse=True)
def _isolated_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh HOME with no torch or fastai settings; use_assets's changes undone afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "TORCH_HOME", "FASTAI_HOME", "XDG_CACHE_HOME", "TRANSFERLENS_ASSETS", "TRANSFERLENS_CACHE"
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    import torch.hub

    hub_dir = torch.hub.get_dir()
    yield home
    torch.hub.set_dir(hub_dir)


def _intact(root: Path) -> bool:
    manifest = json.loads((root / "manifest.json").read_text())
    return all(assets_module._part_is_intact(root, part, manifest.get(part)) for part in PARTS)


# --- refusing the user's real caches --------------------------------------------------------


def _refused(monkeypatch: pytest.MonkeyPatch, cache_dir: Path | None) -> str:
    with pytest.raises(AssetError) as err:
        use_assets("standin", cache_dir=cache_dir, verbose=False)
    return str(err.value)


def test_cache_dir_inside_the_real_torch_home_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch_home = tmp_path / "my-torch"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    message = _refused(monkeypatch, torch_home / "standins")
    assert message.startswith(f"`cache_dir` is {torch_home / 'standins'}, which resolves into ")
    assert "the real TORCH_HOME" in message and "without a hash check" in message
    assert "Pass a `cache_dir` of its own" in message
    assert not torch_home.exists()  # nothing written, not even the lock file


def test_transferlens_cache_that_would_write_into_the_default_torch_cache_is_refused(
    monkeypatch: pytest.MonkeyPatch, _isolated_home: Path
) -> None:
    # ~/.cache itself: the stand-in weights would land in ~/.cache/torch/hub/checkpoints.
    monkeypatch.setenv("TRANSFERLENS_CACHE", str(_isolated_home / ".cache"))
    message = _refused(monkeypatch, None)
    assert message.startswith("the environment variable TRANSFERLENS_CACHE is ")
    assert f"torch's default cache ({_isolated_home / '.cache' / 'torch'})" in message
    assert f"(it writes {_isolated_home / '.cache' / WEIGHTS.parent})" in message
    assert "Set TRANSFERLENS_CACHE to a folder of its own" in message
    assert not (_isolated_home / ".cache").exists()


def test_a_symlinked_default_cache_into_fastai_home_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _isolated_home: Path
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    real_data = _isolated_home / ".fastai" / "data"
    real_data.mkdir(parents=True)
    (checkout / ".transferlens-cache").symlink_to(real_data)
    monkeypatch.setattr(assets_module, "_source_checkout", lambda: checkout)
    message = _refused(monkeypatch, None)
    assert f"(a symlink to {real_data})" in message
    assert f"fastai's default cache ({_isolated_home / '.fastai'})" in message
    assert f"Make {checkout / '.transferlens-cache'} a real folder" in message
    assert list(real_data.iterdir()) == []


def test_the_resolved_forms_of_the_real_caches_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _isolated_home: Path
) -> None:
    # ~/.cache/torch is itself a symlink to another disk: a cache on that disk is refused too,
    store = tmp_path / "big-disk" / "torch"
    store.mkdir(parents=True)
    (_isolated_home / ".cache").mkdir()
    (_isolated_home / ".cache" / "torch").symlink_to(store)
    assert "torch's default cache" in _refused(monkeypatch, store / "standins")
    # and so is a cache reached through a link into FASTAI_HOME.
    fastai_home = tmp_path / "fastai-home"
    fastai_home.mkdir()
    monkeypatch.setenv("FASTAI_HOME", str(fastai_home))
    (tmp_path / "link").symlink_to(fastai_home)
    assert "the real FASTAI_HOME" in _refused(monkeypatch, tmp_path / "link" / "standins")
    assert list(fastai_home.iterdir()) == [] and list(store.iterdir()) == []


def test_a_data_folder_set_in_fastais_config_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _isolated_home: Path
) -> None:
    (_isolated_home / ".fastai").mkdir()
    data = tmp_path / "datasets"
    (_isolated_home / ".fastai" / "config.ini").write_text(f"[DEFAULT]\ndata = {data}\n")
    message = _refused(monkeypatch, data / "standins")
    assert f"fastai's default cache's data folder ({data})" in message


def test_the_default_caches_beside_the_real_ones_are_accepted(
    monkeypatch: pytest.MonkeyPatch, _isolated_home: Path
) -> None:
    monkeypatch.setattr(assets_module, "_source_checkout", lambda: None)
    (_isolated_home / ".cache" / "torch").mkdir(parents=True)
    assert assets_module._standin_root(None) == _isolated_home / ".cache" / "transferlens"


# --- writes never follow a symlink ------------------------------------------------------------


def test_write_atomically_replaces_a_planted_symlink_and_spares_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.pth"
    victim.write_bytes(b"the user's real weights")
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    target = folder / "resnet18-f37072fd.pth"
    target.symlink_to(victim)
    write_atomically(target, lambda handle: handle.write(b"stand-in"))
    assert not target.is_symlink() and target.read_bytes() == b"stand-in"
    assert victim.read_bytes() == b"the user's real weights"
    assert [p.name for p in folder.iterdir()] == [target.name]  # no temporary file left


def test_a_failed_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path: Path) -> None:
    def fail(handle: object) -> None:
        raise RuntimeError("disk full")

    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(folder / "file", fail)
    assert list(folder.iterdir()) == []


def test_symlinks_planted_in_the_cache_are_replaced_never_written_through(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    use_assets("standin", cache_dir=root, verbose=False)
    good_weights = (root / WEIGHTS).read_bytes()
    victims = tmp_path / "victims"
    victims.mkdir()
    for name in ("weights.pth", "manifest.json", "lock"):
        (victims / name).write_text(f"precious {name}")
    (victims / "photos").mkdir()
    (victims / "photos" / "pug_1.jpg").write_text("a real photo")
    # A symlink at the weights file, the manifest, the lock file and the images folder.
    (root / WEIGHTS).unlink()
    (root / WEIGHTS).symlink_to(victims / "weights.pth")
    (root / "manifest.json").unlink()
    (root / "manifest.json").symlink_to(victims / "manifest.json")
    (root / ".lock").unlink()
    (root / ".lock").symlink_to(victims / "lock")
    images = root / IMAGES
    os.rename(images, tmp_path / "old-images")
    images.symlink_to(victims / "photos")

    use_assets("standin", cache_dir=root, verbose=False)

    assert [f.read_text() for f in sorted(victims.glob("*")) if f.is_file()] == [
        "precious lock", "precious manifest.json", "precious weights.pth"
    ]  # fmt: skip
    assert [p.name for p in (victims / "photos").iterdir()] == ["pug_1.jpg"]
    for path in (root / WEIGHTS, root / "manifest.json", root / ".lock", images):
        assert not path.is_symlink(), path
    assert (root / WEIGHTS).read_bytes() == good_weights
    assert len(list(images.glob("*.jpg"))) == 37 * 8
    assert _intact(root)


# --- rebuilds remove stale images -------------------------------------------------------------


def test_a_rebuild_removes_stale_images(tmp_path: Path) -> None:
    from fastai.data.transforms import get_image_files

    root = tmp_path / "cache"
    use_assets("standin", cache_dir=root, verbose=False)
    images = root / IMAGES
    (images / "pug_3.jpg").write_bytes(b"damaged")  # a damaged image triggers the rebuild,
    (images / "Bengal_9.jpg").write_bytes((images / "Bengal_1.jpg").read_bytes())  # stale ones
    (images / "old").mkdir()
    (images / "old" / "beagle_1.jpg").write_bytes((images / "beagle_1.jpg").read_bytes())
    assert len(get_image_files(images.parent)) == 37 * 8 + 2

    with pytest.warns(UserWarning, match=r"damaged \(pets\)"):
        assert use_assets("standin", cache_dir=root, verbose=False).rebuilt == ("pets",)
    assert not (images / "Bengal_9.jpg").exists() and not (images / "old").exists()
    assert len(get_image_files(images.parent)) == 37 * 8
    assert _intact(root)


def test_an_extra_image_alone_is_detected_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    use_assets("standin", cache_dir=root, verbose=False)
    (root / IMAGES / "pug_99.jpg").write_bytes((root / IMAGES / "pug_1.jpg").read_bytes())
    with pytest.warns(UserWarning, match="damaged"):
        assert use_assets("standin", cache_dir=root, verbose=False).rebuilt == ("pets",)
    assert not (root / IMAGES / "pug_99.jpg").exists()


# --- checks run side by side; only a rebuild is exclusive ------------------------------------


def test_a_check_runs_beside_other_checks_and_waits_only_for_a_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    use_assets("standin", cache_dir=root, verbose=False)

    def check_in_thread() -> threading.Thread:
        thread = threading.Thread(
            target=assets_module._ensure_standin_cache, args=(root, ("resnet18",))
        )
        thread.start()
        return thread

    with file_lock(root / ".lock", shared=True):  # another page checking the cache
        thread = check_in_thread()
        thread.join(timeout=60)
        assert not thread.is_alive()  # it did not wait for the other check
    with file_lock(root / ".lock"):  # another page rebuilding the cache
        thread = check_in_thread()
        time.sleep(0.5)
        assert thread.is_alive()  # it waits for the rebuild to finish
    thread.join(timeout=60)
    assert not thread.is_alive()


_STARTER = """
import json, os, sys, time, warnings
import transferlens.tutorial as tutorial
open(sys.argv[2] + f".ready-{os.getpid()}", "w").close()
while not os.path.exists(sys.argv[2]):  # start together
    time.sleep(0.01)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    assets = tutorial.use_assets("standin", cache_dir=sys.argv[1], verbose=False)
print(json.dumps(list(assets.rebuilt)))
"""


def test_parallel_page_starts_with_a_damaged_file_all_succeed_and_one_rebuilds(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    use_assets("standin", cache_dir=root, verbose=False)
    good = (root / WEIGHTS).read_bytes()
    (root / WEIGHTS).write_bytes(good[: len(good) // 3])
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-c", _STARTER, str(root), str(go)]
    pipe = subprocess.PIPE
    starts = [
        subprocess.Popen(command, stdout=pipe, stderr=pipe, text=True, env=env) for _ in range(4)
    ]
    deadline = time.monotonic() + 180
    while len(list(tmp_path.glob("go.ready-*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)  # all four have imported transferlens.tutorial
    go.touch()
    started = time.perf_counter()
    results = [process.communicate(timeout=240) for process in starts]
    print(f"4 parallel use_assets calls, one rebuild: {time.perf_counter() - started:.1f} s")
    assert [process.returncode for process in starts] == [0] * 4, results
    rebuilt = sorted(json.loads(out) for out, _ in results)
    assert rebuilt == [[], [], [], ["weights:resnet18"]]
    assert (root / WEIGHTS).read_bytes() == good
    assert _intact(root)


# --- no fcntl (Windows) ----------------------------------------------------------------------


def test_the_tutorial_module_imports_and_locks_without_fcntl(tmp_path: Path) -> None:
    """Where fcntl does not exist, importing works and locks fall back to msvcrt."""
    code = f"""
import sys, types
import torch, transferlens  # the core and torch, which imports fcntl itself on Linux
sys.modules["fcntl"] = None  # `import fcntl` now raises ImportError
calls = []
sys.modules["msvcrt"] = types.SimpleNamespace(
    LK_LOCK=1, LK_UNLCK=0, locking=lambda fd, mode, n: calls.append((mode, n))
)
import transferlens.tutorial
from transferlens.tutorial import file_lock
from pathlib import Path
with file_lock(Path({str(tmp_path)!r}) / "lock", shared=True):
    calls.append("inside")
print(calls)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[(1, 1), 'inside', (0, 1)]"


def test_the_default_cache_of_a_source_checkout_is_at_its_root() -> None:
    from transferlens.tutorial import standin_cache_dir

    root = Path(__file__).resolve().parents[1]
    assert standin_cache_dir() == root / ".transferlens-cache"
