"""The ``transferlens`` command: what fastai's ``vision_learner`` makes of a torchvision model.

::

    transferlens inspect ARCH [--n-out N] [--freeze N] [--lr LR] [--format text|json]

builds ``torchvision.models.get_model(ARCH, weights=None)`` (random weights: nothing is downloaded,
no data is needed) and shows, step by step, what ``fastai.vision.learner.vision_learner`` does to
it: where it cuts the body, the head it adds, the parameter groups it trains with, which of them
``freeze_to`` freezes, the learning rate of each, and the resulting trainable report.

Exit status: 0 on success, 1 when torchvision is not installed (the message gives the install
command), 2 for a bad argument (an unknown architecture gets close names suggested).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ._errors import LensError

if TYPE_CHECKING:  # the command imports torch and torchvision only when it runs
    from torch import nn

    from ._report import TrainableReport

__all__ = ["main", "parse_lr"]

INSTALL_HINT = (
    "The transferlens command line needs torchvision, which is not installed.\n"
    "Install it with: pip install 'transferlens[cli]'"
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
            "Build torchvision's ARCH with random weights (nothing is downloaded) and show what "
            "fastai's vision_learner makes of it."
        ),
    )
    inspect.add_argument("arch", metavar="ARCH", help="a torchvision classification model name")
    inspect.add_argument(
        "--n-out", type=_positive_int, default=2, metavar="N", help="classes (default: 2)"
    )
    inspect.add_argument(
        "--freeze",
        type=int,
        default=-1,
        metavar="N",
        help="freeze_to(N): groups before N are frozen (default: -1, as vision_learner leaves it)",
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
    return parser


@dataclass(frozen=True)
class _Inspection:
    """Everything ``inspect`` found, before it is printed."""

    arch: str
    model_type: str
    n_children: int
    cut: int | None
    body_children: int
    cut_diff: list[dict[str, Any]]  # module_diff(model, body) entries
    n_features: int
    n_out: int
    head: nn.Sequential
    split_family: str
    freeze: int
    frozen_groups: int
    lr: float | slice
    lrs: list[float]
    report: TrainableReport


def _inspect(arch: str, n_out: int, freeze: int, lr: float | slice) -> _Inspection:
    import torchvision.models
    from torch import nn

    from ._body import create_body, default_cut, num_features
    from ._freeze import freeze_to
    from ._groups import param_groups, resolve_arch, split_family
    from ._head import create_head
    from ._report import module_diff, trainable_report
    from ._schedule import discriminative_lrs

    name = resolve_arch(arch)
    with warnings.catch_warnings():
        # googlenet and inception_v3 warn about their weight initialization; no noise here.
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name, weights=None)
    cut = default_cut(name)
    body = create_body(model, cut)
    n_features = num_features(body)
    head = create_head(n_features, n_out)
    vision_model = nn.Sequential(body, head)
    groups = param_groups(vision_model, name)
    if not -len(groups) <= freeze < len(groups):
        raise LensError(
            f"`--freeze` must be between {-len(groups)} and {len(groups) - 1} ({name} has "
            f"{len(groups)} parameter groups), got {freeze}. Use 0 to train everything, -1 to "
            "freeze all groups but the head's."
        )
    frozen_groups = freeze_to(vision_model, groups, freeze)
    lrs = discriminative_lrs(lr, len(groups))
    diff = module_diff(model, body)
    return _Inspection(
        arch=name,
        model_type=type(model).__name__,
        n_children=len(list(model.children())),
        cut=cut,
        body_children=len(list(body.children())),
        cut_diff=[asdict(entry) for entry in diff.entries],
        n_features=n_features,
        n_out=n_out,
        head=head,
        split_family=split_family(name),
        freeze=freeze,
        frozen_groups=frozen_groups,
        lr=lr,
        lrs=lrs,
        report=trainable_report(vision_model, groups, lrs),
    )


def _format_lr(lr: float) -> str:
    from ._report import _format_lr as format_lr

    return format_lr(lr)


def _lr_text(lr: float | slice) -> str:
    if not isinstance(lr, slice):
        return _format_lr(lr)
    if lr.start is None:
        return f"slice({_format_lr(lr.stop)})"
    return f"slice({_format_lr(lr.start)}, {_format_lr(lr.stop)})"


def _cut_text(found: _Inspection) -> str:
    kept = f"{found.model_type}'s first {found.body_children} of {found.n_children} children"
    if found.cut is None:
        return (
            f"{kept} (cut=None: fastai has no meta for {found.arch},\n"
            "  so it cuts before the last child that contains a pooling layer)"
        )
    return f"{kept} (cut={found.cut}, from fastai's model_meta)"


def _freeze_text(found: _Inspection, n_groups: int) -> str:
    if found.frozen_groups == 0:
        return f"freeze_to({found.freeze}): no group frozen, all {n_groups} groups train"
    frozen = "group 0" if found.frozen_groups == 1 else f"groups 0-{found.frozen_groups - 1}"
    return (
        f"freeze_to({found.freeze}): {frozen} frozen, normalization layers excepted (train_bn=True)"
    )


def _print_text(found: _Inspection, out: TextIO) -> None:
    n_groups = len(found.lrs)
    removed = [entry for entry in found.cut_diff if entry["kind"] == "removed"]
    lines = [
        f"{found.arch}: what fastai's vision_learner builds from it (random weights, "
        f"n_out={found.n_out})",
        "",
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
        f"Parameter groups: {n_groups} (fastai's {found.split_family} split)",
        f"Freezing: {_freeze_text(found, n_groups)}",
        f"Learning rates: lr={_lr_text(found.lr)} gives "
        + ", ".join(_format_lr(rate) for rate in found.lrs),
        "",
        str(found.report),
    ]
    out.write("\n".join(lines) + "\n")


def _to_dict(found: _Inspection) -> dict[str, Any]:
    lr: Any = found.lr
    if isinstance(lr, slice):
        lr = {"start": lr.start, "stop": lr.stop}
    return {
        "arch": found.arch,
        "n_out": found.n_out,
        "body": {
            "model_type": found.model_type,
            "cut": found.cut,
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
        "freeze": {"n": found.freeze, "frozen_groups": found.frozen_groups},
        "lr": lr,
        "lrs": found.lrs,
        "report": found.report.to_dict(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``transferlens`` command.

    Args:
        argv: The arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 without torchvision, 2 for a bad argument.

    Examples:
        >>> main(["inspect", "resnet18", "--format", "json"])  # doctest: +SKIP
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

    try:
        found = _inspect(args.arch, args.n_out, args.freeze, args.lr)
    except LensError as error:
        print(f"transferlens inspect {args.arch}: error: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(_to_dict(found), indent=2) + "\n")
    else:
        _print_text(found, sys.stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
