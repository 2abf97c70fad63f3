"""What fastai's ``vision_learner`` makes of one torchvision architecture, or why it cannot.

The engine behind ``transferlens inspect`` and ``transferlens atlas``. It follows
``fastai.vision.learner.create_vision_model`` step by step, with transferlens's own functions
(fastai is not needed), on a model built for its structure only (``_meta_device``):

1. build ``get_model_builder(name)(weights=None)``, on the meta device where it can be;
2. cut: ``--cut``, else ``model_meta``'s cut, else the pooling-layer rule (``create_body``);
3. count the body's output channels with fastai's probe (``num_features_model``: a forward on
   a ``1 x 3 x 32 x 32`` input, doubled up to 2048 pixels while it fails);
4. ``create_head``, the splitter's parameter groups, ``freeze_to``, the learning rates.

Where fastai fails (no child with a pooling layer: a bare ``StopIteration``; a body that fails
on every probe), the inspection is refused with fastai's reason in words and what to do instead:
the cut that keeps the most children and still runs on a 224 px image.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from transferlens import (
    LensError,
    TrainableReport,
    arch_meta,
    create_body,
    create_head,
    default_cut,
    discriminative_lrs,
    eval_mode,
    freeze_to,
    has_pool_type,
    module_diff,
    param_groups,
    trainable_report,
)

from ._meta_device import Built, build_for_structure, shape_memo

#: How the refusals name the cut: the CLI's option (a library caller could pass ``cut``).
CUT_OPTION = "--cut"

_PROBE_START, _PROBE_MAX = 32, 2048  # fastai's num_features_model
_SUGGEST_SIZE = 224


@dataclass(frozen=True)
class Refusal:
    """Why fastai cannot build a model, in words.

    Attributes:
        arch: The torchvision name.
        stage: Where fastai fails: ``"cut"`` (``create_body`` finds no child with a pooling
            layer), ``"features"`` (the body fails on every probe input), ``"split"`` (the
            splitter cannot split the body).
        reason: What fastai does and how it fails.
        advice: What a user can do instead.
        fastai_error: The exception fastai raises, e.g. ``"StopIteration"``.
        cut: The cut that failed (``None`` when there is none).
        suggested_cut: The largest cut whose body runs on a 224 px image, or ``None``.
        device: ``"meta"`` or ``"cpu"``: where the model was built.
    """

    arch: str
    stage: str
    reason: str
    advice: str
    fastai_error: str
    cut: int | None
    suggested_cut: int | None
    device: str


class InspectionRefused(LensError):
    """fastai cannot build the model as asked; ``refusal`` says why and what to do."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.reason} {refusal.advice}")
        self.refusal = refusal


@dataclass(frozen=True)
class Inspection:
    """Everything ``inspect`` found about one architecture, before it is printed."""

    arch: str
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


def torchvision_names() -> list[str]:
    """``torchvision.models.list_models(module=torchvision.models)``, sorted."""
    import torchvision.models

    return sorted(torchvision.models.list_models(module=torchvision.models))


def suggest(name: str, choices: Sequence[str]) -> str:
    """``" Did you mean 'avgpool'?"`` for a misspelt name among ``choices`` (or ``""``)."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def parse_cut(text: str) -> int | str:
    """Read ``--cut``: an int (fastai's ``cut``: keep ``children[:cut]``) or a child's name.

    Examples:
        >>> parse_cut("-2"), parse_cut("avgpool")
        (-2, 'avgpool')
    """
    cleaned = text.strip()
    if re.fullmatch(r"[-+]?\d+", cleaned):
        return int(cleaned)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cleaned):
        return cleaned
    raise ValueError(
        f"cannot read {text!r} as a cut; write an int (e.g. -2: keep all children but the last "
        "two) or the name of the first child to drop (e.g. avgpool)"
    )


def _resolve_name(arch: str) -> str:
    names = torchvision_names()
    if arch not in names:
        raise LensError(
            f"ARCH {arch!r} is not a torchvision classification model.{suggest(arch, names)} "
            "`transferlens atlas` lists them all."
        )
    return arch


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _describe_child(names: Sequence[str], children: Sequence[nn.Module], index: int) -> str:
    return f"child {index} `{names[index]}` ({type(children[index]).__name__})"


def _short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True)
class _ProbeFailure:
    size: int
    child: int
    input_shape: tuple[int, ...]
    error: BaseException
    runnable: int | None = None  # the most children that ran and gave 4-d feature maps


def _run_children(
    children: Sequence[nn.Module], probe: torch.Tensor
) -> tuple[torch.Tensor | None, _ProbeFailure | None]:
    """``nn.Sequential(*children)(probe)``, one child at a time, to say which child fails."""
    output: Any = probe
    runnable = None
    for index, child in enumerate(children):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
        try:
            output = child(output)
        except Exception as error:
            return None, _ProbeFailure(probe.shape[-1], index, shape, error, runnable)
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            runnable = index + 1
    if not isinstance(output, torch.Tensor):
        failure = TypeError(f"the body returns a {type(output).__name__}, not a tensor")
        return None, _ProbeFailure(probe.shape[-1], len(children) - 1, (), failure, runnable)
    return output, None


def _probe_tensor(children: Sequence[nn.Module], size: int) -> torch.Tensor:
    # fastai's dummy_eval: one_param(m).new(1, ch_in, *size).uniform_(-1, 1)
    first = next(nn.Sequential(*children).parameters(), None)
    if first is None:
        return torch.empty(1, 3, size, size).uniform_(-1, 1)
    return first.new_empty(1, 3, size, size).uniform_(-1, 1)


def _with_eval(children: Sequence[nn.Module], run: Callable[[], Any]) -> Any:
    """``run()`` with the children in eval mode (flags restored after), no autograd, memoised."""
    with eval_mode(nn.ModuleList(children)), torch.no_grad(), shape_memo():
        return run()


def _num_features(children: Sequence[nn.Module]) -> tuple[int | None, int, _ProbeFailure | None]:
    """fastai's ``num_features_model(nn.Sequential(*children))``: channels, size, or failure."""

    def run() -> tuple[int | None, int, _ProbeFailure | None]:
        size = _PROBE_START
        failure: _ProbeFailure | None = None
        while size <= _PROBE_MAX:
            if not children:  # fastai: no hooked output at all, at every size
                failure = _ProbeFailure(size, 0, (), IndexError("the body has no children"))
            else:
                output, failure = _run_children(children, _probe_tensor(children, size))
                if output is not None:
                    if output.ndim < 2:
                        failure = _ProbeFailure(
                            size,
                            len(children) - 1,
                            tuple(output.shape),
                            IndexError(f"the body's output has shape {tuple(output.shape)}"),
                        )
                    else:
                        return int(output.shape[1]), size, None
            size *= 2
        return None, size // 2, failure

    return _with_eval(children, run)


def _longest_runnable_cut(children: Sequence[nn.Module], size: int = _SUGGEST_SIZE) -> int | None:
    """The largest ``k`` such that ``children[:k]`` runs on a ``size`` px image and gives 4-d
    feature maps (what fastai's head pools)."""

    def run() -> int | None:
        output, failure = _run_children(children, _probe_tensor(children, size))
        if failure is None:
            return len(children) if output is not None and output.ndim == 4 else None
        return failure.runnable

    return _with_eval(children, run)


def _advice(
    name: str,
    names: Sequence[str],
    children: Sequence[nn.Module],
    model_parameters: int,
    suggested: int | None,
    size: int,
) -> str:
    how = (
        f"Pass {CUT_OPTION} N to keep the first N children (fastai: "
        f"create_vision_model(arch, n_out, cut=N); vision_learner ignores `cut`), or build the "
        "body yourself (fastai: a function as `cut`, or a custom model)."
    )
    if suggested is None:
        return f"{how} No prefix of {name}'s children runs on a {size} px image."
    kept = _params(nn.Sequential(*children[:suggested]))
    share = 100 * kept / model_parameters if model_parameters else 0.0
    return (
        f"{how} The most children that still run on a {size} px image: {CUT_OPTION} {suggested} "
        f"(up to `{names[suggested - 1]}`, {share:.1f}% of the parameters)."
    )


def _cut_index(
    cut: int | str | None, name: str, names: Sequence[str], meta_cut: int | None
) -> tuple[int | None, str]:
    if isinstance(cut, str):
        if cut not in names:
            raise LensError(
                f"`{CUT_OPTION} {cut}`: {name} has no child called {cut!r}.{suggest(cut, names)} "
                f"Its children: {', '.join(names)}."
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


def _refuse(built: Built, name: str, **fields: Any) -> InspectionRefused:
    return InspectionRefused(Refusal(arch=name, device=built.device, **fields))


def inspect_architecture(
    arch: str,
    n_out: int = 2,
    cut: int | str | None = None,
    freeze: int = -1,
    lr: float | slice = 1e-3,
) -> Inspection:
    """Follow fastai's ``create_vision_model`` and ``vision_learner`` for a torchvision name.

    Args:
        arch: A torchvision classification model name.
        n_out: Classes.
        cut: ``None`` for fastai's choice, an int (``children[:cut]``) or a child's name (cut
            before it).
        freeze: ``freeze_to(freeze)``.
        lr: A learning rate or a slice, as ``discriminative_lrs`` takes it.

    Returns:
        The inspection.

    Raises:
        InspectionRefused: fastai cannot build the model (see ``Refusal``).
        LensError: A bad argument.

    Examples:
        >>> found = inspect_architecture("resnet18", n_out=37)
        >>> found.cut, found.cut_source, found.n_features, found.splitter
        (-2, 'model_meta', 512, '_resnet_split')
    """
    import torchvision.models

    name = _resolve_name(arch)
    built = build_for_structure(torchvision.models.get_model_builder(name), weights=None)
    model = built.model
    named = list(model.named_children())
    names = [child_name for child_name, _ in named]
    children = [child for _, child in named]
    model_parameters = _params(model)
    cut_index, source = _cut_index(cut, name, names, default_cut(name))
    if cut_index is None:
        pooled = [index for index, child in enumerate(children) if has_pool_type(child)]
        if not pooled:
            suggested = _longest_runnable_cut(children)
            raise _refuse(
                built,
                name,
                stage="cut",
                reason=(
                    f"fastai cannot cut {name}: it has no entry in fastai's model_meta, so "
                    "create_body cuts before the last child that contains a pooling layer, and "
                    f"none of {type(model).__name__}'s children ({', '.join(names)}) contains "
                    "one: fastai's create_vision_model fails with a bare StopIteration."
                ),
                advice=_advice(name, names, children, model_parameters, suggested, _SUGGEST_SIZE),
                fastai_error="StopIteration",
                cut=None,
                suggested_cut=suggested,
            )
        cut_index, source = pooled[-1], "pooling rule"
    with built.context():
        body = create_body(model, cut_index)
    body_list = list(body.children())
    n_features, probe_size, failure = _num_features(body_list)
    if n_features is None:
        assert failure is not None
        # The body's children are the model's first ones: the probe's last run (at 2048 px)
        # already says how many of them run, unless the body ran whole (then try them all).
        suggested = failure.runnable
        if suggested == len(body_list) or not body_list:
            suggested = _longest_runnable_cut(children, failure.size)
        where = (
            _describe_child(names, body_list, failure.child)
            if body_list and failure.child < len(body_list)
            else "the body"
        )
        after = (
            f" on the output of `{names[failure.child - 1]}` (shape {list(failure.input_shape)})"
            if 0 < failure.child < len(body_list)
            else ""
        )
        raise _refuse(
            built,
            name,
            stage="features",
            reason=(
                f"fastai cuts {name} at cut={cut_index} ({source}), keeping children[:"
                f"{cut_index}], but that body fails on every probe input from {_PROBE_START} "
                f"to {_PROBE_MAX} pixels (fastai's num_features_model): at {failure.size} px, "
                f"{where} fails{after} with {_short_error(failure.error)}. fastai's "
                f"create_vision_model raises that error."
            ),
            advice=_advice(name, names, children, model_parameters, suggested, failure.size),
            fastai_error=type(failure.error).__name__,
            cut=cut_index,
            suggested_cut=suggested,
        )
    with built.context():
        head = create_head(n_features, n_out)
    vision_model = nn.Sequential(body, head)
    meta = arch_meta(name)
    try:
        groups = param_groups(vision_model, name)
    except LensError as error:
        # fastai raises nothing here: its splitter slices whatever body it gets, and may leave
        # a group empty or split in the wrong place. transferlens's param_groups refuses that.
        raise _refuse(
            built,
            name,
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
