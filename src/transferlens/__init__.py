"""transferlens: fastai's transfer-learning recipe in plain PyTorch, and tools to inspect it.

Everything public is imported from here; the modules behind it are private::

    import transferlens
    body = transferlens.create_body(resnet, cut=-2)
    head = transferlens.create_head(nf=1024, n_out=37)

``import transferlens`` imports torch only: neither fastai nor torchvision. The tutorial site's
machinery (asset modes, warning filters, the schedule recorder) lives apart, in
`transferlens.tutorial`, which only the pages import.
"""

from ._body import (
    as_sequential,
    create_body,
    create_vision_model,
    default_cut,
    has_pool_type,
    num_features,
)
from ._diff import DiffEntry, ModuleDiff, module_diff
from ._errors import LensError
from ._freeze import NORM_TYPES, freeze, freeze_to, is_norm, unfreeze
from ._groups import param_groups
from ._head import AdaptiveConcatPool2d, Flatten, SigmoidRange, create_head
from ._meta import (
    ArchMeta,
    arch_meta,
    arch_name,
    known_architectures,
    resolve_arch,
    split_family,
)
from ._meta_device import shape_memo
from ._optim import Adam, no_decay_parameters, optimizer_param_groups
from ._outputs import assert_same_outputs
from ._schedule import (
    FineTunePhase,
    FineTunePlan,
    OneCycle,
    OneCycleScheduler,
    discriminative_lrs,
    fine_tune_plan,
    one_cycle,
)
from ._train import BatchRecord, fine_tune
from ._trainable import TrainableReport, TrainableRow, trainable_report
from ._tree import ParameterRow, ParameterTree, parameter_tree

__version__ = "0.1.0"

__all__ = [
    "NORM_TYPES",
    "Adam",
    "AdaptiveConcatPool2d",
    "ArchMeta",
    "BatchRecord",
    "DiffEntry",
    "FineTunePhase",
    "FineTunePlan",
    "Flatten",
    "LensError",
    "ModuleDiff",
    "OneCycle",
    "OneCycleScheduler",
    "ParameterRow",
    "ParameterTree",
    "SigmoidRange",
    "TrainableReport",
    "TrainableRow",
    "arch_meta",
    "arch_name",
    "as_sequential",
    "assert_same_outputs",
    "create_body",
    "create_head",
    "create_vision_model",
    "default_cut",
    "discriminative_lrs",
    "fine_tune",
    "fine_tune_plan",
    "freeze",
    "freeze_to",
    "has_pool_type",
    "is_norm",
    "known_architectures",
    "module_diff",
    "no_decay_parameters",
    "num_features",
    "one_cycle",
    "optimizer_param_groups",
    "param_groups",
    "parameter_tree",
    "resolve_arch",
    "shape_memo",
    "split_family",
    "trainable_report",
    "unfreeze",
]
