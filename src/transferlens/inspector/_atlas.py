"""The architecture atlas: every torchvision classification model through fastai's lens.

One row per builder of ``torchvision.models.list_models(module=torchvision.models)`` (and, on
request, per model of ``TIMM_MODELS``): whether fastai's ``vision_learner`` can build it (with
fastai's reason when not), where it cuts, the parameter groups, the head's input features, what
trains when frozen, the normalization and the weights that ``pretrained=True`` brings, and
whether ``vision_learner(cut=...)`` is honoured. Every model is built for its structure only, on
the meta device where it can be (``_meta_device``), so the whole atlas takes seconds.

What fastai does that transferlens encodes here, from ``fastai/vision/learner.py`` (2.8):

- ``vision_learner`` adds ``Normalize.from_stats(*meta['stats'])`` for a pretrained model only
  when its ``model_meta`` entry has ``stats`` (``_add_norm``); the default entry has none, so
  every builder missing from ``model_meta`` gets no normalization. A timm model gets its own
  ``default_cfg`` mean and std (``_timm_norm``).
- ``create_vision_model`` calls ``arch(weights=meta['weights'])`` (``'DEFAULT'``) for the
  builders whose entry has ``weights``, and ``arch(pretrained=True)`` for the others, which
  torchvision maps to each builder's legacy weights (``IMAGENET1K_V1``, or none at all).
- ``vision_learner`` never passes its ``cut`` argument on (it is not in ``model_args``), and
  ``create_timm_model`` gives ``TimmBody`` ``cut=None``: ``cut`` is honoured by neither path.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from transferlens import arch_meta, create_head, freeze_to, trainable_report
from transferlens._reports.tables import text_table  # shared with the reports

from ._inspect import InspectionRefused, inspect_architecture, torchvision_names
from ._meta_device import build_for_structure

#: The timm models ``--timm`` adds: popular ones from each family people fine-tune most
#: (ConvNeXt, ViT, EfficientNet, ResNet-D, RegNet), small and large.
TIMM_MODELS: tuple[str, ...] = (
    "convnext_tiny",
    "convnext_small",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "efficientnet_b0",
    "efficientnet_b3",
    "tf_efficientnetv2_s",
    "resnet26d",
    "resnet50d",
    "regnetx_032",
    "regnety_040",
)

#: ``vision_learner(cut=...)`` reaches neither ``create_vision_model`` nor ``TimmBody``.
CUT_HONOURED = False


@dataclass(frozen=True)
class AtlasRow:
    """One model through fastai's lens (see the module docstring for where each field comes
    from). Counts are parameters, i.e. elements; ``None`` where the model is refused."""

    name: str
    library: str  # "torchvision" or "timm"
    family: str
    status: str  # "ok" or "refused"
    reason: str
    cut: int | None
    splitter: str
    groups: list[int] | None
    head_in_features: int | None
    parameters: int | None
    trainable_when_frozen: int | None
    trainable_share: float | None
    normalize: dict[str, list[float]] | None
    weights: str | None
    weights_call: str
    cut_honoured: bool
    device: str
    suggested_cut: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return asdict(self)


def _stats(mean: Sequence[float], std: Sequence[float]) -> dict[str, list[float]]:
    return {"mean": [float(value) for value in mean], "std": [float(value) for value in std]}


class _Resolved(Exception):
    def __init__(self, weights: Any) -> None:
        super().__init__("resolved")
        self.weights = weights


def _torchvision_weights(builder: Callable[..., Any], requested: str | None) -> tuple[str, str]:
    """What ``create_vision_model(arch, pretrained=True)`` passes, and the weights it loads.

    Calls the builder exactly as fastai does and stops it when the builder resolves its
    ``weights`` argument (``WeightsEnum.verify``, every builder's first line): nothing is built
    or downloaded.
    """
    from torchvision.models._api import WeightsEnum

    kwargs: dict[str, Any] = {"weights": requested} if requested else {"pretrained": True}
    call = f"weights={requested!r}" if requested else "pretrained=True"
    verify = WeightsEnum.verify

    def resolve(cls: type[WeightsEnum], obj: Any) -> Any:
        raise _Resolved(verify.__func__(cls, obj))  # type: ignore[attr-defined]

    WeightsEnum.verify = classmethod(resolve)  # type: ignore[assignment,method-assign]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            builder(**kwargs)
    except _Resolved as resolved:
        weights = resolved.weights
        return call, (f"{type(weights).__name__}.{weights.name}" if weights else "none")
    except ValueError as error:  # torchvision: "No weights available for model vit_h_14"
        return call, f"none ({error})"
    finally:
        WeightsEnum.verify = verify  # type: ignore[method-assign]
    raise RuntimeError(f"{builder.__name__} never resolved its weights")  # pragma: no cover


def _family(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1]


def torchvision_row(name: str) -> AtlasRow:
    """The atlas row of one torchvision classification builder."""
    import torchvision.models


    builder = torchvision.models.get_model_builder(name)
    meta = arch_meta(name)
    call, weights = _torchvision_weights(builder, meta.weights)
    normalize = _stats(*meta.stats) if meta.stats is not None else None
    common = {
        "name": name,
        "library": "torchvision",
        "family": _family(builder.__module__),
        "splitter": meta.splitter,
        "normalize": normalize,
        "weights": weights,
        "weights_call": call,
        "cut_honoured": CUT_HONOURED,
    }
    try:
        found = inspect_architecture(name)
    except InspectionRefused as refused:
        refusal = refused.refusal
        return AtlasRow(
            **common,
            status="refused",
            reason=refusal.reason,
            cut=refusal.cut,
            groups=None,
            head_in_features=None,
            parameters=None,
            trainable_when_frozen=None,
            trainable_share=None,
            device=refusal.device,
            suggested_cut=refusal.suggested_cut,
            notes=[refusal.advice],
        )
    report = found.report
    return AtlasRow(
        **common,
        status="ok",
        reason="",
        cut=found.cut,
        groups=found.groups,
        head_in_features=2 * found.n_features,
        parameters=report.elements,
        trainable_when_frozen=report.trainable_elements,
        trainable_share=report.trainable_elements / report.elements,
        device=found.device,
        notes=[found.device_note] if found.device_note else [],
    )


class _TimmBody(nn.Module):
    """fastai's ``TimmBody`` without its forward: the whole timm model, as ``.model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def timm_row(name: str) -> AtlasRow:
    """The atlas row of one timm model, as ``vision_learner(dls, name)`` builds it.

    Mirrors ``fastai.vision.learner.create_timm_model``: ``timm.create_model(name,
    num_classes=0)`` wrapped whole in a ``TimmBody`` (no cut), a head on ``num_features`` that
    pools only when the model's ``default_cfg`` has a ``pool_size``, and ``default_split``.
    """
    import timm


    built = build_for_structure(timm.create_model, model_name=name, pretrained=False, num_classes=0)
    model = built.model
    cfg = dict(model.default_cfg)
    pool = cfg.get("pool_size") is not None
    with built.context():
        head = create_head(model.num_features, 2, pool=pool)
    vision_model = nn.Sequential(_TimmBody(model), head)
    groups = [list(vision_model[0].parameters()), list(vision_model[1:].parameters())]
    freeze_to(vision_model, groups, -1)
    report = trainable_report(vision_model, groups)
    tag = cfg.get("tag")
    return AtlasRow(
        name=name,
        library="timm",
        family=_family(type(model).__module__),
        status="ok",
        reason="",
        cut=None,
        splitter="default_split",
        groups=[sum(p.numel() for p in group) for group in groups],
        head_in_features=(2 if pool else 1) * model.num_features,
        parameters=report.elements,
        trainable_when_frozen=report.trainable_elements,
        trainable_share=report.trainable_elements / report.elements,
        normalize=_stats(cfg["mean"], cfg["std"]),
        weights=f"{cfg.get('architecture', name)}.{tag}" if tag else None,
        weights_call="timm.create_model(pretrained=True)",
        cut_honoured=CUT_HONOURED,
        device=built.device,
        notes=[built.note] if built.note else [],
    )


def atlas_rows(with_timm: bool = False, names: Sequence[str] | None = None) -> list[AtlasRow]:
    """Every torchvision classification builder's row, then (``with_timm``) ``TIMM_MODELS``.

    Args:
        with_timm: Add the rows of ``TIMM_MODELS`` (timm must be installed).
        names: Only these torchvision models, in this order (default: all of them).

    Returns:
        One `AtlasRow` per model.

    Examples:
        >>> [(row.name, row.cut, row.splitter) for row in atlas_rows(names=["resnet18"])]
        [('resnet18', -2, '_resnet_split')]
    """
    rows = [torchvision_row(name) for name in (torchvision_names() if names is None else names)]
    if with_timm:
        rows += [timm_row(name) for name in TIMM_MODELS]
    return rows


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 100_000 else f"{count / 1e6:.2f}M"


def _normalize_text(row: AtlasRow) -> str:
    if row.normalize is None:
        return "none"
    mean = row.normalize["mean"]
    return "imagenet" if mean == [0.485, 0.456, 0.406] else "mean " + "/".join(map(str, mean))


def _short_reason(row: AtlasRow) -> str:
    if row.status == "ok":
        return ""
    if "StopIteration" in row.reason:
        return "no child with a pooling layer (StopIteration)"
    return "body fails on every probe input"


def _cells(row: AtlasRow) -> list[str]:
    groups = "-" if row.groups is None else " / ".join(_millions(size) for size in row.groups)
    trainable = (
        "-"
        if row.trainable_when_frozen is None or row.trainable_share is None
        else f"{_millions(row.trainable_when_frozen)} ({100 * row.trainable_share:.1f}%)"
    )
    weights = (row.weights or "none").split(".")[-1].split(" (")[0]
    if row.library == "timm":
        weights = row.weights or "none"  # timm's pretrained tag, e.g. resnet26d.bt_in1k
    elif row.weights_call == "weights='DEFAULT'":
        weights = f"DEFAULT ({weights})"
    return [
        row.name,
        row.status,
        "-" if row.cut is None else str(row.cut),
        groups,
        "-" if row.head_in_features is None else str(row.head_in_features),
        trainable,
        _normalize_text(row),
        weights,
        row.device,
        _short_reason(row),
    ]


_HEADER = [
    "model",
    "status",
    "cut",
    "groups (parameters)",
    "head in",
    "trainable when frozen",
    "normalize",
    "weights",
    "device",
    "refused because",
]


def _summary(rows: Sequence[AtlasRow]) -> str:
    ok = sum(row.status == "ok" for row in rows)
    cpu = sum(row.device == "cpu" for row in rows)
    return (
        f"{len(rows)} models: {ok} built by fastai, {len(rows) - ok} refused; "
        f"{len(rows) - cpu} inspected on the meta device, {cpu} on the CPU. "
        f"vision_learner(cut=...) honoured: {'yes' if CUT_HONOURED else 'no'} (fastai 2.8)."
    )


def format_atlas(rows: Sequence[AtlasRow], fmt: str) -> str:
    """The rows as ``"text"`` (grouped by family), ``"markdown"`` or ``"json"``.

    Examples:
        >>> print(format_atlas(atlas_rows(names=["resnet18"]), "json"))  # doctest: +ELLIPSIS
        [
          {
            "name": "resnet18",
            "library": "torchvision",
        ...
    """
    if fmt == "json":
        return json.dumps([row.to_dict() for row in rows], indent=2) + "\n"
    families: dict[tuple[str, str], list[AtlasRow]] = {}
    for row in rows:
        families.setdefault((row.library, row.family), []).append(row)
    lines: list[str] = []
    if fmt == "markdown":
        lines += ["| family | " + " | ".join(_HEADER) + " |", "|" + "---|" * (len(_HEADER) + 1)]
        for (library, family), members in families.items():
            for row in members:
                lines.append(f"| {library} {family} | " + " | ".join(_cells(row)) + " |")
        return "\n".join([*lines, "", _summary(rows)]) + "\n"

    for (library, family), members in families.items():
        lines.append(f"{library} {family}")
        table = text_table(_HEADER, [_cells(row) for row in members], right={2, 4})
        lines += ["  " + line.rstrip() for line in table]
        lines.append("")
    return "\n".join([*lines, _summary(rows)]) + "\n"
