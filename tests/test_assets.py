"""The asset modes: stand-ins are generated deterministically, in isolation, and checked."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transferlens import LensError
from transferlens.tutorial import PETS_BREEDS, AssetError, resolve_asset_mode, use_assets

IMAGES = Path("fastai", "data", "oxford-iiit-pet", "images")
WEIGHTS = Path("torch", "hub", "checkpoints", "resnet18-f37072fd.pth")


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # use_assets points TORCH_HOME / FASTAI_HOME at the cache: undo it after each test.
    for name in ("TORCH_HOME", "FASTAI_HOME", "TRANSFERLENS_ASSETS", "TRANSFERLENS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    import torch.hub

    hub_dir = torch.hub.get_dir()
    yield
    torch.hub.set_dir(hub_dir)


@pytest.fixture(scope="module")
def standin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated cache for the module (generating it takes a few seconds)."""
    root = tmp_path_factory.mktemp("standin")
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "FASTAI_HOME")}
    use_assets("standin", cache_dir=root, verbose=False)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return root


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".pth", ".jpg")
    }


def test_unknown_mode_is_refused_with_the_allowed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFERLENS_ASSETS", "offline")
    with pytest.raises(AssetError) as err:
        use_assets(verbose=False)
    message = str(err.value)
    assert "TRANSFERLENS_ASSETS" in message and "'offline'" in message
    assert "auto, real, standin" in message
    assert isinstance(err.value, LensError) and isinstance(err.value, ValueError)


def test_unknown_mode_argument_names_the_argument() -> None:
    with pytest.raises(AssetError, match="`mode`"):
        resolve_asset_mode("cloud")


def test_explicit_modes_resolve_without_probing() -> None:
    assert resolve_asset_mode("standin") == ("standin", "")
    assert resolve_asset_mode("real") == ("real", "")
    assert resolve_asset_mode(" Standin ") == ("standin", "")


def test_auto_falls_back_quickly_when_the_hosts_do_not_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached real assets
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(
        "transferlens.tutorial._assets._PROBE_ADDRESSES", (("unreachable.invalid", 443),)
    )
    started = time.perf_counter()
    mode, reason = resolve_asset_mode("auto")
    assert mode == "standin"
    assert "unreachable.invalid did not answer" in reason
    assert time.perf_counter() - started < 10


def test_auto_uses_real_assets_already_in_the_users_caches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    (tmp_path / ".cache" / WEIGHTS).parent.mkdir(parents=True)
    (tmp_path / ".cache" / WEIGHTS).write_bytes(b"weights")
    (tmp_path / ".fastai" / "data" / "oxford-iiit-pet" / "images").mkdir(parents=True)
    assert resolve_asset_mode("auto") == (
        "real",
        "weights and Pets data already in the user's caches",
    )


def test_auto_warns_when_it_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(
        "transferlens.tutorial._assets._PROBE_ADDRESSES", (("unreachable.invalid", 443),)
    )
    monkeypatch.setattr(
        "transferlens.tutorial._assets._ensure_standin_cache", lambda root, weights: ()
    )
    with pytest.warns(UserWarning, match="using stand-in assets"):
        assets = use_assets("auto", cache_dir=tmp_path / "c", verbose=False)
    assert assets.mode == "standin" and assets.requested == "auto"


def test_standin_cache_has_the_pets_layout(standin_cache: Path) -> None:
    images = sorted(p.name for p in (standin_cache / IMAGES).glob("*.jpg"))
    assert len(images) == 37 * 8
    breeds = {name.rsplit("_", 1)[0] for name in images}
    assert breeds == set(PETS_BREEDS) and len(breeds) == 37
    cats = [b for b in PETS_BREEDS if b[0].isupper()]
    assert len(cats) == 12  # the data set's convention: cats capitalised, dogs lower case
    assert "Abyssinian_1.jpg" in images and "yorkshire_terrier_8.jpg" in images


def test_standin_images_differ_by_breed(standin_cache: Path) -> None:
    import numpy as np
    from PIL import Image

    def mean_colour(name: str) -> np.ndarray:
        return np.asarray(Image.open(standin_cache / IMAGES / name), dtype=float).mean((0, 1))

    same = np.abs(mean_colour("Bengal_1.jpg") - mean_colour("Bengal_2.jpg")).max()
    other = np.abs(mean_colour("Bengal_1.jpg") - mean_colour("pug_1.jpg")).max()
    assert other > 4 * same


def test_standin_generation_is_deterministic(standin_cache: Path, tmp_path: Path) -> None:
    use_assets("standin", cache_dir=tmp_path, verbose=False)
    assert _digest_tree(tmp_path) == _digest_tree(standin_cache)


def test_unmodified_library_calls_load_the_standins(standin_cache: Path) -> None:
    """torchvision and fastai find the stand-ins by themselves, in a fresh process."""
    code = (
        "import os, torch, transferlens.tutorial\n"
        "transferlens.tutorial.use_assets(\n"
        f"    'standin', cache_dir={str(standin_cache)!r}, verbose=False\n"
        ")\n"
        "from torchvision import models\n"
        "from fastai.data.external import untar_data, URLs\n"
        "m = models.resnet18(weights=models.ResNet18_Weights.DEFAULT)\n"
        "path = untar_data(URLs.PETS)\n"
        "print(path.relative_to(os.environ['FASTAI_HOME']))\n"
        f"state = torch.load({str(standin_cache / WEIGHTS)!r})\n"
        "print(all(torch.equal(state[k], v) for k, v in m.state_dict().items()))\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["data/oxford-iiit-pet", "True"]


def test_standin_mode_never_writes_the_users_caches(
    standin_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import transferlens.tutorial\n"
        "transferlens.tutorial.use_assets(\n"
        f"    'standin', cache_dir={str(standin_cache)!r}, verbose=False\n"
        ")\n"
        "from torchvision import models\n"
        "from fastai.data.external import untar_data, URLs\n"
        "models.resnet18(weights=models.ResNet18_Weights.DEFAULT)\n"
        "untar_data(URLs.PETS)\n"
    )
    env = {**os.environ, "HOME": str(home), "PYTHONWARNINGS": "ignore"}
    env.pop("XDG_CACHE_HOME", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    assert not (home / ".cache" / "torch").exists()
    assert not (home / ".fastai").exists()


def test_truncated_weights_are_detected_and_rebuilt(tmp_path: Path) -> None:
    use_assets("standin", cache_dir=tmp_path, verbose=False)
    weights = tmp_path / WEIGHTS
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning, match="damaged"):
        assets = use_assets("standin", cache_dir=tmp_path, verbose=False)
    assert assets.rebuilt == ("weights:resnet18",)
    assert weights.read_bytes() == good


def test_missing_images_are_detected_and_rebuilt(tmp_path: Path) -> None:
    use_assets("standin", cache_dir=tmp_path, verbose=False)
    (tmp_path / IMAGES / "pug_3.jpg").unlink()
    with pytest.warns(UserWarning, match=r"damaged \(pets\)"):
        assets = use_assets("standin", cache_dir=tmp_path, verbose=False)
    assert assets.rebuilt == ("pets",)
    assert (tmp_path / IMAGES / "pug_3.jpg").is_file()


def test_an_intact_cache_is_reused(standin_cache: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in standin_cache.rglob("*.jpg")}
    assets = use_assets("standin", cache_dir=standin_cache, verbose=False)
    assert assets.rebuilt == ()
    assert {p: p.stat().st_mtime_ns for p in standin_cache.rglob("*.jpg")} == before


def test_unwritable_cache_says_what_to_set(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(AssetError, match="TRANSFERLENS_CACHE"):
        use_assets("standin", cache_dir=blocker / "cache", verbose=False)


def test_unknown_weights_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="`weights`"):
        use_assets("standin", weights=("resnet1800",), cache_dir=tmp_path, verbose=False)


def test_describe_says_which_assets_ran(standin_cache: Path, capsys: pytest.CaptureFixture) -> None:
    assets = use_assets("standin", cache_dir=standin_cache)
    line = capsys.readouterr().out.strip()
    assert line == assets.describe()
    assert line.startswith("transferlens assets: standin (TRANSFERLENS_ASSETS=standin).")
    assert "differ from a real run" in line
    real = use_assets("real", verbose=False)
    assert real.describe().startswith("transferlens assets: real (TRANSFERLENS_ASSETS=real).")
