"""The ``transferlens`` command: what fastai's ``vision_learner`` makes of a torchvision model.

::

    transferlens inspect ARCH [--no-pretrained] [--cut N|CHILD] [--n-out N] [--freeze N]
                              [--lr LR] [--format text|json]
    transferlens atlas [--format text|json|markdown] [--timm]

``inspect`` builds torchvision's ARCH the way ``fastai.vision.learner.vision_learner(dls, ARCH)``
calls it (``weights='DEFAULT'`` or ``pretrained=True``, the weights resolved but never
downloaded; ``--no-pretrained``: ``pretrained=False``), for its structure only (on PyTorch's
meta device where it can: tensors have shapes but no values, so even a 600-million-parameter
model allocates none), and shows, step by step, what ``vision_learner`` does to it: where it cuts
the body, the head it adds, the parameter groups it trains with, which of them ``freeze_to``
freezes, the learning rate of each, and the resulting trainable report. Where fastai itself
fails (``regnet_y_128gf``: torchvision has no weights for ``pretrained=True``; ``vit_b_16``: no
child with a pooling layer, a bare ``StopIteration``), it says so in words, and what works
instead.

``atlas`` does the same for every classification builder in torchvision (and, with ``--timm``,
a list of popular timm models): one row each, with what the default call and
``pretrained=False`` do.

Arguments are checked before torch is imported: ``--help`` and a bad option answer at once.

Exit status: 0 on success, 1 when torchvision (or, for ``--timm``, timm) is not installed (the
message gives the install command), 2 for a bad argument (an unknown architecture gets close
names suggested), 3 when fastai cannot build ARCH as asked (the message says why and what to
do instead).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

from transferlens import LensError
from transferlens._reports.tables import format_lr  # shared with the reports

if TYPE_CHECKING:  # the command imports torch and torchvision only when it runs
    from ._inspect import Inspection, Refusal

__all__ = ["main", "parse_cut", "parse_lr"]

INSTALL_HINT = (
    "The transferlens command line needs torchvision, which is not installed.\n"
    "Install it with: pip install 'transferlens[cli]'"
)
TIMM_HINT = (
    "transferlens atlas --timm needs timm, which is not installed.\n"
    "Install it with: pip install timm"
)

_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"
_SLICE_CALL = re.compile(rf"slice\(\s*(?:(None|{_NUMBER})\s*,)?(None|{_NUMBER})\)")
_SLICE_COLON = re.compile(rf"(|{_NUMBER}):{_NUMBER}")


def _number(text: str | None) -> float | None:
    return None if text is None or text.strip() in ("", "None") else float(text)


def parse_lr(text: str) -> float | slice:
    """Read a learning rate the way fastai users write one, without ``eval``.

    Args:
        text: ``"1e-3"``; ``"slice(1e-3)"`` or ``":1e-3"`` (last group ``1e-3``, the others a
            tenth of it); ``"slice(1e-5, 1e-3)"`` or ``"1e-5:1e-3"`` (from ``1e-5`` for the first
            group to ``1e-3`` for the last, evenly on a log scale).

    Returns:
        A float or a ``slice``, as ``transferlens.discriminative_lrs`` takes them.

    Raises:
        argparse.ArgumentTypeError: ``text`` is none of these forms.

    Examples:
        >>> parse_lr("1e-3"), parse_lr("slice(1e-5, 1e-3)"), parse_lr(":1e-3")
        (0.001, slice(1e-05, 0.001, None), slice(None, 0.001, None))
    """
    cleaned = text.strip()
    if re.fullmatch(_NUMBER, cleaned):
        return float(cleaned)
    call = _SLICE_CALL.fullmatch(cleaned)
    if call is not None:
        start, stop = call.group(1), call.group(3)
        return slice(_number(start), _number(stop))
    colon = _SLICE_COLON.fullmatch(cleaned)
    if colon is not None:
        return slice(_number(colon.group(1)), _number(colon.group(3)))
    raise argparse.ArgumentTypeError(
        f"cannot read {text!r} as a learning rate; write e.g. 1e-3, slice(1e-5,1e-3) or 1e-5:1e-3"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def parse_cut(text: str) -> int | str:
    """Read ``--cut``: an int (fastai's ``cut``: keep ``children[:cut]``) or a child's name.

    Raises:
        argparse.ArgumentTypeError: ``text`` is neither.

    Examples:
        >>> parse_cut("-2"), parse_cut("avgpool")
        (-2, 'avgpool')
    """
    cleaned = text.strip()
    if re.fullmatch(r"[-+]?\d+", cleaned):
        return int(cleaned)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cleaned):
        return cleaned
    raise argparse.ArgumentTypeError(
        f"cannot read {text!r} as a cut; write an int (e.g. -2: keep all children but the last "
        "two) or the name of the first child to drop (e.g. avgpool)"
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transferlens",
        description="Show how fastai turns a torchvision model into a transfer-learning model.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = commands.add_parser(
        "inspect",
        help="show the body, head, parameter groups, freezing and learning rates of ARCH",
        description=(
            "Build torchvision's ARCH as fastai's vision_learner(dls, ARCH) calls it, for its "
            "structure only (on the meta device: nothing is downloaded or computed), and show "
            "what vision_learner makes of it."
        ),
    )
    inspect.add_argument("arch", metavar="ARCH", help="a torchvision classification model name")
    inspect.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "as vision_learner's pretrained (default: --pretrained, fastai's default: the "
            "weights it would load, resolved, not downloaded; then learn.freeze()); "
            "--no-pretrained: random weights, nothing frozen"
        ),
    )
    inspect.add_argument(
        "--cut",
        type=parse_cut,
        default=None,
        metavar="N|CHILD",
        help=(
            "cut the body as fastai's create_vision_model(arch, n_out, cut=N) does: keep the "
            "first N children (negative: all but the last -N), or the children before the one "
            "called CHILD (default: fastai's own cut)"
        ),
    )
    inspect.add_argument(
        "--n-out", type=_positive_int, default=2, metavar="N", help="classes (default: 2)"
    )
    inspect.add_argument(
        "--freeze",
        type=int,
        default=None,
        metavar="N",
        help=(
            "freeze_to(N): groups before N are frozen (default: as vision_learner leaves it, -1 "
            "with --pretrained, 0 with --no-pretrained)"
        ),
    )
    inspect.add_argument(
        "--lr",
        type=parse_lr,
        default=1e-3,
        metavar="LR",
        help="1e-3, slice(1e-5,1e-3) or 1e-5:1e-3 (default: 1e-3)",
    )
    inspect.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    atlas = commands.add_parser(
        "atlas",
        help="one row per torchvision classification model: what vision_learner makes of it",
        description=(
            "For every classification builder in torchvision.models (and, with --timm, popular "
            "timm models): whether fastai's vision_learner builds it by default and with "
            "pretrained=False (or why not), its cut, parameter groups, head, what trains when "
            "frozen, normalization and weights."
        ),
    )
    atlas.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="output format (default: text)",
    )
    atlas.add_argument(
        "--timm",
        action="store_true",
        help="add the timm models of transferlens's documented list (timm must be installed)",
    )
    return parser


def _format_lr(lr: float) -> str:
    return format_lr(lr)


def _lr_text(lr: float | slice) -> str:
    if not isinstance(lr, slice):
        return _format_lr(lr)
    if lr.start is None:
        return f"slice({_format_lr(lr.stop)})"
    return f"slice({_format_lr(lr.start)}, {_format_lr(lr.stop)})"


def _cut_text(found: Inspection) -> str:
    kept = f"{found.model_type}'s first {found.body_children} of {found.n_children} children"
    if found.cut_source == "pooling rule":
        return (
            f"{kept} (cut={found.cut}: fastai has no meta for {found.arch},\n"
            "  so it cuts before the last child that contains a pooling layer)"
        )
    if found.cut_source == "model_meta":
        return f"{kept} (cut={found.cut}, from fastai's model_meta)"
    return f"{kept} (cut={found.cut}, from --cut)"


def _freeze_text(found: Inspection, n_groups: int) -> str:
    if found.frozen_groups == 0:
        return f"freeze_to({found.freeze}): no group frozen, all {n_groups} groups train"
    frozen = "group 0" if found.frozen_groups == 1 else f"groups 0-{found.frozen_groups - 1}"
    return (
        f"freeze_to({found.freeze}): {frozen} frozen, normalization layers excepted (train_bn=True)"
    )


def _device_text(found: Inspection) -> str:
    if found.device == "meta":
        return "structure only, built on the meta device"
    return f"built on the CPU with random weights: it {found.device_note}"


def _weights_text(found: Inspection) -> str:
    called = f"{found.call} calls {found.builder_call}"
    if found.weights is None:
        return f"{called}:\n  random weights, and vision_learner does not freeze"
    return (
        f"{called}, which loads\n  {found.weights} (resolved here, not downloaded); then "
        "learn.freeze()"
    )


def _print_text(found: Inspection, out: TextIO) -> None:
    n_groups = len(found.lrs)
    removed = [entry for entry in found.cut_diff if entry["kind"] == "removed"]
    lines = [
        f"{found.arch}: what fastai's vision_learner builds from it ({_device_text(found)}, "
        f"n_out={found.n_out})",
        "",
        f"Weights: {_weights_text(found)}",
        f"Body: {_cut_text(found)}",
    ]
    width = max((len(entry["path_a"]) for entry in removed), default=0)
    lines += [f"  removed  {entry['path_a'].ljust(width)}  {entry['before']}" for entry in removed]
    lines += [
        "",
        f"Head: create_head({found.n_features}, {found.n_out}); the body gives "
        f"{found.n_features} features, concat pooling doubles them to {2 * found.n_features}",
        *("  " + line for line in repr(found.head).splitlines()),
        "",
        f"Parameter groups: {n_groups} (fastai's {found.splitter})",
        f"Freezing: {_freeze_text(found, n_groups)}",
        f"Learning rates: lr={_lr_text(found.lr)} gives "
        + ", ".join(_format_lr(rate) for rate in found.lrs),
        "",
        str(found.report),
    ]
    out.write("\n".join(lines) + "\n")


def _to_dict(found: Inspection) -> dict[str, Any]:
    lr: Any = found.lr
    if isinstance(lr, slice):
        lr = {"start": lr.start, "stop": lr.stop}
    return {
        "arch": found.arch,
        "status": "ok",
        "pretrained": found.pretrained,
        "call": found.call,
        "builder_call": found.builder_call,
        "weights": found.weights,
        "device": found.device,
        "n_out": found.n_out,
        "body": {
            "model_type": found.model_type,
            "cut": found.cut,
            "cut_source": found.cut_source,
            "children": found.n_children,
            "kept_children": found.body_children,
            "diff": found.cut_diff,
        },
        "head": {
            "n_features": found.n_features,
            "in_features": 2 * found.n_features,
            "layers": [repr(layer) for layer in found.head],
        },
        "split_family": found.split_family,
        "splitter": found.splitter,
        "groups": found.groups,
        "freeze": {"n": found.freeze, "frozen_groups": found.frozen_groups},
        "lr": lr,
        "lrs": found.lrs,
        "report": found.report.to_dict(),
    }


def _refusal_dict(refusal: Refusal) -> dict[str, Any]:
    return {"status": "refused", **asdict(refusal)}


def _run_inspect(args: argparse.Namespace) -> int:
    from ._inspect import InspectionRefused, inspect_architecture

    try:
        found = inspect_architecture(
            args.arch, args.n_out, args.cut, args.freeze, args.lr, pretrained=args.pretrained
        )
    except InspectionRefused as refused:
        if args.format == "json":
            sys.stdout.write(json.dumps(_refusal_dict(refused.refusal), indent=2) + "\n")
        message = f"transferlens inspect {args.arch}: refused: {refused}"
        print(textwrap.fill(message, width=100, break_long_words=False), file=sys.stderr)
        return 3
    except LensError as error:
        print(f"transferlens inspect {args.arch}: error: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(_to_dict(found), indent=2) + "\n")
    else:
        _print_text(found, sys.stdout)
    return 0


def _run_atlas(args: argparse.Namespace) -> int:
    from ._atlas import atlas_rows, format_atlas

    if args.timm:
        try:
            import timm  # noqa: F401
        except ImportError:
            print(TIMM_HINT, file=sys.stderr)
            return 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # builders' notes on their initialization
        rows = atlas_rows(with_timm=args.timm)
    sys.stdout.write(format_atlas(rows, args.format))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``transferlens`` command.

    Args:
        argv: The arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        The exit status, 0 on success, 1 without torchvision (or timm for ``atlas --timm``),
        2 for a bad argument, 3 when fastai cannot build the architecture as asked.

    Examples:
        >>> main(["inspect", "resnet18", "--format", "json"])  # doctest: +ELLIPSIS
        {
          "arch": "resnet18",
          "status": "ok",
        ...
        0
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage and the error
        return int(exit_.code or 0)

    try:
        import torchvision  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 1
    if args.command == "atlas":
        return _run_atlas(args)
    return _run_inspect(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
