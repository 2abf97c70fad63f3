"""make test-colab: every page, as a Colab user meets it.

A reader who opens a page in Colab has torch, torchvision, fastai, timm, matplotlib and a kernel,
and nothing of ours: the page's first cell installs transferlens (and what else the page needs,
e.g. ONNX Runtime on the shipping page). This check

1. makes a fresh venv (``build/colab/venv``) holding only torch and torchvision (the versions
   installed here), fastai, timm, matplotlib and ipykernel;
2. copies each page with its install cell pointed at this checkout instead of the Git URL (the
   only change: the cell's ``git+https://github.com/transferlens/transferlens``);
3. executes the copies one after the other in that venv's kernel (the first page installs
   transferlens into it, as Colab's first page would), with stand-in assets unless
   ``TRANSFERLENS_ASSETS`` says otherwise, and prints a line per page: passed or failed, seconds.

It exits 1 when a page fails. A check, not a unit test: it installs packages, so it runs in
``.ci/run``, not in ``make test``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pagecache
from nbclient import NotebookClient

ROOT = pagecache.ROOT
WORK = pagecache.BUILD / "colab"
GIT_URL = "git+https://github.com/transferlens/transferlens"
#: What Colab's image has that the pages use (beyond the standard library and numpy/pandas,
#: which these bring).
COLAB_PACKAGES = ("fastai", "timm", "matplotlib", "ipykernel")
KERNEL = "transferlens-colab"


def _run(command: list[str]) -> None:
    """Run ``command``; print its output without pip's lines about this machine's indexes."""
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    noise = "is ignored: it is neither a file nor a directory"
    for line in (result.stdout + result.stderr).splitlines():
        if noise not in line:
            print(line)
    result.check_returncode()


def make_venv(venv: Path) -> Path:
    """The Colab-like venv (made once; ``--fresh`` makes it again). Returns its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".colab-ready"
    if stamp.is_file():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    torch = f"torch=={importlib.metadata.version('torch')}"
    vision = f"torchvision=={importlib.metadata.version('torchvision')}"
    _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    _run([str(python), "-m", "pip", "install", "-q", torch, vision, *COLAB_PACKAGES])
    stamp.write_text("ok\n")
    return python


def install_kernel(python: Path, prefix: Path) -> None:
    """A kernelspec, under ``prefix``, that starts the venv's python."""
    spec = prefix / "share" / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "transferlens (Colab-like)",
                "language": "python",
            }
        )
    )


def colab_copy(page: Path) -> nbformat.NotebookNode:
    """The page with its install cell pointed at this checkout; nothing else changed."""
    nb = nbformat.read(str(page), as_version=4)
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    if GIT_URL not in first.source:
        raise SystemExit(f"{page.name}: the first code cell does not install {GIT_URL}")
    first.source = first.source.replace(GIT_URL, str(ROOT))
    return nb


def run_page(page: Path, timeout: int) -> tuple[bool, float, str]:
    """Execute the page's Colab copy in the venv's kernel: (passed, seconds, error line)."""
    nb = colab_copy(page)
    resources = {"metadata": {"path": str(WORK / "run")}}
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, resources=resources)
    started = time.perf_counter()
    try:
        client.execute()
        return True, time.perf_counter() - started, ""
    except Exception as error:  # a failing cell: report it, go on with the next page
        return False, time.perf_counter() - started, str(error).strip().splitlines()[-1][:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="default: every page")
    parser.add_argument("--fresh", action="store_true", help="make the venv again")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    venv = WORK / "venv"
    if args.fresh:
        shutil.rmtree(venv, ignore_errors=True)
    python = make_venv(venv)
    # transferlens itself must come from the pages' install cells, never from an earlier run
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "transferlens"],
                   check=False, capture_output=True)  # fmt: skip
    prefix = WORK / "jupyter"
    install_kernel(python, prefix)
    (WORK / "run").mkdir(parents=True, exist_ok=True)
    # Read by this process (to find the kernelspec) and inherited by every kernel it starts.
    os.environ.update(
        {
            "JUPYTER_PATH": str(prefix / "share" / "jupyter"),
            "TRANSFERLENS_ASSETS": os.environ.get("TRANSFERLENS_ASSETS", "standin"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "MPLCONFIGDIR": str(WORK / "matplotlib"),
            "TRANSFERLENS_CACHE": os.environ.get("TRANSFERLENS_CACHE", str(WORK / "cache")),
            "PYTHONPATH": "",  # nothing of this checkout but what the pages install
        }
    )
    pages = args.pages or pagecache.pages()
    results = []
    for page in pages:
        passed, seconds, error = run_page(page, args.timeout)
        results.append((page.name, passed, seconds, error))
        print(f"{'passed' if passed else 'FAILED'}  {seconds:6.1f} s  {page.name}  {error}",
              flush=True)  # fmt: skip
    failed = [name for name, passed, *_ in results if not passed]
    print(f"{len(results) - len(failed)} of {len(results)} pages passed in the Colab-like venv")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
