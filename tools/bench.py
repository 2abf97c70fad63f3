"""make bench: what execute-once saves, measured on this machine.

Times, with the same number of parallel workers for the page runs:

  (a) the naive pipeline: nbmake over docs/, then `mkdocs build` with mkdocs-jupyter executing
      every page again (execute: true);
  (b) ours: `make test` (unit tests + pages), then `make site` (renders, executes nothing),
      and the same work as (a) alone: the pages once (`pytest docs`, as `make test` runs
      them; `make test-pages` would also execute a page twice where it has no copy to compare
      with), then `make site`;
  (c) a no-op `make site`;
  (d) `make site` after editing one page (only that page is executed again);
  (e) `transferlens inspect` of the slowest builders against `inspect resnet18`, side by side
      (tools/bench_inspect.py, whose table it prints).

It prints a table and writes build/bench.json. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bench_inspect
import pagecache

ROOT = pagecache.ROOT
BENCH = pagecache.BUILD / "bench"
JOBS = str(os.cpu_count() or 1)


def _timed(label: str, command: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``command``, return its wall time; its output goes to build/bench/<label>.log."""
    print(f"-- {label}: {' '.join(command)}", flush=True)
    log = BENCH / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".log")
    environment = {**os.environ, **(env or {})}
    started = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run(command, cwd=ROOT, env=environment, stdout=out, stderr=out)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{label} failed (exit {result.returncode}); its output: {log}")
    print(f"   {seconds:.1f} s", flush=True)
    return seconds


def naive_config_text(text: str) -> str:
    """mkdocs.yml's text as a naive setup would have it: mkdocs-jupyter executes, no hooks."""
    text = text.replace("      execute: false\n", "      execute: true\n")
    text = text.replace(
        "      allow_errors: false\n", "      allow_errors: false\n      cache: false\n"
    )
    # The whole `hooks:` block (its items and comments), whatever hooks it lists.
    text = re.sub(r"^hooks:\n(?:[ \t]+.*\n|\n)*", "", text, flags=re.M)
    text = text.replace("strict: true\n", "strict: false\n")
    return text.replace("      - Execution report: execution-report.md\n", "")


def write_naive_config(name: str = "mkdocs.bench-naive.yml") -> Path:
    """Write the naive mkdocs config beside mkdocs.yml (so relative paths still hold)."""
    config = ROOT / name
    config.write_text(naive_config_text((ROOT / "mkdocs.yml").read_text()))
    return config


def main() -> int:
    BENCH.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    plain_ini = BENCH / "plain-pytest.ini"
    plain_ini.write_text("[pytest]\n")
    results: dict[str, float] = {}

    config = write_naive_config()
    try:
        results["naive: nbmake"] = _timed(
            "naive nbmake",
            [python, "-m", "pytest", "-q", "-c", str(plain_ini), "--rootdir", str(ROOT),
             "--nbmake", "-n", JOBS, "-p", "no:cacheprovider", "docs"],
            # one thread per kernel, as ours: the comparison is about executing twice, not
            # about threads fighting over the cores
            env={"OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        results["naive: mkdocs (executes again)"] = _timed(
            "naive mkdocs build",
            [python, "-m", "mkdocs", "build", "-q", "-f", str(config),
             "--site-dir", str(BENCH / "naive-site")],
            env={"NO_MKDOCS_2_WARNING": "1"},
        )  # fmt: skip
    finally:
        config.unlink(missing_ok=True)
        shutil.rmtree(BENCH / "naive-site", ignore_errors=True)

    results["ours: pages alone"] = _timed(
        "pytest docs (the pages alone, as the naive nbmake run)",
        [python, "-m", "pytest", "-q", "-n", JOBS, "--dist", "load", "docs"],
    )
    results["ours: make test"] = _timed("make test", ["make", "--no-print-directory", "test"])
    results["ours: make site"] = _timed("make site", ["make", "--no-print-directory", "site"])
    results["no-op make site"] = _timed("no-op make site", ["make", "--no-print-directory", "site"])

    page = ROOT / "docs" / "anatomy.ipynb"
    original = page.read_bytes()
    try:
        page.write_bytes(original.rstrip(b"\n") + b"\n\n")  # a byte changes, the notebook does not
        results["one edited page: make site"] = _timed(
            "make site after editing docs/anatomy.ipynb", ["make", "--no-print-directory", "site"]
        )
    finally:
        page.write_bytes(original)
    _timed("make site (restore)", ["make", "--no-print-directory", "site"])

    print("-- (e) transferlens inspect: the slowest builders against resnet18", flush=True)
    inspect_rows = bench_inspect.main([])

    naive = results["naive: nbmake"] + results["naive: mkdocs (executes again)"]
    ours = results["ours: make test"] + results["ours: make site"]
    pages_only = results["ours: pages alone"] + results["ours: make site"]
    rows = [
        ("(a) naive: nbmake + mkdocs executing again", naive),
        ("    naive nbmake alone", results["naive: nbmake"]),
        ("(b) ours: make test + make site", ours),
        ("    make test alone (unit tests + pages)", results["ours: make test"]),
        ("    pages only: pytest docs + make site", pages_only),
        ("(c) no-op make site", results["no-op make site"]),
        ("(d) make site after editing one page", results["one edited page: make site"]),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    print(f"{'step'.ljust(width)}  seconds")
    for label, seconds in rows:
        print(f"{label.ljust(width)}  {seconds:7.1f}")
    print()
    print(f"naive pipeline / nbmake alone:        {naive / results['naive: nbmake']:.2f}x")
    print(f"(make test + make site) / make test:  {ours / results['ours: make test']:.2f}x")
    print(f"naive pipeline / ours, pages only:    {naive / pages_only:.2f}x")
    slowest = max(inspect_rows, key=lambda row: row["ratio"])
    print(f"slowest inspect / inspect resnet18:   {slowest['ratio']:.2f}x ({slowest['command']})")
    record = {
        "jobs": int(JOBS),
        "seconds": results,
        "naive_total": naive,
        "ours_total": ours,
        "ours_pages_only": pages_only,
        "inspect": inspect_rows,
    }
    (pagecache.BUILD / "bench.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
