"""Where pretrained weights and the Oxford-IIIT Pets images come from.

The pages call torchvision and fastai exactly as a user would
(``models.resnet18(weights=ResNet18_Weights.DEFAULT)``, ``untar_data(URLs.PETS)``). Those calls
download from the internet, which a reader of the site has but a build machine may not. The asset
mode decides, once per process, where the downloads come from:

- ``real``: the normal downloads, into the user's normal caches (``~/.cache/torch``, ``~/.fastai``).
- ``standin``: nothing is downloaded. An isolated cache (``.transferlens-cache/`` in a source
  checkout) is filled on demand, deterministically, with

  - a randomly initialised ``state_dict`` under torchvision's own file name for every weights
    file in ``weights`` (``hub/checkpoints/resnet18-f37072fd.pth``), so the unmodified
    torchvision call loads it, and
  - a Pets-format sample at ``<data>/oxford-iiit-pet/images/``: the 37 real breed names with the
    real file naming (cats capitalised, dogs lower case), a few synthetic images per breed whose
    colours and stripes depend on the breed, so a model can learn them in seconds;

  and ``TORCH_HOME`` / ``FASTAI_HOME`` point into it. The user's own caches are never written.
- ``auto`` (the default): ``real`` when the files are already in the user's caches or the
  download hosts answer within ~2 s, else ``standin`` with a warning.

The mode comes from the ``TRANSFERLENS_ASSETS`` environment variable unless passed explicitly.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import socket
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import LensError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ASSET_MODES",
    "PETS_BREEDS",
    "AssetError",
    "Assets",
    "resolve_asset_mode",
    "standin_cache_dir",
    "use_assets",
]

ASSET_MODES = ("auto", "real", "standin")


class AssetError(LensError):
    """The asset mode is unknown, or the stand-in cache is missing or damaged."""


ENV_VAR = "TRANSFERLENS_ASSETS"
CACHE_ENV_VAR = "TRANSFERLENS_CACHE"

# Bump when the generated files change, so that old caches are rebuilt.
_GENERATOR_VERSION = 1
_PROBE_HOSTS = ("download.pytorch.org", "s3.amazonaws.com")
_PROBE_TIMEOUT_S = 2.0
_IMAGES_PER_BREED = 8

# The 37 breeds of the Oxford-IIIT Pet data set, spelled as in its file names:
# cats are capitalised, dogs are lower case.
PETS_BREEDS: tuple[str, ...] = (
    "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau",
    "Maine_Coon", "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx",
    "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "boxer",
    "chihuahua", "english_cocker_spaniel", "english_setter", "german_shorthaired",
    "great_pyrenees", "havanese", "japanese_chin", "keeshond", "leonberger",
    "miniature_pinscher", "newfoundland", "pomeranian", "pug", "saint_bernard", "samoyed",
    "scottish_terrier", "shiba_inu", "staffordshire_bull_terrier", "wheaten_terrier",
    "yorkshire_terrier",
)  # fmt: skip


@dataclass(frozen=True)
class Assets:
    """The asset mode in force, as returned by :func:`use_assets`.

    Attributes:
        requested: the mode asked for (``auto``, ``real`` or ``standin``).
        mode: the mode in force (``real`` or ``standin``).
        reason: why ``auto`` chose ``mode`` (empty when a mode was asked for directly).
        cache_dir: the stand-in cache (``None`` in ``real`` mode).
        weights: the torchvision models whose stand-in weights exist in the cache.
        rebuilt: parts of the stand-in cache that were missing or damaged and were regenerated.
    """

    requested: str
    mode: str
    reason: str = ""
    cache_dir: Path | None = None
    weights: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = field(default=())

    @property
    def is_standin(self) -> bool:
        """True when stand-in weights and images are in use."""
        return self.mode == "standin"

    def describe(self) -> str:
        """One line saying which assets are in use, for the top of a page."""
        if self.mode == "real":
            how = f"auto: {self.reason}" if self.requested == "auto" else f"{ENV_VAR}=real"
            return (
                f"transferlens assets: real ({how}). Pretrained ImageNet weights and the "
                "Oxford-IIIT Pets photos come from torchvision's and fastai's usual caches, "
                "downloaded on first use."
            )
        how = f"auto: {self.reason}" if self.requested == "auto" else f"{ENV_VAR}=standin"
        return (
            f"transferlens assets: standin ({how}). The weights are random, not "
            f"ImageNet-trained, and the Pets images are synthetic ({len(PETS_BREEDS)} breeds x "
            f"{_IMAGES_PER_BREED} images), generated in {_display_path(self.cache_dir)}. "
            "Outputs that depend on learned weights or real photos differ from a real run."
        )

    def __repr__(self) -> str:
        return self.describe()


def resolve_asset_mode(
    mode: str | None = None, *, weights: Sequence[str] = ("resnet18",)
) -> tuple[str, str]:
    """Resolve an asset mode to ``real`` or ``standin`` without changing anything.

    Args:
        mode: ``auto``, ``real`` or ``standin``; ``None`` reads ``TRANSFERLENS_ASSETS``
            (default ``auto``).
        weights: the torchvision models whose weights must be available for ``real``.

    Returns:
        ``(mode, reason)``: the resolved mode and, for ``auto``, why it was chosen.

    Raises:
        AssetError: ``mode`` (or ``TRANSFERLENS_ASSETS``) is not one of the allowed values.

    Examples:
        >>> resolve_asset_mode("standin")
        ('standin', '')
    """
    requested = _requested_mode(mode)
    if requested != "auto":
        return requested, ""
    if _real_assets_cached(weights):
        return "real", "weights and Pets data already in the user's caches"
    unreachable = [host for host in _PROBE_HOSTS if not _host_answers(host)]
    if not unreachable:
        return "real", "download hosts answer"
    return "standin", f"{unreachable[0]} did not answer within {_PROBE_TIMEOUT_S:g} s"


def use_assets(
    mode: str | None = None,
    *,
    weights: Sequence[str] = ("resnet18",),
    cache_dir: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> Assets:
    """Activate an asset mode for this process and say which one is in force.

    Call it once, near the top of a page or script, before anything downloads. In ``standin``
    mode it generates what is missing in the stand-in cache (a second call reuses it), checks
    what is there against the cache's manifest, rebuilds damaged parts, and points
    ``TORCH_HOME`` and ``FASTAI_HOME`` at the cache.

    Args:
        mode: ``auto``, ``real`` or ``standin``; ``None`` reads ``TRANSFERLENS_ASSETS``
            (default ``auto``).
        weights: torchvision model names whose ``DEFAULT`` weights get a stand-in file.
        cache_dir: the stand-in cache; default ``TRANSFERLENS_CACHE``, else
            ``.transferlens-cache/`` at the root of a source checkout, else
            ``~/.cache/transferlens``.
        verbose: print :meth:`Assets.describe`.

    Returns:
        The :class:`Assets` in force.

    Raises:
        AssetError: unknown mode, or a stand-in cache that cannot be written.

    Examples:
        >>> assets = use_assets("standin", verbose=False)  # doctest: +SKIP
        >>> assets.mode  # doctest: +SKIP
        'standin'
    """
    requested = _requested_mode(mode)
    resolved, reason = resolve_asset_mode(requested, weights=weights)
    if resolved == "real":
        assets = Assets(requested=requested, mode="real", reason=reason)
    else:
        if requested == "auto":
            warnings.warn(
                f"transferlens: no network ({reason}); using stand-in assets. "
                f"Set {ENV_VAR}=real to insist on the real downloads.",
                stacklevel=2,
            )
        root = Path(cache_dir) if cache_dir is not None else standin_cache_dir()
        rebuilt = _ensure_standin_cache(root, tuple(weights))
        _point_caches_at(root)
        assets = Assets(
            requested=requested,
            mode="standin",
            reason=reason,
            cache_dir=root,
            weights=tuple(weights),
            rebuilt=rebuilt,
        )
    if verbose:
        print(assets.describe())
    return assets


def standin_cache_dir() -> Path:
    """The default stand-in cache directory (see :func:`use_assets`).

    Returns:
        ``TRANSFERLENS_CACHE`` if set, else ``.transferlens-cache/`` at the root of a source
        checkout, else ``~/.cache/transferlens``.

    Examples:
        >>> standin_cache_dir().name in (".transferlens-cache", "transferlens")
        True
    """
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser().resolve()
    checkout = _source_checkout()
    if checkout is not None:
        return checkout / ".transferlens-cache"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "transferlens"


# --- mode resolution --------------------------------------------------------------------------


def _requested_mode(mode: str | None) -> str:
    if mode is None:
        mode = os.environ.get(ENV_VAR, "") or "auto"
        source = f"the environment variable {ENV_VAR}"
    else:
        source = "`mode`"
    value = mode.strip().lower()
    if value not in ASSET_MODES:
        allowed = ", ".join(ASSET_MODES)
        raise AssetError(
            f"{source} is {mode!r}; expected one of: {allowed}. "
            f"Use {ENV_VAR}=standin to work offline, or unset it for auto."
        )
    return value


def _real_assets_cached(weights: Sequence[str]) -> bool:
    """True when the user's own caches already hold every file the pages download."""
    torch_home = _users_own("TORCH_HOME") or _default_torch_home()
    torch_hub = Path(torch_home) / "hub" / "checkpoints"
    fastai_home = Path(_users_own("FASTAI_HOME") or "~/.fastai").expanduser()
    pets = fastai_home / "data" / "oxford-iiit-pet" / "images"
    if not pets.is_dir():
        return False
    try:
        names = [_weights_file_name(name) for name in weights]
    except AssetError:
        return False
    return all((torch_hub / name).is_file() for name in names)


def _users_own(variable: str) -> str | None:
    """The variable's value, unless it is one we set to point into a stand-in cache."""
    value = os.environ.get(variable)
    if not value:
        return None
    if Path(value, "..", "manifest.json").resolve().is_file():
        return None
    return value


def _default_torch_home() -> str:
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "torch")


def _host_answers(host: str, port: int = 443, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Can we open a TCP connection to ``host`` within ``timeout`` seconds (DNS included)?"""

    def connect() -> bool:
        with socket.create_connection((host, port), timeout=timeout):
            return True

    # getaddrinfo ignores socket timeouts, so the whole attempt runs in a thread we stop waiting
    # for; the pool is not joined, so a hung lookup cannot hold us up.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout)
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)


# --- the stand-in cache -----------------------------------------------------------------------


def _source_checkout() -> Path | None:
    """The root of the transferlens source checkout this module runs from, if any."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        if 'name = "transferlens"' in pyproject.read_text(encoding="utf-8"):
            return root
    except OSError:
        return None
    return None


def _display_path(path: Path | None) -> str:
    if path is None:
        return "-"
    checkout = _source_checkout()
    if checkout is not None and path.is_relative_to(checkout):
        return f"{path.relative_to(checkout)}/ (in the transferlens checkout)"
    return str(path)


def _point_caches_at(root: Path) -> None:
    os.environ["TORCH_HOME"] = str(root / "torch")
    os.environ["FASTAI_HOME"] = str(root / "fastai")
    import torch.hub

    torch.hub.set_dir(str(root / "torch" / "hub"))


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise cache generation between processes (pages run in parallel)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / ".lock", "w")
    except OSError as err:
        raise AssetError(
            f"the stand-in cache {root} cannot be written ({err}). Set {CACHE_ENV_VAR} to a "
            "writable directory."
        ) from err
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_standin_cache(root: Path, weights: tuple[str, ...]) -> tuple[str, ...]:
    """Generate missing parts of the cache and rebuild damaged ones. Returns what was rebuilt."""
    rebuilt: list[str] = []
    with _locked(root):
        manifest = _read_manifest(root)
        parts = {f"weights:{name}": name for name in weights}
        parts["pets"] = ""
        for part, name in parts.items():
            entry = manifest.get(part)
            if entry is not None and _part_is_intact(root, entry):
                continue
            if entry is not None:
                rebuilt.append(part)
            files = _generate_weights(root, name) if part != "pets" else _generate_pets(root)
            manifest[part] = {"version": _GENERATOR_VERSION, "files": files}
            _write_manifest(root, manifest)
    if rebuilt:
        warnings.warn(
            f"transferlens: the stand-in cache in {root} was damaged ({', '.join(rebuilt)}) "
            "and has been rebuilt.",
            stacklevel=3,
        )
    return tuple(rebuilt)


def _read_manifest(root: Path) -> dict[str, dict]:
    try:
        data = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(root: Path, manifest: dict[str, dict]) -> None:
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(root / "manifest.json")


def _part_is_intact(root: Path, entry: dict) -> bool:
    if entry.get("version") != _GENERATOR_VERSION:
        return False
    files = entry.get("files") or {}
    for rel, digest in files.items():
        path = root / rel
        if not path.is_file() or _sha256(path) != digest:
            return False
    return bool(files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_file_name(name: str) -> str:
    from torchvision import models

    try:
        default = models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as err:
        raise AssetError(
            f"`weights` names {name!r}, which is not a torchvision model with pretrained "
            "weights. Use a name from torchvision.models.list_models()."
        ) from err
    return default.url.rsplit("/", 1)[-1]


def _generate_weights(root: Path, name: str) -> dict[str, str]:
    """Save a seeded, randomly initialised state_dict under torchvision's file name."""
    import torch
    from torchvision import models

    file_name = _weights_file_name(name)
    target = root / "torch" / "hub" / "checkpoints" / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(file_name.encode()))
        state = models.get_model(name, weights=None).state_dict()
    tmp = target.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(target)
    return {str(target.relative_to(root)): _sha256(target)}


def _generate_pets(root: Path) -> dict[str, str]:
    """Write the synthetic Pets sample: breed-dependent colours and stripes, seeded per image."""
    import numpy as np
    from PIL import Image

    images = root / "fastai" / "data" / "oxford-iiit-pet" / "images"
    images.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for breed_index, breed in enumerate(PETS_BREEDS):
        for number in range(1, _IMAGES_PER_BREED + 1):
            rng = np.random.default_rng(breed_index * 1000 + number)
            pixels = _breed_picture(breed_index, rng)
            path = images / f"{breed}_{number}.jpg"
            Image.fromarray(pixels).save(path, quality=90)
            files[str(path.relative_to(root))] = _sha256(path)
    return files


def _breed_picture(breed_index: int, rng: np.random.Generator) -> np.ndarray:
    """An image whose colour and stripe angle are the breed's, with per-image jitter."""
    import colorsys

    import numpy as np

    height, width = int(rng.integers(96, 144)), int(rng.integers(96, 144))
    hue = breed_index / len(PETS_BREEDS)
    base = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.9))
    other = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1.0, 0.6, 0.35 + 0.5 * (breed_index % 2)))
    angle = np.pi * (breed_index % 6) / 6 + rng.normal(0, 0.05)
    period = 8 + 3 * (breed_index % 4)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, period)
    stripes = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle) + phase) / period) > 0
    mix = stripes[..., None].astype(float)
    picture = base * mix + other * (1 - mix)
    picture = picture + rng.normal(0, 0.04, picture.shape)
    return (np.clip(picture, 0, 1) * 255).astype(np.uint8)
