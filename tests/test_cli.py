"""Tests for the ``transferlens`` command (transferlens.cli), run in-process through ``main``.

What it prints is golden-tested (tests/test_output/cli_*.out); one subprocess run proves that
``python -m transferlens`` works too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from transferlens.cli import INSTALL_HINT, main, parse_lr

GOLDEN_DIR = Path(__file__).parent / "test_output"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``, with what it printed to stdout and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------
# Golden outputs


@pytest.mark.golden
@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
def test_cli_text(capsys: pytest.CaptureFixture[str], arch: str) -> None:
    code, out, err = run(capsys, "inspect", arch)
    assert (code, err) == (0, "")
    print(out, end="")  # for the golden file


@pytest.mark.golden
@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
def test_cli_json(capsys: pytest.CaptureFixture[str], arch: str) -> None:
    code, out, err = run(capsys, "inspect", arch, "--format", "json")
    assert (code, err) == (0, "")
    print(out, end="")  # for the golden file
    data = json.loads(out)
    assert list(data) == [
        "arch", "n_out", "body", "head", "split_family", "freeze", "lr", "lrs", "report"
    ]  # fmt: skip


@pytest.mark.golden
def test_cli_text_default_split_unfrozen_slice(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "inspect", "mobilenet_v3_small", "--n-out", "37", "--freeze", "0",
        "--lr", "slice(1e-5, 1e-3)",
    )  # fmt: skip
    assert (code, err) == (0, "")
    print(out, end="")  # for the golden file


# ---------------------------------------------------------------------------------------------
# What the output says


def test_cli_json_rows_add_up_to_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "resnet18", "--format", "json", "--lr", "1e-5:1e-3")
    assert code == 0
    data = json.loads(out)
    report, totals = data["report"], data["report"]["totals"]
    for key in ("tensors", "elements"):
        assert sum(row[key] for row in report["rows"]) == totals[key]
        assert sum(group[key] for group in report["groups"]) == totals[key]
        trainable = sum(row[key] for row in report["rows"] if row["trainable"])
        assert trainable == totals[f"trainable_{key}"]
        assert totals[key] - trainable == totals[f"frozen_{key}"]
    assert data["lrs"] == [group["lr"] for group in report["groups"]]
    assert data["lrs"] == pytest.approx([1e-5, 1e-4, 1e-3])
    assert [entry["path_a"] for entry in data["body"]["diff"]] == ["avgpool", "fc"]
    assert data["head"]["in_features"] == 1024


def test_cli_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    first = run(capsys, "inspect", "resnet18", "--format", "json")
    torch.manual_seed(1)
    assert run(capsys, "inspect", "resnet18", "--format", "json") == first


@pytest.mark.oracle
def test_cli_report_matches_fastai_learner(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's report equals ``trainable_report`` of fastai's own model, frozen by fastai."""
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.vision.learner import _resnet_split, create_vision_model
    from torchvision.models import resnet18

    from transferlens._report import trainable_report

    model = create_vision_model(resnet18, n_out=2, pretrained=False)
    dataset = [(torch.zeros(3, 32, 32), 0)] * 4
    dls = DataLoaders.from_dsets(dataset, dataset, bs=2, device="cpu")
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), splitter=_resnet_split)
    learn.freeze()  # what vision_learner does
    learn.opt.set_hyper("lr", slice(1e-5, 1e-3))

    code, out, _ = run(capsys, "inspect", "resnet18", "--format", "json", "--lr", "1e-5:1e-3")
    assert code == 0
    assert json.loads(out)["report"] == trainable_report(learn).to_dict()


# ---------------------------------------------------------------------------------------------
# --lr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 1e-3),
        (" 0.01 ", 0.01),
        ("slice(1e-3)", slice(None, 1e-3)),
        ("slice(1e-5,1e-3)", slice(1e-5, 1e-3)),
        ("slice( 1e-5 , 1e-3 )", slice(1e-5, 1e-3)),
        ("slice(None, 3e-3)", slice(None, 3e-3)),
        ("1e-5:1e-3", slice(1e-5, 1e-3)),
        (":1e-3", slice(None, 1e-3)),
    ],
)
def test_parse_lr(text: str, expected: float | slice) -> None:
    assert parse_lr(text) == expected


@pytest.mark.parametrize(
    "text", ["", "lr", "__import__('os')", "slice(1e-5,1e-3,2)", "1e-5:", "1e-3:1e-2:3", "1e-3x"]
)
def test_parse_lr_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="as a learning rate"):
        parse_lr(text)


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2 with a message on stderr that names the argument


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "resnet1800"], "Did you mean 'resnet18'"),
        (["inspect", "resnet18", "--freeze", "3"], "`--freeze` must be between -3 and 2"),
        (["inspect", "resnet18", "--n-out", "0"], "--n-out: must be a positive integer"),
        (["inspect", "resnet18", "--lr", "fast"], "--lr: cannot read 'fast' as a learning rate"),
        (["inspect", "resnet18", "--lr=-1e-3"], "`lr` must hold positive finite"),
        (["inspect", "resnet18", "--lr", "1e-3:1e-5"], "Swap them"),
        (["inspect", "resnet18", "--format", "yaml"], "--format: invalid choice"),
        (["inspect"], "the following arguments are required: ARCH"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_cli_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_cli_unknown_arch_names_arch(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "inspect", "resnet1800")
    assert code == 2
    assert err.startswith("transferlens inspect resnet1800: error: `arch` 'resnet1800' is not")


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--help")
    assert code == 0
    assert "--lr LR" in out and "slice(1e-5,1e-3)" in out


def test_cli_without_torchvision(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` now fails
    code, out, err = run(capsys, "inspect", "resnet18")
    assert (code, out) == (1, "")
    assert err == INSTALL_HINT + "\n"
    assert "pip install 'transferlens[cli]'" in err


# ---------------------------------------------------------------------------------------------
# The entry points


def test_python_dash_m_transferlens() -> None:
    """``python -m transferlens inspect resnet18`` prints exactly the golden text."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    result = subprocess.run(
        [sys.executable, "-m", "transferlens", "inspect", "resnet18"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress noise, no warnings
    assert result.stdout == (GOLDEN_DIR / "cli_text_resnet18.out").read_text(encoding="utf-8")
