"""Tests for the ``transferlens`` command (transferlens.inspector.cli), run in-process through
``main``.

What it prints is golden-tested (tests/test_output/cli_*.out). Two subprocesses remain, for what
only a fresh interpreter shows: argument errors are answered before torch is imported. The full
atlas is built once for this module (``atlas_json``). How fast ``inspect`` answers is measured
by ``tools/bench_inspect.py`` (``make bench``), never asserted here.
"""

from __future__ import annotations

import argparse
import json
import runpy
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from transferlens.inspector import atlas_rows
from transferlens.inspector.cli import INSTALL_HINT, main, parse_cut, parse_lr

GOLDEN_DIR = Path(__file__).parent / "test_output"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``, with what it printed to stdout and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _dls() -> Any:
    from fastai.data.core import DataLoaders

    samples = [(torch.zeros(3, 32, 32), 0), (torch.zeros(3, 32, 32), 1)]
    return DataLoaders.from_dsets(samples, samples, bs=2, num_workers=0, device="cpu")


# ---------------------------------------------------------------------------------------------
# Golden outputs


@pytest.mark.golden
@pytest.mark.parametrize("arch", ["resnet18", "alexnet", "googlenet"])
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
        "arch", "status", "pretrained", "call", "builder_call", "weights", "device", "n_out",
        "body", "head", "split_family", "splitter", "groups", "freeze", "lr", "lrs", "report",
    ]  # fmt: skip
    assert (data["status"], data["device"], data["pretrained"]) == ("ok", "meta", True)
    assert data["builder_call"] == f"{arch}(weights='DEFAULT')"  # both are in model_meta
    assert data["groups"] == [group["elements"] for group in data["report"]["groups"]]


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
    assert data["weights"] == "ResNet18_Weights.IMAGENET1K_V1"


def test_cli_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    first = run(capsys, "inspect", "resnet18", "--format", "json")
    torch.manual_seed(1)
    assert run(capsys, "inspect", "resnet18", "--format", "json") == first


@pytest.mark.oracle
def test_cli_report_matches_fastai_learner(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's report equals ``trainable_report`` of fastai's own model, frozen by fastai."""
    from fastai.learner import Learner
    from fastai.vision.learner import _resnet_split, create_vision_model
    from torchvision.models import resnet18

    from transferlens import trainable_report

    with torch.device("meta"):  # the report counts parameters: no numbers needed
        model = create_vision_model(resnet18, n_out=2, pretrained=False)
    learn = Learner(_dls(), model, loss_func=nn.CrossEntropyLoss(), splitter=_resnet_split)
    learn.freeze()  # what vision_learner does
    learn.opt.set_hyper("lr", slice(1e-5, 1e-3))

    code, out, _ = run(capsys, "inspect", "resnet18", "--format", "json", "--lr", "1e-5:1e-3")
    assert code == 0
    assert json.loads(out)["report"] == trainable_report(learn).to_dict()


# ---------------------------------------------------------------------------------------------
# pretrained: what fastai's default call does, and pretrained=False


@pytest.mark.golden
@pytest.mark.parametrize("arch", ["regnet_y_128gf", "vit_h_14"])
def test_cli_refused_without_weights(capsys: pytest.CaptureFixture[str], arch: str) -> None:
    """fastai's default ``vision_learner(dls, arch)`` calls ``arch(pretrained=True)``, for which
    torchvision has no weights: the command says so, nothing is built."""
    code, out, err = run(capsys, "inspect", arch)
    assert (code, out) == (3, "")
    words = " ".join(err.split())
    assert f"ValueError: No weights available for model {arch}" in words
    assert "--no-pretrained" in words
    code, out, _ = run(capsys, "inspect", arch, "--format", "json")
    data = json.loads(out)
    assert (code, data["stage"], data["fastai_error"], data["device"]) == (
        3, "weights", "ValueError", None,
    )  # fmt: skip
    assert (data["pretrained"], data["call"]) == (True, f"vision_learner(dls, {arch})")
    print(err, out, sep="", end="")  # for the golden file


@pytest.mark.oracle
def test_fastai_default_call_fails_without_weights_and_the_advice_works() -> None:
    """fastai itself: ``vision_learner(dls, regnet_y_128gf)`` raises torchvision's ValueError;
    the advised function ``arch`` gets past it (built on meta, its weights not loaded)."""
    from fastai.vision.learner import vision_learner
    from torchvision.models import regnet_y_128gf

    from transferlens.inspector._meta_device import empty_weights, weights_not_loaded

    dls = _dls()
    with pytest.raises(ValueError, match="No weights available for model regnet_y_128gf"):
        vision_learner(dls, regnet_y_128gf, n_out=2, loss_func=nn.CrossEntropyLoss())

    def arch(pretrained: bool) -> nn.Module:  # the advice's lambda, as a function
        return regnet_y_128gf(weights="DEFAULT" if pretrained else None)

    with weights_not_loaded() as asked, empty_weights(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn = vision_learner(dls, arch, n_out=2, loss_func=nn.CrossEntropyLoss())
    assert [str(weights) for weights in asked] == ["RegNet_Y_128GF_Weights.IMAGENET1K_SWAG_E2E_V1"]
    assert len(learn.model[0]) == 2  # stem, trunk_output: cut as regnet_y_128gf itself


def test_cli_no_pretrained_builds_on_meta_unfrozen(capsys: pytest.CaptureFixture[str]) -> None:
    """RegNets compute while building: only their parameters and buffers go on meta."""
    code, out, _ = run(capsys, "inspect", "regnet_y_128gf", "--no-pretrained", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert (data["device"], data["pretrained"], data["weights"]) == ("meta", False, None)
    assert data["builder_call"] == "regnet_y_128gf(pretrained=False)"
    assert data["call"] == "vision_learner(dls, regnet_y_128gf, pretrained=False)"
    assert data["report"]["totals"]["elements"] > 600_000_000
    # vision_learner freezes only when pretrained: everything trains
    assert data["freeze"] == {"n": 0, "frozen_groups": 0}
    report = data["report"]["totals"]
    assert report["trainable_elements"] == report["elements"]


@pytest.mark.golden
def test_cli_refused_googlenet_no_pretrained(capsys: pytest.CaptureFixture[str]) -> None:
    """Random googlenet keeps its auxiliary classifiers, and fastai's body fails on them
    (the default call loads weights, which drop them: ``inspect googlenet`` builds)."""
    code, out, err = run(capsys, "inspect", "googlenet", "--no-pretrained")
    assert (code, out) == (3, "")
    words = " ".join(err.split())
    assert "`aux1` (InceptionAux)" in words and "--cut 16 (up to `inception5b`" in words
    assert "vision_learner(dls, googlenet, pretrained=False) fails" in words
    print(err, end="")  # for the golden file


# ---------------------------------------------------------------------------------------------
# --lr, --cut


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


def test_parse_cut() -> None:
    assert (parse_cut(" -2 "), parse_cut("layer4")) == (-2, "layer4")
    with pytest.raises(argparse.ArgumentTypeError, match="as a cut"):
        parse_cut("2.5")


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2 with a message on stderr that names the argument


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "resnet1800"], "Did you mean 'resnet18'"),
        (["inspect", "resnet18", "--freeze", "3"], "`--freeze` must be between -3 and 2"),
        (["inspect", "resnet18", "--n-out", "0"], "--n-out: must be a positive integer"),
        (["inspect", "resnet18", "--lr", "fast"], "--lr: cannot read 'fast' as a learning rate"),
        (["inspect", "resnet18", "--lr=-1e-3"], "`lr` must be a positive finite number"),
        (["inspect", "resnet18", "--lr", "1e-3:1e-5"], "Swap them"),
        (["inspect", "resnet18", "--format", "yaml"], "--format: invalid choice"),
        (["inspect"], "the following arguments are required: ARCH"),
        (["inspect", "resnet18", "--cut", "2.5"], "--cut: cannot read '2.5' as a cut"),
        (["inspect", "resnet18", "--cut", "11"], "`--cut` must be between -10 and 10"),
        (["inspect", "resnet18", "--cut", "avgpol"], "no child called 'avgpol'. Its children"),
        (["atlas", "--format", "yaml"], "--format: invalid choice"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_cli_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_cli_unknown_arch_names_arch(capsys: pytest.CaptureFixture[str]) -> None:
    """The library's own message (``resolve_arch``), after the command's name."""
    from transferlens import LensError, resolve_arch

    code, _, err = run(capsys, "inspect", "resnet1800")
    with pytest.raises(LensError) as library:
        resolve_arch("resnet1800")
    assert code == 2
    assert err == f"transferlens inspect resnet1800: error: {library.value}\n"


def test_cli_unknown_child_lists_the_children(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "inspect", "resnet18", "--cut", "avgpol")
    assert code == 2
    assert err.rstrip().endswith("layer3, layer4, avgpool, fc.")


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--help")
    assert code == 0
    assert "--lr LR" in out and "slice(1e-5,1e-3)" in out and "--no-pretrained" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "--n-out", "0", "resnet18"],
        ["inspect", "resnet18", "--cut", "2.5"],
        ["inspect", "resnet18", "--lr", "fast"],
        ["bogus"],
    ],
    ids=["n-out", "cut", "lr", "command"],
)
def test_cli_argument_errors_exit_2_before_importing_torch(argv: list[str]) -> None:
    """argparse answers a bad argument before anything imports torch (a fresh interpreter)."""
    code = (
        "import sys\nfrom transferlens.inspector.cli import main\n"
        f"status = main({argv!r})\n"
        "print(status, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 []"
    assert "usage: transferlens" in result.stderr


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


def test_python_dash_m_transferlens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m transferlens inspect resnet18`` (its ``__main__``) prints the golden text,
    and no warning."""
    monkeypatch.setattr(sys, "argv", ["transferlens", "inspect", "resnet18"])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as exit_:
        warnings.simplefilter("always")
        runpy.run_module("transferlens", run_name="__main__", alter_sys=False)
    captured = capsys.readouterr()
    assert exit_.value.code == 0
    assert [str(warning.message) for warning in caught] == [] and captured.err == ""
    assert captured.out == (GOLDEN_DIR / "cli_text_resnet18.out").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# --cut, and what fastai cannot build


def test_cli_cut_int_and_child_name_agree(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "resnet18", "--cut", "-3", "--format", "json")
    assert code == 0
    by_int = json.loads(out)
    code, out, _ = run(capsys, "inspect", "resnet18", "--cut", "layer4", "--format", "json")
    assert code == 0
    by_name = json.loads(out)
    assert by_int["body"]["kept_children"] == 7  # conv1 ... layer3
    assert by_int["body"]["cut_source"] == "--cut"
    assert by_name["body"]["cut"] == 7 and by_int["body"]["cut"] == -3
    assert by_name["head"] == by_int["head"]
    assert by_int["head"]["n_features"] == 256  # layer3's channels


@pytest.mark.oracle
def test_cli_cut_matches_fastai_create_vision_model(capsys: pytest.CaptureFixture[str]) -> None:
    """``--cut N`` is fastai's ``create_vision_model(arch, n_out, cut=N)``."""
    from fastai.vision.learner import create_vision_model, default_split
    from torchvision.models import mobilenet_v2

    code, out, _ = run(
        capsys, "inspect", "mobilenet_v2", "--no-pretrained", "--cut", "1", "--format", "json"
    )
    assert code == 0
    data = json.loads(out)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's pretrained= deprecation
        model = create_vision_model(mobilenet_v2, 2, pretrained=False, cut=1)
    assert data["groups"] == [sum(p.numel() for p in g) for g in default_split(model)]
    assert data["head"]["in_features"] == model[1][2].num_features == 2560


@pytest.mark.golden
def test_cli_refused_vit_b_16(capsys: pytest.CaptureFixture[str]) -> None:
    """fastai fails on vit_b_16 with a bare StopIteration; the CLI says why, and, since no cut
    keeps the encoder, what works instead."""
    code, out, err = run(capsys, "inspect", "vit_b_16")
    assert (code, out) == (3, "")
    assert max(len(line) for line in err.splitlines()) <= 100  # wrapped for a terminal
    words = " ".join(err.split())
    assert "StopIteration" in words and "No --cut gives a useful body" in words
    assert 'vision_learner(dls, "vit_base_patch16_224")' in words and "custom_head" in words
    assert "--cut 1 (up to `conv_proj`)" in words
    print(err, end="")  # for the golden file


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_a_cut_is_suggested_only_where_it_keeps_the_feature_extractor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The rule (``useful_cut``): the suggested body keeps more than half of the parameters the
    model's own forward uses outside its last child."""
    from torchvision import models

    def refusal(*argv: str) -> dict[str, Any]:
        code, out, _ = run(capsys, "inspect", *argv, "--format", "json")
        assert code == 3
        return json.loads(out)

    with torch.device("meta"):
        vit = models.vit_b_16()
        googlenet = models.googlenet(init_weights=False)
        inception = models.inception_v3(init_weights=False)
    # vit_b_16: conv_proj alone runs and gives feature maps; the encoder is the model
    vit_share = _params(vit.conv_proj) / (_params(vit.conv_proj) + _params(vit.encoder))
    found = refusal("vit_b_16")
    assert (found["runnable_cut"], found["suggested_cut"]) == (1, None)
    assert found["runnable_share"] == pytest.approx(vit_share) and vit_share < 0.01
    # googlenet (random weights): the aux classifiers run in training only, so they count on
    # neither side, and children[:16] (up to inception5b) is the whole feature extractor
    used = [c for n, c in googlenet.named_children() if n not in ("aux1", "aux2", "fc")]
    found = refusal("googlenet", "--no-pretrained")
    kept = sum(_params(c) for c in list(googlenet.children())[:16])
    assert found["suggested_cut"] == found["runnable_cut"] == 16
    assert found["runnable_share"] == pytest.approx(kept / sum(_params(c) for c in used))
    assert found["runnable_share"] > 0.5
    # inception_v3: children[:15] stops before Mixed_7a..7c, most of the model
    found = refusal("inception_v3")
    names = [name for name, _ in inception.named_children()]
    assert names[15] == "AuxLogits" and found["runnable_cut"] == 15
    assert found["suggested_cut"] is None and found["runnable_share"] < 0.5


def test_cli_refused_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "mnasnet0_5", "--format", "json")
    assert code == 3 and err.startswith("transferlens inspect mnasnet0_5: refused: fastai")
    data = json.loads(out)
    assert (data["status"], data["stage"], data["fastai_error"]) == (
        "refused",
        "cut",
        "StopIteration",
    )
    assert data["suggested_cut"] == 1 and data["cut"] is None
    assert data["weights"] == "MNASNet0_5_Weights.IMAGENET1K_V1"
    code, out, _ = run(capsys, "inspect", "mnasnet0_5", "--cut", "1", "--format", "json")
    assert code == 0 and json.loads(out)["body"]["kept_children"] == 1


@pytest.mark.oracle
def test_cli_cut_that_breaks_fastai_split(capsys: pytest.CaptureFixture[str]) -> None:
    """fastai splits a resnet cut at 3 children with _resnet_split anyway: an empty group."""
    from fastai.vision.learner import _resnet_split, create_vision_model
    from torchvision.models import resnet18

    code, out, err = run(capsys, "inspect", "resnet18", "--cut", "3", "--format", "json")
    assert code == 3
    data = json.loads(out)
    assert (data["stage"], data["fastai_error"], data["cut"]) == ("split", "", 3)
    assert "_resnet_split" in data["reason"] and "--cut out" in " ".join(err.split())
    with torch.device("meta"):
        model = create_vision_model(resnet18, 2, pretrained=False, cut=3)
    assert [len(group) for group in _resnet_split(model)][1] == 0


# ---------------------------------------------------------------------------------------------
# atlas: built once for the module


class _Capture:
    """stdout and stderr of a block, for a module-scoped fixture (capsys is per test)."""

    def __enter__(self) -> _Capture:
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


@pytest.fixture(scope="module")
def atlas_json() -> Iterator[tuple[int, str, str, list[Any]]]:
    """``transferlens atlas --format json``: status, stdout, stderr, and the rows it printed
    (the ``AtlasRow`` objects, for the other formats)."""
    from transferlens.inspector import _atlas

    built: list[Any] = []

    def keep(*args: Any, **kwargs: Any) -> list[Any]:
        built.extend(atlas_rows(*args, **kwargs))
        return built

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_atlas, "atlas_rows", keep)  # cli.py looks it up when it runs
        with _Capture() as cap:
            code = main(["atlas", "--format", "json"])
    yield code, cap.out, cap.err, built


def test_cli_atlas_json(atlas_json: tuple[int, str, str, list[Any]]) -> None:
    from transferlens import known_architectures

    code, out, err, _ = atlas_json
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [row["name"] for row in rows] == known_architectures()
    fields = {
        "name", "status", "reason", "pretrained_false_status", "pretrained_false_reason",
        "built_by", "cut", "groups", "head_in_features", "trainable_when_frozen", "normalize",
        "weights", "cut_honoured", "device",
    }  # fmt: skip
    by_name = {row["name"]: row for row in rows}
    for row in rows:
        assert fields <= set(row), row["name"]
        assert row["status"] in ("ok", "no weights", "refused"), row["name"]
        assert row["pretrained_false_status"] in ("ok", "refused"), row["name"]
        assert row["device"] == "meta", row["name"]  # every model, without real parameters
        assert (row["status"] == "ok") == (row["reason"] == ""), row["name"]
        built = "ok" in (row["status"], row["pretrained_false_status"])
        assert built == (row["groups"] is not None), row["name"]
        assert row["built_by"] == (
            "default" if row["status"] == "ok" else "pretrained=False" if built else None
        )
        assert row["cut_honoured"] is False
    resnet50 = by_name["resnet50"]
    assert resnet50["weights"] == "ResNet50_Weights.IMAGENET1K_V2"  # DEFAULT, not V1
    assert resnet50["normalize"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert by_name["resnext50_32x4d"]["weights"] == "ResNeXt50_32X4D_Weights.IMAGENET1K_V1"
    assert by_name["resnext50_32x4d"]["normalize"] is None  # not in model_meta: no Normalize
    no_weights = sorted(name for name, row in by_name.items() if row["status"] == "no weights")
    assert no_weights == ["regnet_y_128gf", "vit_h_14"]
    assert all(by_name[name]["weights"] is None for name in no_weights)
    assert by_name["regnet_y_128gf"]["pretrained_false_status"] == "ok"
    assert (by_name["googlenet"]["status"], by_name["googlenet"]["pretrained_false_status"]) == (
        "ok", "refused",
    )  # fmt: skip
    assert "StopIteration" in by_name["vit_b_16"]["reason"]
    assert by_name["vit_b_16"]["suggested_cut"] is None


@pytest.mark.golden
def test_cli_atlas_markdown_resnets(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    atlas_json: tuple[int, str, str, list[Any]],
) -> None:
    """The markdown table's rows (here the resnet family's), as a page would paste them."""
    from transferlens.inspector import _atlas

    monkeypatch.setattr(_atlas, "atlas_rows", lambda with_timm=False: atlas_json[3])
    code, out, _ = run(capsys, "atlas", "--format", "markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| family | model | default | pretrained=False |")
    resnets = [line for line in lines if line.startswith("| torchvision resnet |")]
    assert len(resnets) == 10  # resnet18 ... 152, 3 ResNeXts, 2 wide ResNets
    print("\n".join(lines[:2] + resnets))
    assert lines[-1].startswith("80 models: vision_learner(dls, arch) builds 67, fails on 13 (2 ")
    assert lines[-1].endswith("vision_learner(cut=...) honoured: no (fastai 2.8).")


def test_cli_atlas_without_timm(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)
    code, out, err = run(capsys, "atlas", "--timm")
    assert (code, out) == (1, "")
    assert "pip install timm" in err
