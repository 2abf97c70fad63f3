"""The tutorial site's machinery: where the pages' assets come from, and what they check with.

Nothing here is part of the recipe. A project that fine-tunes a model with ``transferlens``
never needs this module; the site's pages import it in their first cell::

    from transferlens import tutorial
    assets = tutorial.setup()

- `use_assets` / `resolve_asset_mode`: the asset mode
  (``TRANSFERLENS_ASSETS=auto|real|standin``): real downloads, or stand-in weights and photos
  generated into an isolated cache so that the pages run with no network.
- `fetch_real_assets`: in ``real`` mode, downloads the real weights and Pets data once, before
  the pages run in parallel kernels (the page test session calls it).
- `quiet_known_warnings`: filters exactly the import-time warnings of fastai 2.8 that a
  page cannot act on, each with the reason it is harmless.
- `first_photos`: the first photos of every Pets breed, a subset that means the same for
  the stand-in photos and the real data set.
- `file_lock` / `write_atomically`: the one file lock and the one atomic write of the
  stand-in cache and of the page machinery (tools/).
- `record_schedule`: records the learning rates and momentum a fastai ``Learner`` trains
  with at every batch, for the pages and tests that compare them with ``transferlens``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._assets import (
    ASSET_MODES,
    PETS_BREEDS,
    AssetError,
    Assets,
    resolve_asset_mode,
    standin_cache_dir,
    use_assets,
)
from ._fetch import fetch_real_assets
from ._files import file_lock, write_atomically
from ._pets import first_photos
from ._recorder import ScheduleRecording, record_schedule
from ._warnings import KNOWN_WARNINGS, KnownWarning, quiet_known_warnings

__all__ = [
    "ASSET_MODES",
    "KNOWN_WARNINGS",
    "PETS_BREEDS",
    "AssetError",
    "Assets",
    "KnownWarning",
    "ScheduleRecording",
    "fetch_real_assets",
    "file_lock",
    "first_photos",
    "quiet_known_warnings",
    "record_schedule",
    "resolve_asset_mode",
    "setup",
    "standin_cache_dir",
    "use_assets",
    "write_atomically",
]


def setup(
    mode: str | None = None,
    *,
    weights: Sequence[str] = ("resnet18",),
    cache_dir: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> Assets:
    """Prepare a page: activate the asset mode, then filter the known import warnings.

    The first code cell of every page calls this once. It is `use_assets` followed by
    `quiet_known_warnings`; the arguments are `use_assets`'s.

    Returns:
        The `Assets` in force (its ``mode`` is ``"real"`` or ``"standin"``).

    Examples:
        >>> setup("real", verbose=False).mode
        'real'
        >>> assets = setup("standin", verbose=False)  # doctest: +SKIP
    """
    assets = use_assets(mode, weights=weights, cache_dir=cache_dir, verbose=verbose)
    quiet_known_warnings()
    return assets


# Where users get them, and what reprs and tracebacks print (as httpx does).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type) or (callable(_value) and hasattr(_value, "__qualname__")):
        _value.__module__ = __name__
del _name, _value
