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
  download hosts answer within ~2 s (probed in parallel; 2 s is the longest wait in all), else
  ``standin`` with a warning.

The mode comes from the ``TRANSFERLENS_ASSETS`` environment variable unless passed explicitly.

The stand-in cache cannot harm the user's real caches: a cache root that resolves into the real
``TORCH_HOME`` / ``FASTAI_HOME`` (or ``~/.cache/torch``, ``~/.fastai``) is refused, since random
weights under torchvision's real file name would be loaded there by later real runs without a
hash check; files are written through a temporary file and ``os.replace``, never through a
symlink; readers verify under a shared lock, and only a rebuild takes the exclusive one.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from transferlens import LensError

from ._files import file_lock, write_atomically

if TYPE_CHECKING:
    import numpy as np


ASSET_MODES = ("auto", "real", "standin")


class AssetError(LensError):
    """The asset mode is unknown, or the stand-in cache is missing or damaged."""


ENV_VAR = "TRANSFERLENS_ASSETS"
CACHE_ENV_VAR = "TRANSFERLENS_CACHE"

# Bump when the generated files change, so that old caches are rebuilt.
_GENERATOR_VERSION = 1
# Where torchvision's weights and fastai's Pets archive come from (host, HTTPS port).
_PROBE_ADDRESSES: tuple[tuple[str, int], ...] = (
    ("download.pytorch.org", 443),
    ("s3.amazonaws.com", 443),
)
# The longest `auto` waits for the probes, all of them together.
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
    """The asset mode in force, as returned by `use_assets`.

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
        ``(mode, reason)``, the resolved mode and, for ``auto``, why it was chosen.

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
    unreachable = _unreachable_hosts(_PROBE_ADDRESSES, _PROBE_TIMEOUT_S)
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
            ``~/.cache/transferlens``. It must not lie in (or contain) torch's or fastai's
            real caches.
        verbose: print `Assets.describe`.

    Returns:
        The `Assets` in force.

    Raises:
        AssetError: unknown mode, a stand-in cache that cannot be written, or one that
            resolves into torch's or fastai's real caches.

    Examples:
        >>> assets = use_assets("real", verbose=False)  # the usual downloads: nothing to prepare
        >>> assets.mode, assets.is_standin, assets.cache_dir
        ('real', False, None)
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
        root = _standin_root(cache_dir)
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
    """The default stand-in cache directory (see `use_assets`).

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


def _unreachable_hosts(addresses: Sequence[tuple[str, int]], timeout: float) -> list[str]:
    """The hosts that did not accept a TCP connection within ``timeout`` seconds, all probed at
    once; returns after at most ``timeout`` seconds in all (DNS included), sooner when every host
    has answered or one has refused."""
    answered: dict[int, bool] = {}
    changed = threading.Condition()

    def probe(index: int, host: str, port: int) -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok = True
        except OSError:
            ok = False
        with changed:
            answered[index] = ok
            changed.notify_all()

    # Daemon threads that nobody joins: getaddrinfo ignores socket timeouts, and a hung lookup
    # must hold up neither this call nor the interpreter's exit.
    for index, (host, port) in enumerate(addresses):
        threading.Thread(
            target=probe, args=(index, host, port), name=f"probe {host}", daemon=True
        ).start()
    deadline = time.monotonic() + timeout
    with changed:
        while len(answered) < len(addresses) and all(answered.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            changed.wait(remaining)
        refused = [host for i, (host, _) in enumerate(addresses) if answered.get(i) is False]
        silent = [host for i, (host, _) in enumerate(addresses) if i not in answered]
    return refused + silent


# --- the stand-in cache -----------------------------------------------------------------------


def _standin_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The stand-in cache to use, refused when it resolves into torch's or fastai's caches."""
    if cache_dir is not None:
        root, source = Path(cache_dir).expanduser(), "`cache_dir`"
    elif os.environ.get(CACHE_ENV_VAR):
        root, source = standin_cache_dir(), f"the environment variable {CACHE_ENV_VAR}"
    else:
        root = standin_cache_dir()
        source = f"the default stand-in cache {root}"
        if root.is_symlink():
            source += f" (a symlink to {root.resolve()})"
    _refuse_real_caches(root, source)
    return root


def _refuse_real_caches(root: Path, source: str) -> None:
    """Refuse a stand-in cache whose files would land in (or replace) the user's real caches."""
    resolved = root.resolve()
    # What the stand-in cache writes (and, for the images, empties before a rebuild).
    written = [resolved, resolved / _WEIGHTS_DIR, resolved / _IMAGES_DIR]
    for name, real in _real_cache_dirs():
        clash = next((path for path in written if path.is_relative_to(real)), None)
        if clash is not None:
            where = "" if clash == resolved else f" (it writes {clash})"
            if source == "`cache_dir`":
                fix = "Pass a `cache_dir` of its own"
            elif source.startswith("the environment variable"):
                fix = f"Set {CACHE_ENV_VAR} to a folder of its own"
            else:
                fix = f"Make {root} a real folder, or set {CACHE_ENV_VAR} to a folder of its own"
            raise AssetError(
                f"{source} is {root}, which resolves into {name} ({real}){where}. Random "
                "stand-in weights saved there under torchvision's real file name would be "
                "loaded by later real runs without a hash check. "
                f"{fix}, outside torch's and fastai's caches (for example ~/.cache/transferlens)."
            )


def _real_cache_dirs() -> list[tuple[str, Path]]:
    """The user's real torch and fastai caches (as set and as resolved), named for messages."""
    home = Path("~").expanduser()
    candidates: list[tuple[str, Path]] = []
    torch_home = _users_own("TORCH_HOME")
    if torch_home:
        candidates.append(("the real TORCH_HOME", Path(torch_home).expanduser()))
    candidates.append(("torch's default cache", Path(_default_torch_home())))
    candidates.append(("torch's default cache", home / ".cache" / "torch"))
    fastai_home = _users_own("FASTAI_HOME")
    fastai_dirs = [("fastai's default cache", home / ".fastai")]
    if fastai_home:
        fastai_dirs.insert(0, ("the real FASTAI_HOME", Path(fastai_home).expanduser()))
    for name, folder in fastai_dirs:
        candidates.append((name, folder))
        candidates.extend((f"{name}'s {key} folder", path) for key, path in _fastai_config(folder))
    real: list[tuple[str, Path]] = []
    for name, path in candidates:
        for form in (Path(os.path.abspath(path)), path.resolve()):
            if (name, form) not in real:
                real.append((name, form))
    return real


def _fastai_config(fastai_home: Path) -> list[tuple[str, Path]]:
    """The folders fastai's ``config.ini`` names (``data``, ``archive``, ``model``, ``storage``),
    read as fastcore's ``Config.path`` does: relative to the config's folder."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(fastai_home / "config.ini", encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        return []
    defaults = parser.defaults()
    return [
        (key, fastai_home / defaults[key])
        for key in ("data", "archive", "model", "storage")
        if defaults.get(key)
    ]


def _source_checkout() -> Path | None:
    """The root of the transferlens source checkout this module runs from, if any."""
    root = Path(__file__).resolve().parents[3]  # src/transferlens/tutorial/_assets.py
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


_WEIGHTS_DIR = Path("torch", "hub", "checkpoints")
_IMAGES_DIR = Path("fastai", "data", "oxford-iiit-pet", "images")


def _ensure_standin_cache(root: Path, weights: tuple[str, ...]) -> tuple[str, ...]:
    """Generate missing parts of the cache and rebuild damaged ones. Returns what was rebuilt.

    Pages run in parallel, and each checks the cache when it starts: the check holds a shared
    lock, so checks run side by side; only generating or rebuilding takes the exclusive lock,
    and checks again under it (another process may have rebuilt meanwhile).
    """
    parts = {f"weights:{name}": name for name in weights}
    parts["pets"] = ""
    with _cache_lock(root, shared=True):
        manifest = _read_manifest(root)
        if all(_part_is_intact(root, part, manifest.get(part)) for part in parts):
            return ()
    rebuilt: list[str] = []
    with _cache_lock(root, shared=False):
        manifest = _read_manifest(root)
        for part, name in parts.items():
            entry = manifest.get(part)
            if _part_is_intact(root, part, entry):
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


@contextlib.contextmanager
def _cache_lock(root: Path, *, shared: bool) -> Iterator[None]:
    """The cache's lock: shared to check it, exclusive to write it."""
    with contextlib.ExitStack() as stack:
        try:
            root.mkdir(parents=True, exist_ok=True)
            stack.enter_context(file_lock(root / ".lock", shared=shared))
        except OSError as err:
            raise AssetError(
                f"the stand-in cache {root} cannot be written ({err}). Set {CACHE_ENV_VAR} to "
                "a writable directory."
            ) from err
        yield


def _read_manifest(root: Path) -> dict[str, dict]:
    try:
        data = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(root: Path, manifest: dict[str, dict]) -> None:
    text = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    write_atomically(root / "manifest.json", lambda handle: handle.write(text))


def _part_is_intact(root: Path, part: str, entry: dict | None) -> bool:
    """Every file of the part is a plain file (no symlink on the way) with its digest; the
    images folder holds exactly the generated images (fastai's get_image_files takes them all)."""
    if not isinstance(entry, dict) or entry.get("version") != _GENERATOR_VERSION:
        return False
    files = entry.get("files") or {}
    if not files or not all(_is_plain_file(root, Path(rel)) for rel in files):
        return False
    if part == "pets":
        try:
            present = {str(_IMAGES_DIR / name) for name in os.listdir(root / _IMAGES_DIR)}
        except OSError:
            return False
        if present != {str(Path(rel)) for rel in files}:
            return False
    return all(_sha256(root / rel) == digest for rel, digest in files.items())


def _is_plain_file(root: Path, rel: Path) -> bool:
    """``root / rel`` is a regular file, reached through real folders only (no symlinks)."""
    path = root
    try:
        for part in rel.parts[:-1]:
            path = path / part
            if not stat.S_ISDIR(path.lstat().st_mode):
                return False
        return stat.S_ISREG((path / rel.parts[-1]).lstat().st_mode)
    except OSError:
        return False


def _real_folder(root: Path, rel: Path) -> Path:
    """Create ``root / rel`` as real folders: a symlink on the way (a planted one) is removed,
    never followed, and a real folder made in its place."""
    path = root
    for part in rel.parts:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        path.mkdir(exist_ok=True)
    return path


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
    target = _real_folder(root, _WEIGHTS_DIR) / file_name
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(file_name.encode()))
        state = models.get_model(name, weights=None).state_dict()
    write_atomically(target, lambda handle: torch.save(state, handle))
    return {str(target.relative_to(root)): _sha256(target)}


def _generate_pets(root: Path) -> dict[str, str]:
    """Write the synthetic Pets sample: breed-dependent colours and stripes, seeded per image.

    The images folder is emptied first: fastai's ``get_image_files`` would pick up any stale
    image left there (of an older generator, or one a user dropped in).
    """
    import numpy as np
    from PIL import Image

    images = _real_folder(root, _IMAGES_DIR)
    _empty_folder(images)
    files: dict[str, str] = {}
    for breed_index, breed in enumerate(PETS_BREEDS):
        for number in range(1, _IMAGES_PER_BREED + 1):
            rng = np.random.default_rng(breed_index * 1000 + number)
            picture = Image.fromarray(_breed_picture(breed_index, rng))
            path = images / f"{breed}_{number}.jpg"
            write_atomically(path, lambda handle, p=picture: p.save(handle, "JPEG", quality=90))
            files[str(path.relative_to(root))] = _sha256(path)
    return files


def _empty_folder(folder: Path) -> None:
    """Remove everything in ``folder``; symlinks are removed, never followed."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


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
