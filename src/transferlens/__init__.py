"""transferlens: fastai's transfer-learning recipe in plain PyTorch, and tools to inspect it.

Everything public is imported from here; the modules behind it are private::

    import transferlens
    body = transferlens.create_body(resnet, cut=-2)
    head = transferlens.create_head(nf=1024, n_out=37)

``import transferlens`` imports torch only: neither fastai nor torchvision.
"""

from ._assets import Assets, resolve_asset_mode, standin_cache_dir, use_assets
from ._body import (
    as_sequential,
    create_body,
    create_vision_model,
    default_cut,
    has_pool_type,
    num_features,
)
from ._errors import AssetError, LensError
from ._freeze import NORM_TYPES, freeze, freeze_to, is_norm, unfreeze
from ._groups import arch_name, known_architectures, param_groups, resolve_arch, split_family
from ._head import AdaptiveConcatPool2d, Flatten, SigmoidRange, create_head
from ._recorder import ScheduleRecording, record_schedule
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
from ._warnings import KNOWN_WARNINGS, quiet_known_warnings

__version__ = "0.1.0"

__all__ = [
    "KNOWN_WARNINGS",
    "NORM_TYPES",
    "AdaptiveConcatPool2d",
    "AssetError",
    "Assets",
    "FineTunePhase",
    "FineTunePlan",
    "Flatten",
    "LensError",
    "ModuleDiff",
    "OneCycle",
    "OneCycleScheduler",
    "ParameterTree",
    "ScheduleRecording",
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
    "quiet_known_warnings",
    "record_schedule",
    "resolve_arch",
    "resolve_asset_mode",
    "split_family",
    "standin_cache_dir",
    "trainable_report",
    "unfreeze",
    "use_assets",
]
