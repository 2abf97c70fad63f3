"""The inspector: what fastai's ``vision_learner`` makes of any torchvision architecture.

``transferlens inspect ARCH`` and ``transferlens atlas`` (`main`, in ``cli.py``) print it; the
functions behind them return it as data. Built on the library's public names (``transferlens``),
on models built for their structure only (on PyTorch's meta device where they can be).

Names load on first use (PEP 562): the command answers ``--help`` before importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Every public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "TIMM_MODELS": "_atlas",
    "AtlasRow": "_atlas",
    "Inspection": "_inspect",
    "InspectionRefused": "_inspect",
    "Refusal": "_inspect",
    "atlas_rows": "_atlas",
    "format_atlas": "_atlas",
    "inspect_architecture": "_inspect",
    "main": "cli",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from ._atlas import TIMM_MODELS, AtlasRow, atlas_rows, format_atlas
    from ._inspect import Inspection, InspectionRefused, Refusal, inspect_architecture
    from .cli import main


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'transferlens.inspector' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        value.__module__ = __name__
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
