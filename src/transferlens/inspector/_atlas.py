"""The architecture atlas: every torchvision classification model through fastai's lens.

One row per builder of ``transferlens.known_architectures()`` (and, on request, per model of
``TIMM_MODELS``): what fastai's default ``vision_learner(dls, arch)`` does with it (builds it,
or fails, and why), what ``vision_learner(dls, arch, pretrained=False)`` does, and for the model
fastai builds: where it cuts, the parameter groups, the head's input features, what trains when
frozen, the normalization and the weights the default call loads, and whether
``vision_learner(cut=...)`` is honoured. Every model is built for its structure only, on the meta
device where it can be (``_meta_device``), and nothing is downloaded.

What fastai does that transferlens encodes here, from ``fastai/vision/learner.py`` (2.8):

- ``create_vision_model`` calls ``arch(weights=meta['weights'])`` (``'DEFAULT'``) for the
  builders whose ``model_meta`` entry has ``weights``, and ``arch(pretrained=True)`` for the
  others, which torchvision maps to each builder's legacy weights (``IMAGENET1K_V1``) and, for
  the builders without any (``regnet_y_128gf``, ``vit_h_14``), fails with ``ValueError: No
  weights available``: the default call fails there, ``pretrained=False`` does not.
- The structure can depend on the call: ``googlenet`` built with weights drops its auxiliary
  classifiers, so the default call builds it, while ``pretrained=False`` keeps them and fails.
- ``vision_learner`` adds ``Normalize.from_stats(*meta['stats'])`` for a pretrained model only
  when its ``model_meta`` entry has ``stats`` (``_add_norm``); the default entry has none, so
  every builder missing from ``model_meta`` gets no normalization. A timm model gets its own
  ``default_cfg`` mean and std (``_timm_norm``).
- ``vision_learner`` never passes its ``cut`` argument on (it is not in ``model_args``), and
  ``create_timm_model`` gives ``TimmBody`` ``cut=None``: ``cut`` is honoured by neither path.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from transferlens import arch_meta, create_head, freeze_to, known_architectures, trainable_report
from transferlens._reports.tables import text_table  # shared with the reports

from ._inspect import Inspection, Refusal, fastai_call, inspect_both_calls
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

#: What a row's ``status`` and ``pretrained_false_status`` say.
STATUSES = {
    "ok": "fastai builds it",
    "no weights": "torchvision has no weights for pretrained=True: ValueError",
    "refused": "fastai fails on the model (the reason says where)",
}


@dataclass(frozen=True)
class AtlasRow:
    """One model through fastai's lens (see the module docstring for where each field comes
    from). Counts are parameters, i.e. elements; ``None`` where no call builds the model.

    ``status``/``reason`` say what the default ``vision_learner(dls, arch)`` does,
    ``pretrained_false_status``/``pretrained_false_reason`` what ``pretrained=False`` does
    (`STATUSES`). The numbers describe the model the default call builds, or where it fails,
    the one ``pretrained=False`` builds: ``built_by`` says which (``None`` when neither does).
    """

    name: str
    library: str  # "torchvision" or "timm"
    family: str
    status: str
    reason: str
    pretrained_false_status: str
    pretrained_false_reason: str
    built_by: str | None  # "default" or "pretrained=False"
    cut: int | None
    kept_children: int | None
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
    device: str | None
    suggested_cut: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return asdict(self)


def _stats(mean: Sequence[float], std: Sequence[float]) -> dict[str, list[float]]:
    return {"mean": [float(value) for value in mean], "std": [float(value) for value in std]}


def _family(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1]


def _status(outcome: Inspection | Refusal) -> str:
    if isinstance(outcome, Inspection):
        return "ok"
    return "no weights" if outcome.stage == "weights" else "refused"


def torchvision_row(name: str) -> AtlasRow:
    """The atlas row of one torchvision classification builder.

    Examples:
        >>> row = torchvision_row("regnet_y_128gf")
        >>> row.status, row.pretrained_false_status, row.built_by, row.weights
        ('no weights', 'ok', 'pretrained=False', None)
    """
    import torchvision.models

    builder = torchvision.models.get_model_builder(name)
    meta = arch_meta(name)
    default, random_init = inspect_both_calls(name)
    built = next((o for o in (default, random_init) if isinstance(o, Inspection)), None)
    refusal = next((o for o in (default, random_init) if isinstance(o, Refusal)), None)
    common: dict[str, Any] = {
        "name": name,
        "library": "torchvision",
        "family": _family(builder.__module__),
        "status": _status(default),
        "reason": default.reason if isinstance(default, Refusal) else "",
        "pretrained_false_status": _status(random_init),
        "pretrained_false_reason": random_init.reason if isinstance(random_init, Refusal) else "",
        "splitter": meta.splitter,
        "normalize": _stats(*meta.stats) if meta.stats is not None else None,
        "weights": default.weights,
        "weights_call": ", ".join(f"{k}={v!r}" for k, v in fastai_call(name, True)[1].items()),
        "cut_honoured": CUT_HONOURED,
    }
    notes = [refusal.advice] if refusal is not None else []
    suggested = next(
        (o.suggested_cut for o in (default, random_init) if isinstance(o, Refusal)), None
    )
    if built is None:
        assert refusal is not None
        return AtlasRow(
            **common,
            built_by=None,
            cut=refusal.cut,
            kept_children=None,
            groups=None,
            head_in_features=None,
            parameters=None,
            trainable_when_frozen=None,
            trainable_share=None,
            device=next(o.device for o in (default, random_init) if o.device is not None),
            suggested_cut=suggested,
            notes=notes,
        )
    report = built.report
    return AtlasRow(
        **common,
        built_by="default" if built is default else "pretrained=False",
        cut=built.cut,
        kept_children=built.body_children,
        groups=built.groups,
        head_in_features=2 * built.n_features,
        parameters=report.elements,
        trainable_when_frozen=report.trainable_elements,
        trainable_share=report.trainable_elements / report.elements,
        device=built.device,
        suggested_cut=suggested,
        notes=[*([built.device_note] if built.device_note else []), *notes],
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
    The structure does not depend on ``pretrained`` (timm loads the weights into the model it
    built, and builds with random weights where a model has none), so the model is built once,
    with ``pretrained=False``, and both calls build it.
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
        pretrained_false_status="ok",
        pretrained_false_reason="",
        built_by="default",
        cut=None,
        kept_children=None,
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
        >>> [(row.name, row.status, row.cut, row.splitter) for row in atlas_rows(names=["resnet18"])]
        [('resnet18', 'ok', -2, '_resnet_split')]
    """  # noqa: E501
    chosen = known_architectures() if names is None else names
    with _older_objects_not_rescanned():
        rows = [torchvision_row(name) for name in chosen]
        if with_timm:
            rows += [timm_row(name) for name in TIMM_MODELS]
    return rows


@contextlib.contextmanager
def _older_objects_not_rescanned() -> Iterator[None]:
    """Spare Python's cyclic garbage collector the objects the process held before the block.

    The atlas builds two models per builder, and every collection would scan all the objects
    already alive (a fastai or timm import holds millions): a quarter of the atlas's time.
    ``gc.freeze()`` sets them aside for the block; ``gc.unfreeze()`` gives them back after.
    Left alone when something else has frozen objects already.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 100_000 else f"{count / 1e6:.2f}M"


def _normalize_text(row: AtlasRow) -> str:
    if row.normalize is None:
        return "none"
    mean = row.normalize["mean"]
    return "imagenet" if mean == [0.485, 0.456, 0.406] else "mean " + "/".join(map(str, mean))


def _why(status: str, reason: str) -> str:
    if status == "no weights":
        return "no pretrained=True weights (ValueError)"
    if "StopIteration" in reason:
        return "no child with a pooling layer (StopIteration)"
    return "body fails on every probe input"


def _short_reason(row: AtlasRow) -> str:
    default = "" if row.status == "ok" else _why(row.status, row.reason)
    random_init = (
        ""
        if row.pretrained_false_status == "ok"
        else _why(row.pretrained_false_status, row.pretrained_false_reason)
    )
    if default and random_init and default != random_init:
        return f"{default}; pretrained=False: {random_init}"
    if random_init and not default:
        return f"pretrained=False: {random_init}"
    return default


def _cells(row: AtlasRow) -> list[str]:
    groups = "-" if row.groups is None else " / ".join(_millions(size) for size in row.groups)
    trainable = (
        "-"
        if row.trainable_when_frozen is None or row.trainable_share is None
        else f"{_millions(row.trainable_when_frozen)} ({100 * row.trainable_share:.1f}%)"
    )
    weights = (row.weights or "none").split(".")[-1]
    if row.library == "timm":
        weights = row.weights or "none"  # timm's pretrained tag, e.g. resnet26d.bt_in1k
    elif row.weights_call == "weights='DEFAULT'":
        weights = f"DEFAULT ({weights})"
    return [
        row.name,
        row.status,
        row.pretrained_false_status,
        "-" if row.cut is None else str(row.cut),
        groups,
        "-" if row.head_in_features is None else str(row.head_in_features),
        trainable,
        _normalize_text(row),
        weights,
        row.device or "-",
        _short_reason(row),
    ]


_HEADER = [
    "model",
    "default",
    "pretrained=False",
    "cut",
    "groups (parameters)",
    "head in",
    "trainable when frozen",
    "normalize",
    "weights",
    "device",
    "why not",
]


def _summary(rows: Sequence[AtlasRow]) -> str:
    default = sum(row.status == "ok" for row in rows)
    no_weights = sum(row.status == "no weights" for row in rows)
    random_init = sum(row.pretrained_false_status == "ok" for row in rows)
    cpu = sum(row.device == "cpu" for row in rows)
    return (
        f"{len(rows)} models: vision_learner(dls, arch) builds {default}, fails on "
        f"{len(rows) - default} ({no_weights} without pretrained=True weights); with "
        f"pretrained=False it builds {random_init}. {len(rows) - cpu} inspected on the meta "
        f"device, {cpu} on the CPU. vision_learner(cut=...) honoured: "
        f"{'yes' if CUT_HONOURED else 'no'} (fastai 2.8)."
    )


def format_atlas(rows: Sequence[AtlasRow], fmt: str) -> str:
    """The rows as ``"text"`` (grouped by family), ``"markdown"`` or ``"json"``.

    In text and markdown, ``default`` is the status of ``vision_learner(dls, arch)``,
    ``pretrained=False`` that of ``vision_learner(dls, arch, pretrained=False)``.

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
        table = text_table(_HEADER, [_cells(row) for row in members], right={3, 5})
        lines += ["  " + line.rstrip() for line in table]
        lines.append("")
    return "\n".join([*lines, _summary(rows)]) + "\n"
