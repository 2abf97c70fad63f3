"""Shared test fixtures: golden-output files, as torchinfo's ``tests/conftest.py`` does them.

A test marked ``@pytest.mark.golden`` (or that asks for the ``golden`` fixture) has everything it
prints compared, exactly, with ``tests/test_output/<test name>.out`` (``test_`` dropped, odd
characters of parametrized ids replaced by ``_``). After an intended formatting change, rerun
with ``pytest --overwrite-golden`` to rewrite the files, and review them as a diff.

(The option is not called ``--overwrite``: nbmake already owns that flag.)
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "test_output"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--overwrite-golden",
        action="store_true",
        default=False,
        help="rewrite tests/test_output/*.out from what the golden tests print",
    )


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """The tests use small models: a second intra-op thread only adds synchronization.

    Under `make test` the page harness already sets OMP_NUM_THREADS=1; this covers direct runs.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "golden: compare the test's stdout with tests/test_output/<test name>.out "
        "(pytest --overwrite-golden rewrites it)",
    )


def golden_path(node_name: str) -> Path:
    """The golden file of the test called ``node_name`` (``test_tree[resnet18]`` ->
    ``tree_resnet18.out``)."""
    name = node_name.removeprefix("test_")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    return GOLDEN_DIR / f"{name}.out"


def _check_golden(captured: str, path: Path, overwrite: bool) -> None:
    if overwrite:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(captured, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(
            f"no golden file {path.relative_to(GOLDEN_DIR.parent.parent)}; "
            "run `pytest --overwrite-golden` once and review what it wrote."
        )
    expected = path.read_text(encoding="utf-8")
    if captured != expected:
        # Assert on the strings so pytest shows a line diff.
        assert captured == expected, (
            f"output differs from {path.name}; if the change is intended, rerun with "
            "`pytest --overwrite-golden` and review the diff."
        )


@pytest.fixture
def golden(capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> Iterator[Path]:
    """Compare everything the test prints to stdout with its golden file, after the test.

    Yields the golden file's path (where it will be, with ``--overwrite-golden``).
    """
    path = golden_path(request.node.name)
    yield path
    # A test that failed already has its own error; do not add a golden mismatch on top.
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        return
    captured = capsys.readouterr().out
    _check_golden(captured, path, request.config.getoption("--overwrite-golden"))


@pytest.fixture(autouse=True)
def _golden_marker(request: pytest.FixtureRequest) -> None:
    """Make ``@pytest.mark.golden`` mean "use the ``golden`` fixture" (torchinfo's autouse)."""
    if request.node.get_closest_marker("golden") is not None:
        request.getfixturevalue("golden")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep the call phase's report on the item, so fixtures can see whether the test failed.
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
