"""Build site/ from the executed pages, executing only the pages that are stale.

``make site`` runs this. It

1. resolves the asset mode (``TRANSFERLENS_ASSETS``, ``auto`` probed once);
2. executes the pages whose executed copy is missing or stale (tools/pagecache.py says what a
   copy depends on) through the same pytest + nbmake run as ``make test``, so a page is
   executed once whether the test suite or the site asked for it;
3. skips MkDocs entirely when nothing that the site is made of changed since the last build
   (``pagecache.site_stamp``: the page keys, the site's other inputs and the report);
4. else builds into a temporary folder with ``mkdocs build --strict`` and swaps it into site/
   only on success: a failed build leaves the previous site/ in place.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pagecache

ROOT = pagecache.ROOT
SITE = ROOT / "site"
# In the built site: the pagecache.site_stamp of what it was built from.
STAMP_NAME = ".transferlens-build"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site-dir", type=Path, default=SITE)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    from transferlens.tutorial import resolve_asset_mode

    mode, reason = resolve_asset_mode()
    os.environ["TRANSFERLENS_ASSETS"] = mode
    print(f"assets: {mode}" + (f" ({reason})" if reason else ""))

    stale = pagecache.stale_pages(mode)
    if stale:
        names = ", ".join(pagecache.page_name(p) for p in stale)
        print(f"executing {len(stale)} stale page(s): {names}")
        if _execute(stale, args.jobs) != 0:
            print("page execution failed: site/ left as it was", file=sys.stderr)
            return 1
    else:
        print("every page has an up-to-date executed copy: executing nothing")

    stamp = pagecache.site_stamp(mode)
    stamp_file = args.site_dir / STAMP_NAME
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        print(f"{_rel(args.site_dir)}/ is up to date ({time.perf_counter() - started:.1f} s)")
        return 0

    tmp = args.site_dir.with_name(args.site_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp)],
        cwd=ROOT,
    )
    if build.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        print("mkdocs build failed: site/ left as it was", file=sys.stderr)
        return build.returncode
    (tmp / STAMP_NAME).write_text(stamp)
    old = args.site_dir.with_name(args.site_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if args.site_dir.exists():
        args.site_dir.rename(old)
    tmp.rename(args.site_dir)
    shutil.rmtree(old, ignore_errors=True)
    print(f"built {_rel(args.site_dir)}/ in {time.perf_counter() - started:.1f} s")
    return 0


def _execute(stale: list[Path], jobs: int) -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    workers = min(jobs, len(stale))
    if workers > 1:
        command += ["-n", str(workers)]
    command += [str(p.relative_to(ROOT)) for p in stale]
    return subprocess.run(command, cwd=ROOT).returncode


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
