"""MkDocs hooks: render the executed pages that were tested, never the bare notebooks.

- Each ``docs/*.ipynb`` page is swapped for its executed copy in ``build/executed/`` (written by
  the test run, see tools/pages_plugin.py). A page with no copy, or a copy made from other inputs
  (its cache key no longer matches), stops the build: run ``make site``, which executes exactly
  the stale pages first.
- ``extra.assets_mode`` is set from the executed pages, so the theme shows the stand-in notice.
- ``execution-report.md`` is generated from ``build/execution.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pagecache

REPORT_PAGE = "execution-report.md"


@event_priority(100)  # before mkdocs-jupyter wraps the notebook files
def on_files(files: Files, config: Any) -> Files:
    modes = set()
    source, deps = pagecache.source_fingerprint(), pagecache.dependency_fingerprint()
    for file in list(files):
        if not file.src_uri.endswith(".ipynb"):
            continue
        page = Path(file.abs_src_path)
        executed = pagecache.executed_path(page)
        try:
            meta = json.loads(executed.read_text(encoding="utf-8"))["metadata"][
                pagecache.METADATA_KEY
            ]
        except (OSError, ValueError, KeyError) as err:
            raise PluginError(
                f"{pagecache.page_name(page)} has no executed copy in build/executed/. "
                "Run `make site` (or `make test`) to execute it first."
            ) from err
        if meta.get("key") != pagecache.page_key(page, meta["assets"], source=source, deps=deps):
            raise PluginError(
                f"the executed copy of {pagecache.page_name(page)} is out of date (the page, "
                "transferlens or an installed package changed). Run `make site`."
            )
        modes.add(meta["assets"])
        file.abs_src_path = str(executed)
    if len(modes) > 1:
        raise PluginError(
            f"pages were executed with different asset modes ({sorted(modes)}). Run `make site` "
            "with one TRANSFERLENS_ASSETS value."
        )
    config.extra["assets_mode"] = modes.pop() if modes else "unknown"
    files.append(File.generated(config, REPORT_PAGE, content=_report_markdown()))
    return files


def _report_markdown() -> str:
    try:
        records = json.loads(pagecache.REPORT.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = []
    versions = _versions()
    lines = [
        "# Execution report",
        "",
        "Every page of this site is a notebook that the test suite executed; what you read is the",
        "output of that run. This table is generated from `build/execution.json`, written by the",
        "run (tools/pages_plugin.py): wall time of the page's execution and the kernel's peak",
        "resident memory.",
        "",
        "| | |",
        "|---|---|",
        f"| Assets | `{', '.join(sorted({r.get('assets', '?') for r in records})) or '?'}` |",
        f"| Python | {versions['python']} |",
        f"| torch / torchvision | {versions['torch']} / {versions['torchvision']} |",
        f"| fastai | {versions['fastai']} |",
        f"| Machine | {versions['machine']} |",
        "",
        "| Page | Status | Seconds | Peak RSS (MB) | Asserts |",
        "|---|---|---:|---:|---:|",
    ]
    for rec in records:
        link = Path(rec["page"]).relative_to("docs").as_posix()
        lines.append(
            f"| [{link}]({link}) | {rec['status']} | {rec['seconds']:.1f} | "
            f"{rec['peak_rss_mb']:.0f} | {rec.get('asserts', '')} |"
        )
    if not records:
        lines.append("| (no execution recorded yet: run `make test`) | | | | |")
    total = sum(rec["seconds"] for rec in records)
    lines += ["", f"Total execution time of the pages: {total:.1f} s (pages run in parallel)."]
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    import importlib.metadata
    import os
    import platform

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "torchvision": version("torchvision"),
        "fastai": version("fastai"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores ({platform.system()})",
    }
