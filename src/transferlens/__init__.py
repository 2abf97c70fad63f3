"""transferlens: fastai's transfer-learning recipe in plain PyTorch, and tools to inspect it.

Everything public is imported from here; the modules behind it are private::

    import transferlens
    body = transferlens.create_body(resnet, cut=-2)
    head = transferlens.create_head(nf=1024, n_out=37)

``import transferlens`` imports torch only: neither fastai nor torchvision. The tutorial site's
machinery (asset modes, warning filters, the schedule recorder) lives apart, in
:mod:`transferlens.tutorial`, which only the pages import.
"""

from ._body import (
    as_sequential,
    create_body,
    create_vision_model,
    default_cut,
    has_pool_type,
    num_features,
)
from ._errors import LensError
from ._freeze import NORM_TYPES, freeze, freeze_to, is_norm, unfreeze
from ._groups import arch_name, known_architectures, param_groups, resolve_arch, split_family
from ._head import AdaptiveConcatPool2d, Flatten, SigmoidRange, create_head
from ._report import (
    ModuleDiff,
    ParameterTree,
    TrainableReport,
    assert_same_outputs,
    module_diff,
    parameter_tree,
    trainable_report,
)
from ._schedule import (
    FineTunePhase,
    FineTunePlan,
    OneCycle,
    OneCycleScheduler,
    discriminative_lrs,
    fine_tune_plan,
    one_cycle,
)

__version__ = "0.1.0"

__all__ = [
    "NORM_TYPES",
    "AdaptiveConcatPool2d",
    "FineTunePhase",
    "FineTunePlan",
    "Flatten",
    "LensError",
    "ModuleDiff",
    "OneCycle",
    "OneCycleScheduler",
    "ParameterTree",
    "SigmoidRange",
    "TrainableReport",
    "arch_name",
    "as_sequential",
    "assert_same_outputs",
    "create_body",
    "create_head",
    "create_vision_model",
    "default_cut",
    "discriminative_lrs",
    "fine_tune_plan",
    "freeze",
    "freeze_to",
    "has_pool_type",
    "is_norm",
    "known_architectures",
    "module_diff",
    "num_features",
    "one_cycle",
    "param_groups",
    "parameter_tree",
    "resolve_arch",
    "split_family",
    "trainable_report",
    "unfreeze",
]
