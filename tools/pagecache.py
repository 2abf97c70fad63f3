"""What an executed page depends on, where executed pages are kept, and what the site is made of.

One key, one function. A page's outputs depend on its own cells, on the transferlens source it
imports (every ``.py`` under ``src/transferlens``, subfolders included), on the versions of every
installed package (torch, torchvision, fastai, ...), on the Python it ran on and on the asset mode
it ran with. ``page_keys`` hashes all of those into each page's cache key, and it is the only code
that does: every reader of a key goes through it.

- the page runner (``pagerun``) stamps each executed copy it publishes with ``page_key`` (which is
  ``page_keys`` for one page) and compares a new run with the copy of the same key;
- ``make site``'s staleness check is ``stale_pages``: the pages whose stamped key is not their
  current ``page_keys`` key (missing copies included);
- the MkDocs hooks refuse to render a page that ``stale_pages`` names.

The site stamp (``site_stamp``) is a second, separate concept: it fingerprints everything the
*built site* is made of, so ``make site`` can skip MkDocs when nothing changed. It is built from
the page keys (which already cover the notebooks, the package source and the installed versions),
plus the files only the site reads (``SITE_INPUTS``, notebooks excluded) and the execution report.
The executed copies themselves are not hashed: when the stamp is taken every copy is fresh, so its
key stands for it (a run of identical inputs gives identical outputs: the determinism check).

(mkdocs-jupyter's own cache keys on the notebook bytes alone, which misses a change in
transferlens or in fastai.)

Layout under ``build/``::

    build/executed/<page>.ipynb         the executed notebook, its key and asset mode in metadata
    build/execution/<page>.json         the latest execution record of each page
    build/execution.json                all records, one per page (written after every run)

Files here are written with ``transferlens.tutorial``'s ``write_atomically`` (a temporary file,
then ``os.replace``), so a reader never sees half a notebook or half a report.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import nbformat

from transferlens.tutorial import write_atomically

_CHECKOUT = Path(__file__).resolve().parents[1]
# The project whose docs/ and build/ are meant, and the package source its keys cover: this
# checkout's; tests point them at a scratch project (whose keys then do not change while
# someone edits src/).
ROOT = Path(os.environ.get("TRANSFERLENS_PAGES_ROOT") or _CHECKOUT)
SRC = Path(os.environ.get("TRANSFERLENS_PAGES_SRC") or _CHECKOUT / "src" / "transferlens")
DOCS = ROOT / "docs"
BUILD = ROOT / "build"
EXECUTED = BUILD / "executed"
RECORDS = BUILD / "execution"
REPORT = BUILD / "execution.json"
METADATA_KEY = "transferlens"
# Besides the pages (their keys), the built site is made of these, relative to ROOT (globs).
SITE_INPUTS = ("mkdocs.yml", "docs", "overrides", "tools/mkdocs_*.py", "tools/pagecache.py")


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


# --- the cache key ------------------------------------------------------------------------------


def source_fingerprint() -> str:
    """Hash of the transferlens package source (every .py file under src/transferlens)."""
    digest = hashlib.sha256()
    for path in sorted(SRC.rglob("*.py")):
        digest.update(path.relative_to(SRC).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def dependency_fingerprint() -> str:
    """Hash of every installed distribution's name and version, and of the Python running."""
    metadata = [dist.metadata for dist in importlib.metadata.distributions()]  # one parse each
    names = sorted(f"{(meta['Name'] or '').lower()}=={meta['Version']}" for meta in metadata)
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    digest.update(platform.machine().encode())
    for name in names:
        digest.update(name.encode() + b"\n")
    return digest.hexdigest()


def page_keys(pages: Iterable[Path], assets_mode: str) -> dict[Path, str]:
    """The cache key of each page's executed outputs: the one place a key is computed.

    The package source and the installed versions are fingerprinted once for all ``pages``.

    Args:
        pages: page notebooks (paths under docs/).
        assets_mode: the asset mode the pages run (or ran) with, ``"real"`` or ``"standin"``.

    Returns:
        Each page, as given, with its 32-hex-digit key.

    Examples:
        >>> keys = page_keys(pages(), "standin")  # doctest: +SKIP
        >>> keys[DOCS / "head.ipynb"] == page_key(DOCS / "head.ipynb", "standin")  # doctest: +SKIP
        True
    """
    environment = (source_fingerprint() + dependency_fingerprint() + assets_mode).encode()
    keys = {}
    for page in pages:
        digest = hashlib.sha256(page.read_bytes())
        digest.update(environment)
        keys[page] = digest.hexdigest()[:32]
    return keys


def page_key(page: Path, assets_mode: str) -> str:
    """The cache key of one page: ``page_keys`` for that page alone."""
    return page_keys([page], assets_mode)[page]


# --- executed copies: the stamp they carry --------------------------------------------------------


def stamp_of(nb: Mapping[str, Any]) -> dict[str, str] | None:
    """The ``{"key": ..., "assets": ...}`` stamp of an executed notebook, or None."""
    stamp = (nb.get("metadata") or {}).get(METADATA_KEY)
    return stamp if isinstance(stamp, dict) and "key" in stamp and "assets" in stamp else None


def read_stamp(page: Path) -> dict[str, str] | None:
    """The stamp of a page's executed copy; None when there is no (readable) copy."""
    try:
        return stamp_of(json.loads(executed_path(page).read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError):
        return None


def publish(page: Path, nb: Any, key: str, assets_mode: str) -> None:
    """Keep ``nb`` (an nbformat notebook) as the executed copy of ``page``, stamped."""
    nb.metadata[METADATA_KEY] = {"key": key, "assets": assets_mode}
    target = executed_path(page)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb)
    write_atomically(target, lambda handle: handle.write(text.encode("utf-8")))


def unpublish(page: Path) -> None:
    """Remove a page's executed copy (a failed page must not leave a stale one to publish)."""
    executed_path(page).unlink(missing_ok=True)


def stale_pages(assets_mode: str, among: Iterable[Path] | None = None) -> list[Path]:
    """The pages (all, or those ``among``) whose executed copy is missing or from other inputs."""
    checked = pages() if among is None else list(among)
    keys = page_keys(checked, assets_mode)
    return [page for page in checked if (read_stamp(page) or {}).get("key") != keys[page]]


# --- the built site ------------------------------------------------------------------------------


def site_stamp(assets_mode: str) -> str:
    """Fingerprint of what the built site is made of (see the module docstring)."""
    digest = hashlib.sha256(assets_mode.encode())
    for page, key in page_keys(pages(), assets_mode).items():
        digest.update(f"{page_name(page)}={key}\n".encode())
    files: list[Path] = []
    for pattern in SITE_INPUTS:
        for path in sorted(ROOT.glob(pattern)):
            files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in [*(p for p in files if p.suffix != ".ipynb"), REPORT]:  # pages: their keys
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()


# --- execution records ---------------------------------------------------------------------------


def write_record(page: Path, record: dict[str, Any]) -> None:
    """Write a page's latest execution record (build/execution/<page>.json)."""
    target = record_path(page)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2) + "\n"
    write_atomically(target, lambda handle: handle.write(text.encode("utf-8")))


def write_report() -> list[dict]:
    """Gather the latest record of every current page into build/execution.json."""
    records = []
    for page in pages():
        try:
            records.append(json.loads(record_path(page).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(records, indent=2) + "\n"
    write_atomically(REPORT, lambda handle: handle.write(text.encode("utf-8")))
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
