"""What an executed page's outputs depend on, and where executed pages are kept.

A page's outputs depend on its own cells, on the transferlens source it imports, on the versions
of every installed package (torch, torchvision, fastai, ...), on the asset mode it ran with and on
the Python it ran on. ``page_key`` hashes all of those. An executed copy whose key matches is up
to date; anything else is executed again. (mkdocs-jupyter's own cache keys on the notebook bytes
alone, which misses a change in transferlens or in fastai.)

Layout under ``build/``::

    build/executed/<page>.ipynb         the executed notebook, with its key in the metadata
    build/execution/<page>.json         the latest execution record of each page
    build/execution.json                all records, one per page (written after every run)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path

# The project whose docs/ and build/ are meant; tests point it at a scratch project.
ROOT = Path(os.environ.get("TRANSFERLENS_PAGES_ROOT") or Path(__file__).resolve().parents[1])
DOCS = ROOT / "docs"
# The package source is always this checkout's.
SRC = Path(__file__).resolve().parents[1] / "src" / "transferlens"
BUILD = ROOT / "build"
EXECUTED = BUILD / "executed"
RECORDS = BUILD / "execution"
REPORT = BUILD / "execution.json"
METADATA_KEY = "transferlens"


def pages() -> list[Path]:
    """Every page notebook under docs/, in a stable order."""
    return sorted(p for p in DOCS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def page_name(page: Path) -> str:
    """``docs/anatomy.ipynb`` for a page path (the name used in reports)."""
    return page.resolve().relative_to(ROOT).as_posix()


def executed_path(page: Path) -> Path:
    return EXECUTED / page.resolve().relative_to(DOCS)


def record_path(page: Path) -> Path:
    return RECORDS / page.resolve().relative_to(DOCS).with_suffix(".json")


def source_fingerprint() -> str:
    """Hash of the transferlens package source (every .py file under src/transferlens)."""
    digest = hashlib.sha256()
    for path in sorted(SRC.rglob("*.py")):
        digest.update(path.relative_to(SRC).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def dependency_fingerprint() -> str:
    """Hash of every installed distribution's name and version, and of the Python running."""
    names = sorted(
        f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
        for dist in importlib.metadata.distributions()
    )
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    digest.update(platform.machine().encode())
    for name in names:
        digest.update(name.encode() + b"\n")
    return digest.hexdigest()


def page_key(
    page: Path, assets_mode: str, *, source: str | None = None, deps: str | None = None
) -> str:
    """The cache key of a page's executed outputs (see the module docstring)."""
    digest = hashlib.sha256()
    digest.update(page.read_bytes())
    digest.update((source or source_fingerprint()).encode())
    digest.update((deps or dependency_fingerprint()).encode())
    digest.update(assets_mode.encode())
    return digest.hexdigest()[:32]


def stored_key(executed: Path) -> str | None:
    """The key recorded in an executed notebook, or None when there is none (or no file)."""
    try:
        meta = json.loads(executed.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return None
    return (meta.get(METADATA_KEY) or {}).get("key")


def stale_pages(assets_mode: str) -> list[Path]:
    """The pages whose executed copy is missing or was made from other inputs."""
    source, deps = source_fingerprint(), dependency_fingerprint()
    return [
        page
        for page in pages()
        if stored_key(executed_path(page)) != page_key(page, assets_mode, source=source, deps=deps)
    ]


def write_report() -> list[dict]:
    """Gather the latest record of every current page into build/execution.json."""
    records = []
    for page in pages():
        try:
            records.append(json.loads(record_path(page).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    tmp = REPORT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    tmp.replace(REPORT)
    return records


def format_table(records: list[dict]) -> str:
    """The short table printed at the end of a run."""
    rows = [("page", "status", "seconds", "peak RSS MB", "asserts")]
    for rec in records:
        rows.append(
            (
                rec["page"],
                rec["status"],
                f"{rec['seconds']:.1f}",
                f"{rec['peak_rss_mb']:.0f}",
                str(rec.get("asserts", "")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
