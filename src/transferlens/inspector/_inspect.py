"""What fastai's ``vision_learner`` makes of one torchvision architecture, or why it cannot.

The engine behind ``transferlens inspect`` and ``transferlens atlas``. It follows
``fastai.vision.learner.vision_learner`` and ``create_vision_model`` step by step, with
transferlens's own functions (fastai is not needed), on a model built for its structure only
(``_meta_device``):

1. call the builder as fastai does: ``arch(weights='DEFAULT')`` for the builders in fastai's
   ``model_meta``, ``arch(pretrained=True)`` for the others (``pretrained=False``: ``weights=None``
   and ``pretrained=False``). torchvision maps ``pretrained=True`` to a builder's legacy weights
   and raises ``ValueError: No weights available`` when it has none (``regnet_y_128gf``,
   ``vit_h_14``): fastai's default call fails there. The weights are resolved, never
   downloaded, and the model is built as that call builds it (``googlenet`` with weights has no
   auxiliary classifiers), on PyTorch's meta device where it can be;
2. cut: ``--cut``, else ``model_meta``'s cut, else ``create_body``'s pooling-layer rule;
3. count the body's output channels with fastai's probe (``num_features_model``: a forward on
   a ``1 x 3 x 32 x 32`` input, doubled up to 2048 pixels while it fails): the library's
   ``probe_features``, which also says which child fails, on what input;
4. ``create_head``, the splitter's parameter groups, ``freeze_to``, the learning rates.

Where fastai fails (no weights; no child with a pooling layer: a bare ``StopIteration``; a body
that fails on every probe), the inspection is refused with fastai's reason in words and what to
do instead. A ``--cut`` is suggested only when it keeps the feature extractor (`useful_cut`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from transferlens import (
    LensError,
    TrainableReport,
    arch_meta,
    create_body,
    create_head,
    discriminative_lrs,
    eval_mode,
    freeze_to,
    module_diff,
    param_groups,
    probe_features,
    resolve_arch,
    trainable_report,
)

from ._meta_device import Built, build_for_structure, shape_memo, weights_not_loaded

#: How the refusals name the cut: the CLI's option (a library caller could pass ``cut``).
CUT_OPTION = "--cut"

_SUGGEST_SIZE = 224

#: A suggested body keeps more than this share of the parameters the model's own forward uses
#: outside its last child (the classifier fastai replaces): see `useful_cut`.
KEEP_SHARE = 0.5

#: What to do where no cut gives a useful body.
OTHER_ROUTES = (
    "Use fastai's timm path instead, a timm model name as `arch` (for a ViT, e.g. "
    'vision_learner(dls, "vit_base_patch16_224")): fastai keeps the whole timm model, no cut. '
    "Or cut the body yourself: create_vision_model(arch, n_out, cut=<a function returning the "
    "body>, custom_head=<your head>); without a custom_head fastai sizes its head by running the "
    "body's children in order, not the body's forward."
)


@dataclass(frozen=True)
class Refusal:
    """Why fastai cannot build a model, in words.

    Attributes:
        arch: The torchvision name.
        stage: Where fastai fails: ``"weights"`` (torchvision has no weights for the
            ``pretrained=True`` call), ``"cut"`` (``create_body`` finds no child with a pooling
            layer), ``"features"`` (the body fails on every probe input), ``"split"`` (the
            splitter cannot split the body).
        reason: What fastai does and how it fails (the message puts the call first:
            ``"fastai's vision_learner(dls, vit_b_16) fails: " + reason``, but at the
            ``"split"`` stage, where fastai raises nothing).
        advice: What a user can do instead.
        fastai_error: The exception fastai raises, e.g. ``"StopIteration"``.
        cut: The cut that failed (``None`` when there is none).
        suggested_cut: A cut that works and keeps the feature extractor (`useful_cut`), or
            ``None``.
        runnable_cut: The most children that run on a 224 px image and give feature maps (a
            cut fastai accepts), or ``None``; suggested only when it is useful.
        runnable_share: The share of the parameters of the model's forward outside its last
            child that ``runnable_cut`` keeps, or ``None``.
        device: ``"meta"`` or ``"cpu"``: where the model was built; ``None`` when it was not.
        pretrained: The ``pretrained`` argument of the ``vision_learner`` call.
        call: The ``vision_learner`` call that fails.
        weights: The weights that call loads (``"EnumName.MEMBER"``), or ``None`` (random
            weights, or none available).
    """

    arch: str
    stage: str
    reason: str
    advice: str
    fastai_error: str
    cut: int | None
    suggested_cut: int | None
    runnable_cut: int | None
    runnable_share: float | None
    device: str | None
    pretrained: bool
    call: str
    weights: str | None


class InspectionRefused(LensError):
    """fastai cannot build the model as asked; ``refusal`` says why and what to do."""

    def __init__(self, refusal: Refusal) -> None:
        # fastai raises nothing at the "split" stage: it splits wrongly, in silence
        failing = "" if refusal.stage == "split" else f"fastai's {refusal.call} fails: "
        super().__init__(f"{failing}{refusal.reason} {refusal.advice}")
        self.refusal = refusal


@dataclass(frozen=True)
class Inspection:
    """Everything ``inspect`` found about one architecture, before it is printed."""

    arch: str
    pretrained: bool
    call: str  # "vision_learner(dls, resnet18)"
    builder_call: str  # "resnet18(weights='DEFAULT')"
    weights: str | None  # "ResNet18_Weights.IMAGENET1K_V1"; None: random weights
    model_type: str
    device: str
    device_note: str
    n_children: int
    child_names: list[str]
    cut: int
    cut_source: str  # "--cut", "model_meta" or "pooling rule"
    body_children: int
    cut_diff: list[dict[str, Any]]  # module_diff(model, body) entries
    n_features: int
    probe_size: int
    n_out: int
    head: nn.Sequential
    split_family: str
    splitter: str
    groups: list[int]  # elements per parameter group
    freeze: int
    frozen_groups: int
    lr: float | slice
    lrs: list[float]
    report: TrainableReport
    model_parameters: int


def fastai_call(name: str, pretrained: bool = True) -> tuple[str, dict[str, Any], str]:
    """How fastai's ``vision_learner(dls, arch, pretrained=...)`` calls the builder.

    ``create_vision_model`` calls ``arch(weights=meta['weights'])`` (``'DEFAULT'``, or ``None``
    when not ``pretrained``) for the builders whose ``model_meta`` entry has ``weights``, and
    ``arch(pretrained=pretrained)`` for all others.

    Returns:
        The ``vision_learner`` call, the builder's keyword arguments, and the builder call.

    Examples:
        >>> fastai_call("resnet18")
        ('vision_learner(dls, resnet18)', {'weights': 'DEFAULT'}, "resnet18(weights='DEFAULT')")
        >>> fastai_call("regnet_y_128gf", pretrained=False)[1:]
        ({'pretrained': False}, 'regnet_y_128gf(pretrained=False)')
    """
    meta = arch_meta(name)
    if meta.weights is not None:
        kwargs: dict[str, Any] = {"weights": meta.weights if pretrained else None}
    else:
        kwargs = {"pretrained": pretrained}
    learner = f"vision_learner(dls, {name}{'' if pretrained else ', pretrained=False'})"
    arguments = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
    return learner, kwargs, f"{name}({arguments})"


class _Resolved(Exception):
    def __init__(self, weights: Any) -> None:
        super().__init__("resolved")
        self.weights = weights


def resolve_weights(builder: Callable[..., Any], **kwargs: Any) -> str | None:
    """The weights ``builder(**kwargs)`` would load, e.g. ``"ResNet50_Weights.IMAGENET1K_V2"``.

    Calls the builder and stops it when it resolves its ``weights`` argument
    (``WeightsEnum.verify``, every torchvision builder's first line): nothing is built or
    downloaded.

    Returns:
        ``"EnumName.MEMBER"``, or ``None`` for random weights.

    Raises:
        ValueError: torchvision's own, for ``pretrained=True`` where a builder has no legacy
            weights (``"No weights available for model vit_h_14"``).
    """
    from torchvision.models._api import WeightsEnum

    verify = WeightsEnum.__dict__["verify"]  # the classmethod itself, not a bound method

    def resolve(cls: type[WeightsEnum], obj: Any) -> Any:
        raise _Resolved(verify.__func__(cls, obj))

    WeightsEnum.verify = classmethod(resolve)  # type: ignore[assignment,method-assign]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's pretrained= deprecation
            builder(**kwargs)
    except _Resolved as resolved:
        weights = resolved.weights
        return f"{type(weights).__name__}.{weights.name}" if weights is not None else None
    finally:
        WeightsEnum.verify = verify  # type: ignore[method-assign]
    raise RuntimeError(f"{builder.__name__} never resolved its weights")  # pragma: no cover


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _describe_child(names: Sequence[str], children: Sequence[nn.Module], index: int) -> str:
    return f"child {index} `{names[index]}` ({type(children[index]).__name__})"


def _short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _feature_probe(children: Sequence[nn.Module], size: int = 32, max_size: int = 2048) -> Any:
    """``transferlens.probe_features`` on ``nn.Sequential(*children)``: what fastai's
    ``num_features_model`` runs (from 32 px, doubled up to 2048 while it fails), child by child,
    so a failure names the child, and ``feature_map_children`` says how many ran to 4-d maps."""
    return probe_features(nn.Sequential(*children), size=(size, size), max_size=max_size)


def _longest_runnable_cut(children: Sequence[nn.Module], size: int = _SUGGEST_SIZE) -> int | None:
    """The largest ``k`` such that ``children[:k]`` runs on a ``size`` px image and gives 4-d
    feature maps (what fastai's head pools)."""
    return _feature_probe(children, size, size).feature_map_children


def _children_the_forward_uses(model: nn.Module, size: int) -> set[str] | None:
    """The names of the children ``model``'s own forward runs, in part or whole (eval mode, a
    ``size`` px image), or ``None`` when that forward fails. A child counts when any module in it
    runs: a ``ModuleList`` is never called itself, only its members are."""
    used: set[str] = set()
    hooks = [
        module.register_forward_pre_hook(lambda module, args, name=name: used.add(name))
        for name, child in model.named_children()
        for module in child.modules()
    ]
    first = next(model.parameters(), None)
    image = torch.empty(1, 3, size, size, **({} if first is None else {
        "dtype": first.dtype, "device": first.device}))  # fmt: skip
    try:
        with eval_mode(model), torch.no_grad():
            model(image)
    except Exception:
        return None
    finally:
        for hook in hooks:
            hook.remove()
    return used


def useful_cut(
    model: nn.Module, runnable: int | None, size: int = _SUGGEST_SIZE
) -> tuple[int | None, float | None]:
    """Whether the longest runnable cut keeps the feature extractor: the cut to suggest, if any.

    The rule: a body ``children[:k]`` is worth suggesting when it keeps more than half
    (`KEEP_SHARE`) of the parameters that the model's own forward (eval mode, a ``size`` px
    image) uses outside its last child, the classifier that fastai's head replaces. Transfer
    learning keeps the pretrained feature extractor; a body that drops most of it is not one.
    Children the forward never runs (googlenet's auxiliary classifiers, used in training only)
    count on neither side; when the forward itself fails, every child but the last counts.
    This refuses ``vit_b_16``'s ``--cut 1`` (``conv_proj`` alone: the encoder's output is a
    sequence of tokens, not feature maps) and keeps ``googlenet``'s ``--cut 16``.

    Args:
        model: The whole built model.
        runnable: The most children that run and give feature maps, or ``None``.
        size: The image size the forward runs on.

    Returns:
        The cut to suggest (``runnable`` when it is useful, else ``None``) and the share it
        keeps (``None`` without a runnable cut).
    """
    if runnable is None:
        return None, None
    named = list(model.named_children())
    used = _children_the_forward_uses(model, size)
    counted = [(index, child) for index, (name, child) in enumerate(named[:-1])
               if used is None or name in used]  # fmt: skip
    total = sum(_params(child) for _, child in counted)
    kept = sum(_params(child) for index, child in counted if index < runnable)
    share = kept / total if total else 1.0
    return (runnable if share > KEEP_SHARE else None), share


def _advice(
    name: str, names: Sequence[str], runnable: int | None, share: float | None, size: int
) -> str:
    how = (
        f"Pass {CUT_OPTION} N to keep the first N children (fastai: "
        f"create_vision_model(arch, n_out, cut=N) in your own Learner; vision_learner ignores "
        "`cut`, fastai#4027)."
    )
    if runnable is None or share is None:
        return (
            f"No prefix of {name}'s children runs on a {size} px image and gives feature maps. "
            f"{OTHER_ROUTES}"
        )
    where = f"{CUT_OPTION} {runnable} (up to `{names[runnable - 1]}`"
    kept = f"{100 * share:.1f}% of the parameters {name}'s forward uses outside `{names[-1]}`"
    if share > KEEP_SHARE:
        return (
            f"{how} The most children that still run on a {size} px image and give feature "
            f"maps: {where}, {kept})."
        )
    return (
        f"No {CUT_OPTION} gives a useful body: the most children that run on a {size} px image "
        f"and give feature maps, {where}), keep {kept} (a suggested body keeps over "
        f"{KEEP_SHARE:.0%}). {OTHER_ROUTES}"
    )


def _cut_index(
    cut: int | str | None, name: str, names: Sequence[str], meta_cut: int | None
) -> tuple[int | None, str]:
    if isinstance(cut, str):
        if cut not in names:
            raise LensError(
                f"`{CUT_OPTION} {cut}`: {name} has no child called {cut!r}. Its children, in "
                f"order: {', '.join(names)}."
            )
        return names.index(cut), CUT_OPTION
    if cut is not None:
        if not -len(names) <= cut <= len(names):
            raise LensError(
                f"`{CUT_OPTION}` must be between {-len(names)} and {len(names)} ({name} has "
                f"{len(names)} children), got {cut}."
            )
        return cut, CUT_OPTION
    return meta_cut, "model_meta"


@dataclass(frozen=True)
class _Call:
    """One ``vision_learner`` call of one builder, its weights resolved."""

    name: str
    pretrained: bool
    learner: str  # "vision_learner(dls, resnet18)"
    kwargs: dict[str, Any]
    builder: str  # "resnet18(weights='DEFAULT')"
    weights: str | None


def _resolve_call(name: str, pretrained: bool) -> _Call:
    """The call, with its weights resolved; refused when torchvision has none."""
    import torchvision.models

    learner, kwargs, builder = fastai_call(name, pretrained)
    try:
        weights = resolve_weights(torchvision.models.get_model_builder(name), **kwargs)
    except ValueError as error:
        raise InspectionRefused(
            Refusal(
                arch=name,
                stage="weights",
                reason=(
                    f"{name} has no entry in fastai's model_meta, so create_vision_model calls "
                    f"{builder}, which torchvision maps to the builder's legacy weights, and "
                    f"{name} has none: torchvision raises {_short_error(error)}."
                ),
                advice=(
                    f"Pass --no-pretrained to see what {fastai_call(name, False)[0]} does "
                    "(random weights). For torchvision's own weights, give fastai a function "
                    f"as `arch`: vision_learner(dls, lambda pretrained: {name}(weights="
                    f"'DEFAULT' if pretrained else None)), which fastai then cuts and splits as "
                    "it does with pretrained=False (what --no-pretrained shows)."
                ),
                fastai_error=type(error).__name__,
                cut=None,
                suggested_cut=None,
                runnable_cut=None,
                runnable_share=None,
                device=None,
                pretrained=pretrained,
                call=learner,
                weights=None,
            )
        ) from error
    return _Call(name, pretrained, learner, kwargs, builder, weights)


def _build(call: _Call) -> Built:
    import torchvision.models

    builder = torchvision.models.get_model_builder(call.name)
    if call.weights is None:
        return build_for_structure(builder, **call.kwargs)
    with weights_not_loaded():
        return build_for_structure(builder, **call.kwargs)


def inspect_architecture(
    arch: str,
    n_out: int = 2,
    cut: int | str | None = None,
    freeze: int | None = None,
    lr: float | slice = 1e-3,
    pretrained: bool = True,
) -> Inspection:
    """Follow fastai's ``vision_learner`` and ``create_vision_model`` for a torchvision name.

    Args:
        arch: A torchvision classification model name.
        n_out: Classes.
        cut: ``None`` for fastai's choice, an int (``children[:cut]``) or a child's name (cut
            before it).
        freeze: ``freeze_to(freeze)``; ``None`` as ``vision_learner`` leaves it: ``-1``
            (``learn.freeze()``) when ``pretrained``, else ``0`` (nothing frozen).
        lr: A learning rate or a slice, as ``discriminative_lrs`` takes it.
        pretrained: ``vision_learner``'s ``pretrained``: the model as the default call
            (``True``) builds it, with the weights it would load (resolved, not loaded), or
            with random weights (``False``).

    Returns:
        The inspection.

    Raises:
        InspectionRefused: fastai cannot build the model (see ``Refusal``).
        LensError: A bad argument.

    Examples:
        >>> found = inspect_architecture("resnet18", n_out=37)
        >>> found.cut, found.cut_source, found.n_features, found.splitter, found.weights
        (-2, 'model_meta', 512, '_resnet_split', 'ResNet18_Weights.IMAGENET1K_V1')
        >>> try:
        ...     inspect_architecture("regnet_y_128gf")
        ... except InspectionRefused as refused:
        ...     print(refused.refusal.stage, refused.refusal.fastai_error)
        weights ValueError
        >>> inspect_architecture("regnet_y_128gf", pretrained=False).frozen_groups
        0
    """
    call = _resolve_call(resolve_arch(arch), pretrained)
    return _inspect_built(call, _build(call), n_out, cut, freeze, lr)


def _structure(model: nn.Module) -> tuple[Any, ...]:
    """What an inspection reads from a model: its modules (classes, settings, order) and the
    names and shapes of its tensors."""
    return (
        repr(model),
        [(name, tuple(p.shape), p.dtype) for name, p in model.named_parameters()],
        [(name, tuple(b.shape), b.dtype) for name, b in model.named_buffers()],
    )


def inspect_both_calls(
    arch: str, freeze: int = -1
) -> tuple[Inspection | Refusal, Inspection | Refusal]:
    """`inspect_architecture` for the default call and for ``pretrained=False``, or why not.

    Both models are built; when they have the same structure (modules and tensor shapes: all
    builders but ``googlenet``, whose weights drop its auxiliary classifiers) the second one is
    not inspected again: the inspection reads nothing else.

    Args:
        arch: A torchvision classification model name.
        freeze: ``freeze_to(freeze)`` for both (default: frozen, as ``learn.freeze()``).

    Returns:
        ``(default, pretrained_false)``, each an `Inspection` or a `Refusal`.

    Examples:
        >>> default, random_init = inspect_both_calls("googlenet")
        >>> type(default).__name__, random_init.stage, random_init.suggested_cut
        ('Inspection', 'features', 16)
    """
    name = resolve_arch(arch)
    outcomes: list[Inspection | Refusal] = []
    seen: tuple[tuple[Any, ...], Inspection | Refusal] | None = None
    for pretrained in (True, False):
        try:
            call = _resolve_call(name, pretrained)
        except InspectionRefused as refused:
            outcomes.append(refused.refusal)
            continue
        built = _build(call)
        structure = _structure(built.model)
        if seen is not None and seen[0] == structure:
            outcomes.append(_for_call(seen[1], call))
            continue
        try:
            outcome: Inspection | Refusal = _inspect_built(call, built, freeze=freeze)
        except InspectionRefused as refused:
            outcome = refused.refusal
        seen = (structure, outcome)
        outcomes.append(outcome)
    return outcomes[0], outcomes[1]


def _for_call(outcome: Inspection | Refusal, call: _Call) -> Inspection | Refusal:
    """The same inspection (or refusal), for another call that builds the same structure."""
    fields = {"pretrained": call.pretrained, "call": call.learner, "weights": call.weights}
    if isinstance(outcome, Inspection):
        fields["builder_call"] = call.builder
    return replace(outcome, **fields)


def _inspect_built(
    call: _Call,
    built: Built,
    n_out: int = 2,
    cut: int | str | None = None,
    freeze: int | None = None,
    lr: float | slice = 1e-3,
) -> Inspection:
    name = call.name
    meta = arch_meta(name)

    def refuse(**fields: Any) -> InspectionRefused:
        fields.setdefault("runnable_cut", None)
        fields.setdefault("runnable_share", None)
        return InspectionRefused(
            Refusal(
                arch=name,
                device=built.device,
                pretrained=call.pretrained,
                call=call.learner,
                weights=call.weights,
                **fields,
            )
        )

    with shape_memo():  # one memory for every probe of this model
        model = built.model
        named = list(model.named_children())
        names = [child_name for child_name, _ in named]
        children = [child for _, child in named]
        model_parameters = _params(model)
        cut_index, source = _cut_index(cut, name, names, meta.cut)
        if cut_index is None:
            try:
                body = create_body(model, None)  # fastai's pooling-layer rule
            except LensError:
                runnable = _longest_runnable_cut(children)
                suggested, share = useful_cut(model, runnable)
                raise refuse(
                    stage="cut",
                    reason=(
                        f"{name} has no entry in fastai's model_meta, so create_body cuts "
                        "before the last child that contains a pooling layer, and none of "
                        f"{type(model).__name__}'s children ({', '.join(names)}) contains one: "
                        "a bare StopIteration."
                    ),
                    advice=_advice(name, names, runnable, share, _SUGGEST_SIZE),
                    fastai_error="StopIteration",
                    cut=None,
                    suggested_cut=suggested,
                    runnable_cut=runnable,
                    runnable_share=share,
                ) from None
            cut_index, source = len(body), "pooling rule"
        else:
            body = create_body(model, cut_index)
        body_list = list(body.children())
        found = _feature_probe(body_list)
        n_features, probe_size = found.n_features, found.size[0]
        if n_features is None:
            error = found.error
            if error is None:  # fastai: `[-1][1]` of the output's shape fails at every size
                error = (
                    IndexError(f"the body's output has shape {found.output_shape}")
                    if found.output_shape is not None
                    else TypeError(f"the body returns a {found.output_type}, not a tensor")
                )
                probe_size = 2048
            # The body's children are the model's first ones: the probe's last run (at 2048 px)
            # already says how many of them run, unless the body ran whole (then try them all).
            runnable = found.feature_map_children
            if runnable == len(body_list) or not body_list:
                runnable = _longest_runnable_cut(children, probe_size)
            suggested, share = useful_cut(model, runnable)
            failed = found.failed_child
            where = _describe_child(names, body_list, failed) if failed is not None else "the body"
            after = (
                f" on the output of `{names[failed - 1]}` (shape {list(found.input_shape)})"
                if failed and found.input_shape is not None
                else ""
            )
            raise refuse(
                stage="features",
                reason=(
                    f"it cuts {name} at cut={cut_index} ({source}), keeping children[:"
                    f"{cut_index}], but that body fails on every probe input from 32 to 2048 "
                    f"pixels (fastai's num_features_model): at {probe_size} px, {where} "
                    f"fails{after} with {_short_error(error)}. fastai's create_vision_model "
                    "raises that error."
                ),
                advice=_advice(name, names, runnable, share, probe_size),
                fastai_error=type(error).__name__,
                cut=cut_index,
                suggested_cut=suggested,
                runnable_cut=runnable,
                runnable_share=share,
            )
        with built.context():
            head = create_head(n_features, n_out)
    vision_model = nn.Sequential(body, head)
    try:
        groups = param_groups(vision_model, name)
    except LensError as error:
        # fastai raises nothing here: its splitter slices whatever body it gets, and may leave
        # a group empty or split in the wrong place. transferlens's param_groups refuses that.
        raise refuse(
            stage="split",
            reason=(
                f"With {CUT_OPTION} {cut}, the body (children[:{cut_index}] of {name}) does not "
                f"fit fastai's {meta.splitter}, which fastai still uses for {name}: it would "
                "split it with an empty or misplaced parameter group, without an error."
            ),
            advice=(
                f"Pass a {CUT_OPTION} that keeps the layers {meta.splitter} splits (leave "
                f"{CUT_OPTION} out for fastai's cut, {meta.cut})."
            ),
            fastai_error="",
            cut=cut_index,
            suggested_cut=None,
        ) from error
    if freeze is None:
        freeze = -1 if call.pretrained else 0  # vision_learner: `if pretrained: learn.freeze()`
    if not -len(groups) <= freeze < len(groups):
        raise LensError(
            f"`--freeze` must be between {-len(groups)} and {len(groups) - 1} ({name} has "
            f"{len(groups)} parameter groups), got {freeze}. Use 0 to train everything, -1 to "
            "freeze all groups but the head's."
        )
    frozen_groups = freeze_to(vision_model, groups, freeze)
    lrs = discriminative_lrs(lr, len(groups))
    diff = module_diff(model, body)
    return Inspection(
        arch=name,
        pretrained=call.pretrained,
        call=call.learner,
        builder_call=call.builder,
        weights=call.weights,
        model_type=type(model).__name__,
        device=built.device,
        device_note=built.note,
        n_children=len(children),
        child_names=names,
        cut=cut_index,
        cut_source=source,
        body_children=len(body_list),
        cut_diff=[asdict(entry) for entry in diff.entries],
        n_features=n_features,
        probe_size=probe_size,
        n_out=n_out,
        head=head,
        split_family=meta.family,
        splitter=meta.splitter,
        groups=[sum(p.numel() for p in group) for group in groups],
        freeze=freeze,
        frozen_groups=frozen_groups,
        lr=lr,
        lrs=lrs,
        report=trainable_report(vision_model, groups, lrs),
        model_parameters=model_parameters,
    )
