"""Anatomy keeps the asserts of the notebook the project grew from, word for word."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "seed" / "000_759438cf9652d703.txt"


def _asserts(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip().startswith("assert ")]


@pytest.mark.skipif(
    not SEED.exists(), reason="the seed notebook lives in ../shared, beside the clone"
)
def test_anatomy_runs_every_assert_of_the_seed_notebook_unchanged() -> None:
    seed = _asserts(SEED.read_text().splitlines())
    page = nbformat.read(ROOT / "docs" / "anatomy.ipynb", as_version=4)
    code = [
        line for cell in page.cells if cell.cell_type == "code" for line in cell.source.splitlines()
    ]
    assert len(seed) == 9
    missing = [line for line in seed if line not in _asserts(code)]
    assert not missing, f"docs/anatomy.ipynb lost or changed the seed notebook's asserts: {missing}"
