"""Fetch the real assets once, before the pages run in parallel.

In ``real`` mode on a cold machine (a CI runner's first run, a reader's first ``make test``) the
pages run in parallel kernels, and several of them call ``untar_data(URLs.PETS)`` and load the
resnet18 weights: two kernels could download the same 800 MB archive at once. The test session
calls `fetch_real_assets` first, in its controlling process, so the kernels find everything in
the caches. It downloads through fastai's and torchvision's own code, into their usual caches,
with their own checks (torchvision's hash check, fastai's size and hash table).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ._assets import AssetError, _weights_file_name
from ._files import file_lock


def fetch_real_assets(
    weights: Sequence[str] = ("resnet18",), *, pets: bool = True, verbose: bool = True
) -> dict[str, Path]:
    """Download the real pretrained weights and the Pets data into the usual caches, once.

    What is already in the caches is not downloaded again. The whole fetch holds a lock (a file in
    torch's hub folder), so two test sessions starting at once download each file once.

    Args:
        weights: torchvision model names whose ``DEFAULT`` weights the pages load.
        pets: also fetch the Oxford-IIIT Pets data set (``untar_data(URLs.PETS)``).
        verbose: say on stderr what is being downloaded, with the libraries' progress bars.

    Returns:
        Where each asset is, as a dict such as
        ``{"weights:resnet18": <file>, "pets": <folder>}``.

    Raises:
        AssetError: a download failed (no network, a host down, a file that fails its check).

    Examples:
        >>> fetch_real_assets((), pets=False)  # nothing asked: nothing fetched, nothing locked
        {}
        >>> where = fetch_real_assets(("resnet18",), pets=False)  # doctest: +SKIP
        >>> where["weights:resnet18"].name  # doctest: +SKIP
        'resnet18-f37072fd.pth'
    """
    if not weights and not pets:
        return {}
    import torch.hub
    from torchvision import models

    hub = Path(torch.hub.get_dir())
    hub.mkdir(parents=True, exist_ok=True)
    fetched: dict[str, Path] = {}
    with file_lock(hub / ".transferlens-fetch.lock"):
        for name in weights:
            file_name = _weights_file_name(name)
            target = hub / "checkpoints" / file_name
            if not target.is_file():
                default = models.get_model_weights(name).DEFAULT
                _say(verbose, f"downloading {name} weights from {default.url}")
                with _explained(f"the {name} weights ({default.url})"):
                    # torchvision's own download: hub cache, file name, hash check
                    default.get_state_dict(progress=verbose, check_hash=True)
            fetched[f"weights:{name}"] = target
        if pets:
            from fastai.data.external import URLs, fastai_path, untar_data

            if not (fastai_path("data") / "oxford-iiit-pet").exists():
                _say(verbose, f"downloading the Pets data set from {URLs.PETS}")
            with _explained(f"the Pets data set ({URLs.PETS})"):
                fetched["pets"] = Path(untar_data(URLs.PETS))
    return fetched


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(f"transferlens: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _explained(what: str) -> Iterator[None]:
    """Turn a failed download into an `AssetError` that says what failed and what to do."""
    try:
        yield
    except AssetError:
        raise
    except Exception as error:
        raise AssetError(
            f"could not fetch {what} before the pages run: {error}. Check the network (or a "
            "proxy), or run the pages offline with TRANSFERLENS_ASSETS=standin."
        ) from error
