"""Tests for the reports: parameter_tree (_tree.py), trainable_report (_trainable.py),
module_diff (_diff.py), assert_same_outputs (_outputs.py). Printed reports are golden-tested
(tests/test_output/*.out)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision import models

from transferlens import (
    NORM_TYPES,
    DiffEntry,
    LensError,
    ModuleDiff,
    ParameterRow,
    ParameterTree,
    TrainableReport,
    TrainableRow,
    assert_same_outputs,
    module_diff,
    parameter_tree,
    trainable_report,
)

# ---------------------------------------------------------------------------------------------
# Models: a resnet18 cut and headed the way fastai does it, built here with plain torch so that
# these tests depend on the reports alone.


def fastai_like_resnet18(n_out: int = 37) -> tuple[nn.Module, nn.Sequential, nn.Sequential]:
    """(resnet18, body, Sequential(body, head)): fastai's cut at -2 plus a small head."""
    resnet = models.resnet18(weights=None)
    body = nn.Sequential(*list(resnet.children())[:-2])
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.BatchNorm1d(512),
        nn.Dropout(0.5),
        nn.Linear(512, n_out, bias=False),
    )
    return resnet, body, nn.Sequential(body, head)


def resnet_groups(model: nn.Sequential) -> list[list[nn.Parameter]]:
    """fastai's ``_resnet_split``: body[:6], body[6:], head."""
    body, head = model[0], model[1]
    return [list(body[:6].parameters()), list(body[6:].parameters()), list(head.parameters())]


def freeze_like_fastai(groups: list[list[nn.Parameter]], model: nn.Module, n: int) -> None:
    """``Learner.freeze_to(n)`` with ``train_bn=True``, written out."""
    norm = {id(p) for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters()}
    n = n if n >= 0 else len(groups) + n
    for index, group in enumerate(groups):
        for param in group:
            param.requires_grad_(index >= n or id(param) in norm)


@pytest.fixture
def frozen_model() -> tuple[nn.Sequential, list[list[nn.Parameter]]]:
    _, _, model = fastai_like_resnet18()
    groups = resnet_groups(model)
    freeze_like_fastai(groups, model, -1)
    return model, groups


class Tiny(nn.Module):
    """A module with its own parameter next to children (like a ViT's ``class_token``)."""

    def __init__(self) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 4))
        self.features = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
        self.add_module("<odd & name>", nn.Linear(3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, "<odd & name>")(self.features(x + self.token))


# ---------------------------------------------------------------------------------------------
# parameter_tree


@pytest.mark.golden
def test_parameter_tree_fastai_body(frozen_model: tuple[nn.Sequential, list]) -> None:
    """The seed's ``show_parameters(fastai_model[0])``, as a report."""
    model, _ = frozen_model
    print(parameter_tree(model[0]))


@pytest.mark.golden
def test_parameter_tree_own_parameters() -> None:
    tiny = Tiny()
    tiny.features[0].requires_grad_(False)
    tree = parameter_tree(tiny)
    print(tree)
    print(repr(tree) == str(tree))


@pytest.mark.golden
def test_parameter_tree_html() -> None:
    print(parameter_tree(Tiny())._repr_html_())


def test_parameter_tree_rows_match_named_parameters() -> None:
    tiny = Tiny()
    tiny.features[1].requires_grad_(False)
    for model in [tiny, models.resnet18(weights=None), nn.Linear(2, 2), nn.ReLU()]:
        tree = parameter_tree(model)
        assert isinstance(tree, ParameterTree)
        expected = [(n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()]
        assert [(r.full_name, r.shape, r.requires_grad) for r in tree] == expected
        assert len(tree) == len(expected)
        assert tree.n_trainable + tree.n_frozen == sum(p.numel() for p in model.parameters())


def test_parameter_tree_rows_name_their_module() -> None:
    rows = {row.full_name: row for row in parameter_tree(Tiny())}
    assert rows["token"].path == "" and rows["token"].module_type == "Tiny"
    assert rows["features.1.weight"].module_type == "LayerNorm"
    assert rows["<odd & name>.bias"].path == "<odd & name>"


def test_parameter_tree_html_escapes_and_is_deterministic() -> None:
    html_text = parameter_tree(Tiny())._repr_html_()
    assert "<odd" not in html_text and "&lt;odd &amp; name&gt;" in html_text
    assert html_text == parameter_tree(Tiny())._repr_html_()
    assert "0x" not in html_text and "<script" not in html_text
    assert html_text.count("<ul>") == html_text.count("</ul>")
    assert html_text.count("<li>") == html_text.count("</li>")


def test_parameter_tree_rejects_non_module() -> None:
    with pytest.raises(LensError, match=r"`model` must be a torch\.nn\.Module"):
        parameter_tree("resnet18")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# trainable_report


@pytest.mark.golden
def test_trainable_report_frozen(frozen_model: tuple[nn.Sequential, list]) -> None:
    model, groups = frozen_model
    print(trainable_report(model, groups, lrs=[1e-5, 1e-4, 1e-3]))


@pytest.mark.golden
def test_trainable_report_unfrozen(frozen_model: tuple[nn.Sequential, list]) -> None:
    model, groups = frozen_model
    freeze_like_fastai(groups, model, 0)
    print(trainable_report(model, groups, lrs=[1e-5, 1e-4, 1e-3]))


@pytest.mark.golden
def test_trainable_report_without_groups(frozen_model: tuple[nn.Sequential, list]) -> None:
    model, _ = frozen_model
    print(trainable_report(model))


@pytest.mark.golden
def test_trainable_report_html(frozen_model: tuple[nn.Sequential, list]) -> None:
    model, groups = frozen_model
    print(trainable_report(model, groups[:2])._repr_html_())


@pytest.mark.golden
def test_trainable_report_json(frozen_model: tuple[nn.Sequential, list]) -> None:
    model, groups = frozen_model
    print(json.dumps(trainable_report(model, groups, [1e-5, 1e-4, 1e-3]).to_dict(), indent=2))


def test_trainable_report_rows_add_up_to_totals(frozen_model: tuple[nn.Sequential, list]) -> None:
    model, groups = frozen_model
    report = trainable_report(model, groups, lrs=[1e-5, 1e-4, 1e-3])
    params = list(model.parameters())
    assert report.tensors == sum(row.tensors for row in report.rows) == len(params)
    assert report.elements == sum(row.elements for row in report.rows)
    assert report.elements == sum(p.numel() for p in params)
    assert report.trainable_elements == sum(p.numel() for p in params if p.requires_grad)
    assert report.frozen_tensors == sum(not p.requires_grad for p in params)
    assert report.trainable_tensors + report.frozen_tensors == report.tensors
    # ... and the totals line prints the same numbers.
    totals = str(report).splitlines()[-1]
    assert f"total: {report.tensors} tensors, {report.elements:,} elements" in totals
    assert f"frozen: {report.frozen_tensors} tensors, {report.frozen_elements:,}" in totals
    summary = report.to_dict()
    assert sum(group["tensors"] for group in summary["groups"]) == summary["totals"]["tensors"]
    assert sum(group["elements"] for group in summary["groups"]) == summary["totals"]["elements"]


def test_trainable_report_reasons(frozen_model: tuple[nn.Sequential, list]) -> None:
    model, groups = frozen_model
    report = trainable_report(model, groups, lrs=[1e-5, 1e-4, 1e-3])
    assert isinstance(report, TrainableReport)
    assert report.group_states == ["frozen", "frozen", "trainable"]
    assert report.lrs == [1e-5, 1e-4, 1e-3]
    by_reason = {(row.group, row.module_type): row.reason for row in report.rows}
    assert by_reason[(0, "Conv2d")] == "group frozen"
    assert by_reason[(1, "BatchNorm2d")] == "kept trainable by train_bn"
    assert by_reason[(2, "Linear")] == "group trainable"
    assert all(row.trainable == (row.reason != "group frozen") for row in report.rows)


def test_trainable_report_partly_frozen_and_ungrouped() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    model[0].requires_grad_(False)
    groups = [list(model[0].parameters()) + list(model[1].parameters())]  # model[2:] ungrouped
    report = trainable_report(model, groups)
    assert report.group_states == ["partly frozen"]
    reasons = [(row.group, row.module_type, row.reason, row.tensors) for row in report.rows]
    ungrouped = "requires_grad=True (in no parameter group)"
    assert reasons == [
        (0, "Linear", "requires_grad=False", 2),
        (0, "Linear", "requires_grad=True", 2),
        (None, "BatchNorm1d", ungrouped, 2),
        (None, "Linear", ungrouped, 2),
    ]
    assert report.tensors == 8


def test_trainable_report_counts_norm_only_group_by_its_own_state() -> None:
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1))
    model[0].requires_grad_(False)
    report = trainable_report(model, [list(model[0].parameters()), list(model[1].parameters())])
    assert report.group_states == ["frozen", "trainable"]
    assert report.rows[0].reason == "group frozen"


LAYERS = {
    "linear": lambda: nn.Linear(3, 3),
    "batchnorm": lambda: nn.BatchNorm1d(3),
    "layernorm": lambda: nn.LayerNorm(3),
    "relu": nn.ReLU,
}


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(sorted(LAYERS)), min_size=1, max_size=6),
    flags=st.lists(st.booleans(), min_size=12, max_size=12),
    cuts=st.lists(st.integers(0, 12), max_size=3),
    with_groups=st.booleans(),
)
def test_trainable_report_adds_up_for_any_model(
    kinds: list[str], flags: list[bool], cuts: list[int], with_groups: bool
) -> None:
    model = nn.Sequential(*(LAYERS[kind]() for kind in kinds))
    params = list(model.parameters())
    for param, flag in zip(params, flags, strict=False):
        param.requires_grad_(flag)
    # contiguous groups over a prefix of the parameters; the rest stays ungrouped
    bounds = sorted({min(cut, len(params)) for cut in cuts} | {0})
    groups = [params[start:stop] for start, stop in itertools.pairwise(bounds)]
    report = trainable_report(model, groups if with_groups else None)

    assert report.tensors == sum(row.tensors for row in report.rows) == len(params)
    assert report.elements == sum(row.elements for row in report.rows)
    assert report.elements == sum(p.numel() for p in params)
    tree = parameter_tree(model)
    assert report.trainable_elements == tree.n_trainable
    assert report.frozen_elements == tree.n_frozen
    for row in report.rows:
        if row.reason in ("group frozen", "requires_grad=False"):
            assert not row.trainable
        if row.reason in ("group trainable", "kept trainable by train_bn"):
            assert row.trainable
        if row.reason == "kept trainable by train_bn":
            assert row.module_type in ("BatchNorm1d", "LayerNorm")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"groups": [[nn.Parameter(torch.zeros(3))]]},
            r"`groups\[0\]\[0\]` \(shape \[3\]\) is not",
        ),
        ({"lrs": [1e-3]}, "`lrs` needs `groups`"),
        ({"groups": [[]], "lrs": [1e-3, 1e-2]}, "`lrs` has 2 learning rates for 1"),
    ],
)
def test_trainable_report_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(LensError, match=message):
        trainable_report(nn.Linear(2, 2), **kwargs)


def test_trainable_report_rejects_parameter_in_two_groups() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(LensError, match=r"`groups\[1\]\[0\]` is already in group 0"):
        trainable_report(model, [[model.weight], [model.weight, model.bias]])


def test_trainable_report_rejects_non_module() -> None:
    with pytest.raises(LensError, match=r"`model_or_learner` must be a torch\.nn\.Module"):
        trainable_report([nn.Linear(2, 2)])


# ---------------------------------------------------------------------------------------------
# trainable_report on a real fastai Learner


def tiny_learner(model: nn.Module, splitter: object) -> object:
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

    xs = torch.randn(8, 3, 32, 32)
    dataset = [(x, 0) for x in xs]
    dls = DataLoaders.from_dsets(dataset, dataset, bs=4, device="cpu")
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss(), splitter=splitter)


@pytest.mark.oracle
def test_trainable_report_on_fastai_learner() -> None:
    _, _, model = fastai_like_resnet18()
    learn = tiny_learner(model, resnet_groups)
    assert learn.opt is None
    report = trainable_report(learn)  # creates the optimizer, as Learner.freeze_to does
    assert learn.opt is not None
    assert report.group_states == ["trainable"] * 3  # fastai freezes in vision_learner, not here

    learn.freeze()
    learn.opt.set_hyper("lr", slice(1e-5, 1e-3))
    from_learner = trainable_report(learn)
    lrs = [hypers["lr"] for hypers in learn.opt.hypers]
    explicit = trainable_report(model, resnet_groups(model), lrs)
    assert from_learner.rows == explicit.rows
    assert str(from_learner) == str(explicit)
    assert from_learner.group_states == ["frozen", "frozen", "trainable"]
    assert from_learner.lrs == pytest.approx([1e-5, 1e-4, 1e-3])

    # and both say what fastai did: frozen groups keep only normalization layers trainable
    kept = {
        row.module_type for row in from_learner.rows if row.reason == "kept trainable by train_bn"
    }
    assert kept == {"BatchNorm2d"}


@pytest.mark.oracle
def test_trainable_report_learner_takes_no_groups() -> None:
    _, _, model = fastai_like_resnet18()
    learn = tiny_learner(model, resnet_groups)
    with pytest.raises(LensError, match="`groups` cannot be given with a fastai Learner"):
        trainable_report(learn, groups=resnet_groups(model))


# ---------------------------------------------------------------------------------------------
# module_diff


@pytest.mark.golden
def test_module_diff_body_by_structure() -> None:
    resnet, body, _ = fastai_like_resnet18()
    diff = module_diff(resnet, body)
    print(diff)
    assert diff.removed == ["avgpool", "fc"] and diff.added == [] and diff.changed == []


@pytest.mark.golden
def test_module_diff_model_by_structure() -> None:
    resnet, _, model = fastai_like_resnet18()
    print(module_diff(resnet, model))


@pytest.mark.golden
def test_module_diff_by_path() -> None:
    resnet, _, model = fastai_like_resnet18()
    print(module_diff(resnet, model, match="path"))


@pytest.mark.golden
def test_module_diff_changed_leaves_and_types() -> None:
    a = models.resnet18(weights=None)
    b = models.resnet18(weights=None, num_classes=10)
    b.layer1[0].relu = nn.GELU()
    b.layer2[0].downsample = nn.Identity()
    diff = module_diff(a, b, match="path")
    print(diff)
    assert diff.changed == ["layer1.0.relu", "layer2.0.downsample", "fc"]
    assert str(module_diff(a, b)) == str(diff).replace("'path'", "'structure'")
    assert [entry.after for entry in diff.entries][-1] == (
        "Linear(in_features=512, out_features=10, bias=True)"
    )


@pytest.mark.golden
def test_module_diff_html() -> None:
    a = models.resnet18(weights=None)
    b = nn.Sequential(*list(models.resnet18(weights=None).children())[:-1], nn.Linear(512, 3))
    b.add_module("<extra & more>", nn.Softmax(dim=1))
    html_text = module_diff(a, b)._repr_html_()
    print(html_text)
    assert "&lt;extra &amp; more&gt;" in html_text and "<extra" not in html_text


@pytest.mark.golden
def test_module_diff_no_difference() -> None:
    resnet = models.resnet18(weights=None)
    for match in ("structure", "path"):
        diff = module_diff(resnet, models.resnet18(weights=None), match=match)
        print(diff)
        assert not diff and isinstance(diff, ModuleDiff)


def test_module_diff_seed_flatten_insert() -> None:
    """The seed's ``Sequential`` of ResNet's children, with a ``Flatten`` before ``fc``."""
    resnet = models.resnet18(weights=None)
    children = list(resnet.children())
    children.insert(-1, nn.Flatten(1))
    diff = module_diff(resnet, nn.Sequential(*children))
    assert (diff.removed, diff.added, diff.changed) == ([], ["9"], [])


@pytest.mark.oracle
@pytest.mark.golden
def test_module_diff_fastai_models() -> None:
    """fastai's own models: the classifier goes, the body stays, one head comes."""
    from fastai.vision.learner import create_vision_model

    for arch in (models.resnet18, models.alexnet):
        torchvision_model = arch(weights=None)
        fastai_model = create_vision_model(arch, n_out=37, pretrained=False)
        body_diff = module_diff(torchvision_model, fastai_model[0])
        diff = module_diff(torchvision_model, fastai_model)
        print(diff)
        assert diff.removed == body_diff.removed
        assert (diff.added, diff.changed) == (["1"], [])
        assert (body_diff.added, body_diff.changed) == ([], [])
    assert diff.removed == ["avgpool", "classifier"]


def test_module_diff_is_deterministic() -> None:
    texts = {str(module_diff(fastai_like_resnet18()[0], fastai_like_resnet18()[2])) for _ in "ab"}
    assert len(texts) == 1


def test_module_diff_bad_arguments() -> None:
    with pytest.raises(LensError, match=r"`b` must be a torch\.nn\.Module"):
        module_diff(nn.ReLU(), None)  # type: ignore[arg-type]
    with pytest.raises(LensError, match="`match` must be 'structure' or 'path'"):
        module_diff(nn.ReLU(), nn.ReLU(), match="name")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# assert_same_outputs


class AddAt(nn.Module):
    """Adds ``amount`` at one position: a model that differs from ``Identity`` in one place."""

    def __init__(self, index: tuple[int, ...], amount: float) -> None:
        super().__init__()
        self.index, self.amount = index, amount

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[self.index] += self.amount
        return out


class Pair(nn.Module):
    def __init__(self, second: nn.Module) -> None:
        super().__init__()
        self.second = second

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * 2, self.second(x)


def test_assert_same_outputs_seed_sequential() -> None:
    """The seed's check: ResNet equals a ``Sequential`` of its children plus ``Flatten``."""
    resnet = models.resnet18(weights=None)
    children = list(resnet.children())
    children.insert(-1, nn.Flatten(1))
    assert_same_outputs(resnet, nn.Sequential(*children), torch.randn(2, 3, 32, 32))


def test_assert_same_outputs_restores_training_flags() -> None:
    resnet, body, _ = fastai_like_resnet18()
    resnet.train()
    body[1].eval()  # a submodule in another mode than its parent stays so
    before = [m.training for m in resnet.modules()]
    children = list(resnet.children())
    sequential = nn.Sequential(*children[:-1], nn.Flatten(1), children[-1])
    assert_same_outputs(resnet, sequential, torch.randn(2, 3, 32, 32))
    assert [m.training for m in resnet.modules()] == before
    assert body[1].training is False and resnet.training is True


def test_assert_same_outputs_runs_in_eval_mode() -> None:
    # In training mode dropout would make the two runs differ.
    assert_same_outputs(nn.Dropout(0.5), nn.Identity(), torch.ones(4, 8))


@pytest.mark.golden
def test_assert_same_outputs_value_message() -> None:
    x = torch.arange(12.0).reshape(2, 6)
    with pytest.raises(AssertionError) as error:
        assert_same_outputs(nn.Identity(), AddAt((1, 2), 0.25), x)
    assert not isinstance(error.value, LensError)
    print(error.value)


@pytest.mark.golden
def test_assert_same_outputs_shape_message() -> None:
    with pytest.raises(AssertionError) as error:
        assert_same_outputs(nn.Identity(), nn.Flatten(), torch.zeros(2, 3, 4))
    print(error.value)


@pytest.mark.golden
def test_assert_same_outputs_tuple_message() -> None:
    x = torch.arange(6.0).reshape(2, 3)
    assert_same_outputs(Pair(nn.Identity()), Pair(nn.Identity()), x)
    with pytest.raises(AssertionError) as error:
        assert_same_outputs(Pair(nn.Identity()), Pair(AddAt((0, 1), -1.5)), x)
    print(error.value)


def test_assert_same_outputs_tuple_input() -> None:
    class Add(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x + y

    assert_same_outputs(Add(), Add(), (torch.ones(2), torch.ones(2)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((nn.Identity(), nn.Identity(), [1.0]), "`x` must be a tensor or a tuple of tensors"),
        ((nn.Identity(), nn.Identity(), ()), "`x` must be a tensor or a tuple of tensors"),
        ((lambda x: x, nn.Identity(), torch.ones(1)), r"`a` must be a torch\.nn\.Module"),
    ],
)
def test_assert_same_outputs_bad_arguments(args: tuple, message: str) -> None:
    with pytest.raises(LensError, match=message):
        assert_same_outputs(*args)


class Text(nn.Module):
    def forward(self, x: torch.Tensor) -> str:
        return "not a tensor"


def test_assert_same_outputs_non_tensor_output_is_a_bad_input() -> None:
    with pytest.raises(LensError, match="output of a is a str"):
        assert_same_outputs(Text(), nn.Identity(), torch.ones(1))


def test_assert_same_outputs_raises_assertion_error_like_torch_testing() -> None:
    """A difference is a failed check (AssertionError, as torch.testing.assert_close raises),
    not a bad input: pytest reports it as a test failure and ``except LensError`` misses it."""
    x = torch.arange(6.0).reshape(2, 3)
    with pytest.raises(AssertionError) as torch_error:
        torch.testing.assert_close(x, AddAt((0, 1), 0.5)(x), rtol=0, atol=0)
    with pytest.raises(type(torch_error.value)) as ours:
        assert_same_outputs(nn.Identity(), AddAt((0, 1), 0.5), x)
    assert "first at index (0, 1)" in str(ours.value)
    with pytest.raises(AssertionError, match="a gives 1 output tensors and b gives 2"):
        assert_same_outputs(nn.Identity(), Pair(nn.Identity()), torch.ones(1))
    assert not issubclass(AssertionError, LensError) and not isinstance(ours.value, LensError)


def test_row_types_are_exported() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert all(isinstance(row, ParameterRow) for row in parameter_tree(model))
    assert all(isinstance(row, TrainableRow) for row in trainable_report(model).rows)
    diff = module_diff(model, nn.Sequential(model[0], nn.GELU(), model[2]))
    assert [type(entry) for entry in diff.entries] == [DiffEntry]


def test_report_and_cli_import_neither_fastai_nor_torchvision() -> None:
    code = (
        "import sys, transferlens, transferlens.inspector.cli; "
        "transferlens.parameter_tree, transferlens.trainable_report, transferlens.module_diff, "
        "transferlens.assert_same_outputs; "
        "print(sorted(m for m in ('fastai', 'torchvision') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
