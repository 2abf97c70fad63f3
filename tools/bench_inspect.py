"""How long `transferlens inspect NAME` takes, as a ratio of `transferlens inspect resnet18`.

The inspector builds every model on PyTorch's meta device, so a 600-million-parameter model,
or a refusal that retries fastai's probe up to 2048 pixels, should answer about as fast as
resnet18. This measures it, side by side in one run:

1. every torchvision builder once, in this process, as `inspect NAME` and `inspect NAME
   --no-pretrained` (the default call of a builder without pretrained weights is refused
   before anything is built, so its `--no-pretrained` is the one that builds), to find the
   slowest commands;
2. those (`--top`, default 6) again, `--repeat` times (default 3), interleaved with `inspect
   resnet18` so that a load spike from other processes hits both: as the command a user runs
   (`python -m transferlens inspect ...`, a fresh interpreter: imports included), and in this
   process (the inspection alone). Each ratio compares the fastest run of each.

A benchmark, not a test: it prints a table and asserts nothing (tests/ never assert durations).
`make bench` runs it; `python tools/bench_inspect.py --top 3 --repeat 2` is a quicker look.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

BASELINE = ("resnet18",)


def _seconds(command: Sequence[str]) -> float:
    """Wall time of `transferlens inspect COMMAND --format json`, run in this process."""
    from transferlens.inspector import main

    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["inspect", *command, "--format", "json"])
    seconds = time.perf_counter() - started
    _check(command, status, err.getvalue())
    return seconds


def _command_seconds(command: Sequence[str]) -> float:
    """Wall time of `python -m transferlens inspect COMMAND --format json`, a fresh process."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "transferlens", "inspect", *command, "--format", "json"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    _check(command, result.returncode, result.stderr)
    return seconds


def _check(command: Sequence[str], status: int, err: str) -> None:
    if status not in (0, 3):  # 3: fastai cannot build it, and the command says why
        raise SystemExit(f"transferlens inspect {' '.join(command)} failed ({status}): {err}")


def _commands(names: Sequence[str]) -> list[tuple[str, ...]]:
    return [command for name in names for command in ((name,), (name, "--no-pretrained"))]


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Measure, print the table, and return its rows.

    Args:
        argv: ``--top N`` (slowest commands to measure again, default 6), ``--repeat R``
            (default 3), ``--names A B ...`` (measure these instead of finding the slowest).

    Returns:
        One dict per command: ``command``; ``seconds`` (its fastest run as a command),
        ``resnet18_seconds`` (the fastest `inspect resnet18` of the same rounds) and ``ratio``;
        ``inspection_seconds``, ``resnet18_inspection_seconds`` and ``inspection_ratio``, the
        same in this process.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--names", nargs="+", default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the builders' notes; the command silences them too

    from transferlens import known_architectures

    _seconds(BASELINE)  # imports, torchvision's registry: not part of any command's time
    if args.names is None:
        first = {command: _seconds(command) for command in _commands(known_architectures())}
        slowest = sorted(first, key=first.__getitem__, reverse=True)[: args.top]
    else:
        slowest = _commands(args.names)
    commands = [BASELINE, *(command for command in slowest if command != BASELINE)]
    fresh: dict[tuple[str, ...], list[float]] = {command: [] for command in commands}
    inside: dict[tuple[str, ...], list[float]] = {command: [] for command in commands}
    for _ in range(args.repeat):
        for command in commands:
            fresh[command].append(_command_seconds(command))
            inside[command].append(_seconds(command))
    base, base_inside = min(fresh[BASELINE]), min(inside[BASELINE])
    rows = [
        {
            "command": "inspect " + " ".join(command),
            "seconds": min(fresh[command]),
            "resnet18_seconds": base,
            "ratio": min(fresh[command]) / base,
            "inspection_seconds": min(inside[command]),
            "resnet18_inspection_seconds": base_inside,
            "inspection_ratio": min(inside[command]) / base_inside,
        }
        for command in slowest
    ]
    width = max(len(row["command"]) for row in rows)
    print(
        f"{'command'.ljust(width)}  {'command s':>9}  x resnet18  {'inspection s':>12}  x resnet18"
    )
    print(
        f"{'inspect resnet18'.ljust(width)}  {base:9.3f}  {1:10.2f}  {base_inside:12.3f}  {1:10.2f}"
    )
    for row in rows:
        print(
            f"{row['command'].ljust(width)}  {row['seconds']:9.3f}  {row['ratio']:10.2f}  "
            f"{row['inspection_seconds']:12.3f}  {row['inspection_ratio']:10.2f}"
        )
    return rows


if __name__ == "__main__":
    main()
