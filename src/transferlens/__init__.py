"""transferlens: fastai's transfer-learning recipe in plain PyTorch, and reports to inspect it.

Everything public is imported from here; the modules behind it are private::

    import transferlens
    body = transferlens.create_body(resnet, cut=-2)
    head = transferlens.create_head(nf=512, n_out=37)

Three layers, one import direction:

- the library, this namespace: the recipe (``_recipe/``: head, body, groups, freezing, fastai's
  Adam, learning rates, the one-cycle schedule, ``fine_tune``) and its reports (``_reports/``);
- `transferlens.inspector`: ``transferlens inspect`` and ``atlas``, built on the library's public
  names;
- `transferlens.tutorial`: the tutorial site's machinery (asset modes, warning filters, the
  schedule recorder), which only the pages import.

Names load on first use (PEP 562), so ``import transferlens`` costs nothing and the
``transferlens`` command answers ``--help`` before importing torch. ``import transferlens``
never imports fastai or torchvision.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Every public name and the private module that defines it.
_EXPORTS: dict[str, str] = {
    "NORM_TYPES": "_recipe.freeze",
    "Adam": "_recipe.optim",
    "AdaptiveConcatPool2d": "_recipe.head",
    "ArchMeta": "_recipe.meta",
    "BatchRecord": "_recipe.train",
    "DiffEntry": "_reports.diff",
    "EpochRecord": "_recipe.train",
    "FeatureProbe": "_recipe.body",
    "FineTuneLog": "_recipe.train",
    "FineTunePhase": "_recipe.fine_tune_plan",
    "FineTunePlan": "_recipe.fine_tune_plan",
    "Flatten": "_recipe.head",
    "LensError": "_recipe.errors",
    "ModuleDiff": "_reports.diff",
    "OneCycle": "_recipe.one_cycle",
    "OneCycleScheduler": "_recipe.scheduler",
    "ParameterRow": "_reports.tree",
    "ParameterTree": "_reports.tree",
    "SigmoidRange": "_recipe.head",
    "TrainableReport": "_reports.trainable",
    "TrainableRow": "_reports.trainable",
    "arch_meta": "_recipe.meta",
    "arch_name": "_recipe.meta",
    "as_sequential": "_recipe.body",
    "assert_same_outputs": "_reports.outputs",
    "create_body": "_recipe.body",
    "create_head": "_recipe.head",
    "create_vision_model": "_recipe.body",
    "default_cut": "_recipe.body",
    "discriminative_lrs": "_recipe.lrs",
    "eval_mode": "_recipe.eval_mode",
    "fine_tune": "_recipe.train",
    "fine_tune_plan": "_recipe.fine_tune_plan",
    "freeze": "_recipe.freeze",
    "freeze_to": "_recipe.freeze",
    "has_pool_type": "_recipe.body",
    "is_norm": "_recipe.freeze",
    "known_architectures": "_recipe.meta",
    "module_diff": "_reports.diff",
    "no_decay_parameters": "_recipe.optim",
    "num_features": "_recipe.body",
    "one_cycle": "_recipe.one_cycle",
    "optimizer_param_groups": "_recipe.optim",
    "param_groups": "_recipe.groups",
    "parameter_tree": "_reports.tree",
    "probe_features": "_recipe.body",
    "resolve_arch": "_recipe.meta",
    "split_family": "_recipe.meta",
    "trainable_report": "_reports.trainable",
    "unfreeze": "_recipe.freeze",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and the API reference; at run time, __getattr__ loads
    from ._recipe.body import (
        FeatureProbe,
        as_sequential,
        create_body,
        create_vision_model,
        default_cut,
        has_pool_type,
        num_features,
        probe_features,
    )
    from ._recipe.errors import LensError
    from ._recipe.eval_mode import eval_mode
    from ._recipe.fine_tune_plan import FineTunePhase, FineTunePlan, fine_tune_plan
    from ._recipe.freeze import NORM_TYPES, freeze, freeze_to, is_norm, unfreeze
    from ._recipe.groups import param_groups
    from ._recipe.head import AdaptiveConcatPool2d, Flatten, SigmoidRange, create_head
    from ._recipe.lrs import discriminative_lrs
    from ._recipe.meta import (
        ArchMeta,
        arch_meta,
        arch_name,
        known_architectures,
        resolve_arch,
        split_family,
    )
    from ._recipe.one_cycle import OneCycle, one_cycle
    from ._recipe.optim import Adam, no_decay_parameters, optimizer_param_groups
    from ._recipe.scheduler import OneCycleScheduler
    from ._recipe.train import BatchRecord, EpochRecord, FineTuneLog, fine_tune
    from ._reports.diff import DiffEntry, ModuleDiff, module_diff
    from ._reports.outputs import assert_same_outputs
    from ._reports.trainable import TrainableReport, TrainableRow, trainable_report
    from ._reports.tree import ParameterRow, ParameterTree, parameter_tree


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'transferlens' has no attribute {name!r}")
    importlib.import_module(f"{__name__}.{module}")
    _publish_loaded()
    return globals()[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _publish_loaded() -> None:
    """Bind every public name whose module is loaded, and say it lives here.

    As httpx does, a public class or function gets ``__module__ = "transferlens"``, so reprs and
    tracebacks print ``transferlens.LensError``, never the private module it is defined in.
    """
    namespace = globals()
    for public, module in _EXPORTS.items():
        loaded = sys.modules.get(f"{__name__}.{module}")
        if loaded is None or public in namespace:
            continue
        value = getattr(loaded, public)
        namespace[public] = value
        if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
            value.__module__ = __name__
