"""``transferlens.fine_tune`` against fastai's ``Learner.fine_tune``: the same trained bits.

Each oracle case builds a fastai ``vision_learner`` (random weights, ``ps=0`` so dropout changes
nothing), deep-copies its model before training, records every training batch fastai draws, then
replays those batches through ``transferlens.fine_tune`` on the copy. Every parameter and every
buffer (BatchNorm running statistics and batch counts) must be ``torch.equal`` afterwards.
The images are tiny (32 px) and few (2 batches of 4 per epoch), and one torch thread computes
everything, so the whole file runs in seconds.

One more oracle turns dropout on and passes a validation loader: the weights are still fastai's,
bit for bit, and so is fastai's per-epoch table (smoothed training loss, validation loss, error
rate), which `fine_tune` returns in its `FineTuneLog`.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Iterator
from typing import Any

import fastai.callback.schedule  # noqa: F401  (adds Learner.fine_tune)
import pytest
import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import error_rate
from fastai.vision.learner import vision_learner
from torch import nn
from torchvision import models

from transferlens import (
    Adam,
    BatchRecord,
    EpochRecord,
    FineTuneLog,
    LensError,
    OneCycleScheduler,
    fine_tune,
    fine_tune_plan,
    freeze_to,
    optimizer_param_groups,
    param_groups,
)

N_OUT, SIZE, BATCH, STEPS = 5, 32, 4, 2


class RecordTrainingBatches(Callback):
    """Keep a plain-tensor copy of every batch fastai trains on (not the validation ones)."""

    order = 0

    def __init__(self) -> None:
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def before_batch(self) -> None:
        if self.training:
            inputs, targets = (t.as_subclass(torch.Tensor).clone() for t in (*self.xb, *self.yb))
            self.batches.append((inputs, targets))


class Replay:
    """Replays recorded batches: the k-th iteration gives the k-th epoch's batches."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]], per_epoch: int) -> None:
        self.batches, self.per_epoch, self.epochs_given = batches, per_epoch, 0

    def __len__(self) -> int:
        return self.per_epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = self.epochs_given * self.per_epoch
        self.epochs_given += 1
        return iter(self.batches[start : start + self.per_epoch])


def tiny_learner(arch: Any, train_bn: bool) -> Learner:
    torch.manual_seed(0)
    images = torch.randn(STEPS * BATCH, 3, SIZE, SIZE)
    labels = torch.randint(0, N_OUT, (STEPS * BATCH,))
    data = list(zip(images, labels, strict=True))
    dls = DataLoaders.from_dsets(data, data[:BATCH], bs=BATCH, device="cpu", num_workers=0)
    learn = vision_learner(
        dls,
        arch,
        pretrained=False,
        n_out=N_OUT,
        ps=0.0,
        train_bn=train_bn,
        loss_func=CrossEntropyLossFlat(),
    )
    assert len(learn.dls.train) == STEPS
    return learn


ARCHS = {"resnet18": models.resnet18, "mobilenet_v3_small": models.mobilenet_v3_small}

#: (arch, epochs, freeze_epochs, wd, train_bn): every value of each setting on both
#: architectures; ``wd=None`` is fastai's default (Adam's 0.01, not passed).
CASES = [
    (arch, epochs, freeze_epochs, wd, train_bn)
    for arch in ARCHS
    for epochs, freeze_epochs, wd, train_bn in [
        (1, 1, None, True),
        (1, 2, 0.0, False),
        (2, 1, 0.0, True),
        (2, 2, 0.01, False),
    ]
] + [("mobilenet_v3_small", 1, 0, None, True)]  # no frozen phase: fastai fits 0 epochs


@functools.cache
def fastai_run(
    arch: str, epochs: int, freeze_epochs: int, wd: float | None, train_bn: bool
) -> tuple[nn.Module, dict[str, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]], Learner]:
    """Train with fastai; return the starting model, fastai's final state and its batches."""
    learn = tiny_learner(ARCHS[arch], train_bn)
    start = copy.deepcopy(learn.model)
    recorder = RecordTrainingBatches()
    extra = {} if wd is None else {"wd": wd}
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(epochs, freeze_epochs=freeze_epochs, cbs=[recorder], **extra)
    assert len(recorder.batches) == STEPS * (epochs + freeze_epochs)
    return start, learn.model.state_dict(), recorder.batches, learn


@pytest.mark.oracle
@pytest.mark.parametrize(("arch", "epochs", "freeze_epochs", "wd", "train_bn"), CASES)
def test_fine_tune_equals_fastai_bit_for_bit(
    arch: str, epochs: int, freeze_epochs: int, wd: float | None, train_bn: bool
) -> None:
    start, expected, batches, learn = fastai_run(arch, epochs, freeze_epochs, wd, train_bn)
    model = copy.deepcopy(start)
    groups = param_groups(model, arch)
    assert [len(g) for g in groups] == [len(g) for g in learn.opt.param_lists]
    log = fine_tune(
        model,
        groups,
        Replay(batches, STEPS),
        epochs,
        freeze_epochs=freeze_epochs,
        wd=0.01 if wd is None else wd,
        train_bn=train_bn,
    )
    records = log.batches
    actual = model.state_dict()
    assert list(actual) == list(expected)
    unequal = [key for key in expected if not torch.equal(actual[key], expected[key])]
    assert unequal == []
    # Not trivially equal: training moved every parameter and every BatchNorm statistic.
    initial = start.state_dict()
    moved = [key for key in expected if not torch.equal(initial[key], expected[key])]
    assert len(moved) == len(expected)
    assert learn.opt.frozen_idx == 0 and all(p.requires_grad for p in model.parameters())
    assert len(records) == len(batches)
    assert [r.phase for r in records] == ["frozen"] * STEPS * freeze_epochs + [
        "unfrozen"
    ] * STEPS * epochs
    # Both end in eval mode: fastai's last event is validation (TrainEvalCallback).
    assert not any(m.training for m in learn.model.modules())
    assert not any(m.training for m in model.modules())


@pytest.mark.oracle
def test_fine_tune_records_fastai_schedule_and_losses() -> None:
    """The records hold the lr and momentum fastai used per group, and fastai's losses."""
    learn = tiny_learner(models.resnet18, train_bn=True)
    model = copy.deepcopy(learn.model)
    recorder = RecordTrainingBatches()

    class RecordLosses(Callback):
        order = 90
        losses: list[float] = []  # noqa: RUF012

        def after_loss(self) -> None:
            if self.training:
                self.losses.append(self.loss.item())

    losses = RecordLosses()
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(1, cbs=[recorder, losses])
    log = fine_tune(model, param_groups(model, "resnet18"), Replay(recorder.batches, STEPS), 1)
    records = log.batches
    plan = fine_tune_plan(1, STEPS, n_groups=3)
    assert [r.lr for r in records] == [tuple(row) for row in plan.lr.tolist()]
    assert [r.mom for r in records] == [(m, m, m) for m in plan.mom.tolist()]
    assert [r.loss for r in records] == losses.losses
    assert all(isinstance(r, BatchRecord) for r in records)


#: Validation items: batches of 4 and 2, so that the batch-size weighting of fastai's AvgLoss and
#: AvgMetric shows.
VALID = 6


def learner_with_dropout() -> Learner:
    """A learner whose head draws dropout masks (``ps=0.5``) and that validates every epoch.

    Built twice, it is built the same: its DataLoaders take their shuffling seeds from Python's
    ``random`` (seeded here), its weights from torch's."""
    state = random.getstate()
    random.seed(0)
    torch.manual_seed(0)
    images = torch.randn(STEPS * BATCH + VALID, 3, SIZE, SIZE)
    labels = torch.randint(0, N_OUT, (STEPS * BATCH + VALID,))
    data = list(zip(images, labels, strict=True))
    train, valid = data[: STEPS * BATCH], data[STEPS * BATCH :]
    dls = DataLoaders.from_dsets(train, valid, bs=BATCH, device="cpu", num_workers=0)
    random.setstate(state)
    return vision_learner(
        dls,
        models.resnet18,
        pretrained=False,
        n_out=N_OUT,
        ps=0.5,
        loss_func=CrossEntropyLossFlat(),
        metrics=error_rate,
    )


class KeepEpochRows(Callback):
    """fastai's per-epoch table, both phases (``recorder.values`` keeps only the last fit's)."""

    order = 60  # after the Recorder (50) has written final_record

    def __init__(self) -> None:
        self.rows: list[list[float]] = []

    def after_epoch(self) -> None:
        self.rows.append(list(self.learn.final_record))


@pytest.mark.oracle
def test_fine_tune_with_validation_equals_fastai_and_its_table() -> None:
    """With dropout on and a validation loader, the trained bits and fastai's per-epoch table
    (smoothed train_loss, valid_loss, error_rate) are fastai's, both phases.

    Both loops get their own copy of the same DataLoaders (fastai's, built twice the same way)
    and the same torch seed. Iterating a fastai (or torch) DataLoader draws from torch's global
    generator, and so do the dropout masks: the weights are equal only if validation runs where
    fastai's does, in eval mode, drawing nothing else."""
    learn = learner_with_dropout()
    start = copy.deepcopy(learn.model)
    rows = KeepEpochRows()
    torch.manual_seed(1)
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(2, cbs=[rows])
    assert len(rows.rows) == 3

    same = learner_with_dropout().dls  # the same loaders, in the same state
    model = copy.deepcopy(start)
    torch.manual_seed(1)
    log = fine_tune(
        model,
        param_groups(model, "resnet18"),
        same.train,
        2,
        valid_loader=same.valid,
        loss_func=CrossEntropyLossFlat(),
    )
    actual, expected = model.state_dict(), learn.model.state_dict()
    assert [key for key in expected if not torch.equal(actual[key], expected[key])] == []
    assert isinstance(log, FineTuneLog) and all(isinstance(e, EpochRecord) for e in log.epochs)
    table = [[e.train_loss, e.valid_loss, e.error_rate] for e in log.epochs]
    assert table == rows.rows  # exactly: the same float32 arithmetic as fastai's Recorder
    assert table[1:] == learn.recorder.values  # the unfrozen fit, as fastai keeps it
    assert [(e.phase, e.epoch) for e in log.epochs] == [
        ("frozen", 0),
        ("unfrozen", 0),
        ("unfrozen", 1),
    ]
    assert not any(m.training for m in learn.model.modules())
    assert not any(m.training for m in model.modules())


@pytest.mark.oracle
def test_without_clearing_the_state_the_weights_differ() -> None:
    """The state reset matters: a loop that keeps Adam's moments ends elsewhere."""
    start, expected, batches, _ = fastai_run("resnet18", 1, 1, None, True)
    model = copy.deepcopy(start)
    groups = param_groups(model, "resnet18")
    optimizer = Adam(optimizer_param_groups(model, groups), betas=(0.95, 0.99))
    replay = Replay(batches, STEPS)
    for phase in fine_tune_plan(1, STEPS, n_groups=3).phases:
        freeze_to(model, groups, phase.frozen_idx)  # no optimizer: its state carries over
        scheduler = OneCycleScheduler(optimizer, phase.schedule)
        model.train()
        for inputs, targets in replay:
            nn.functional.cross_entropy(model(inputs), targets).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
            scheduler.step()
    actual = model.state_dict()
    assert not all(torch.equal(actual[key], expected[key]) for key in expected)


# ---------------------------------------------------------------------------------------------
# Bad arguments: a LensError naming the argument


def _small() -> tuple[nn.Module, list[list[nn.Parameter]], list[Any]]:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    groups = [list(model[:2].parameters()), list(model[2].parameters())]
    batches = [(torch.randn(4, 4), torch.tensor([0, 1, 2, 0]))]
    return model, groups, batches


def _refused(argument: str, **overrides: Any) -> None:
    model, groups, batches = _small()
    arguments: dict[str, Any] = {
        "model": model, "groups": groups, "train_loader": batches, "epochs": 1, **overrides
    }
    with pytest.raises(LensError) as info:
        fine_tune(**arguments)
    assert f"`{argument}" in str(info.value)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("model", "resnet18"),
        ("groups", []),
        ("train_loader", iter([])),
        ("train_loader", []),
        ("train_loader", (b for b in [])),
        ("train_loader", [torch.zeros(4, 4)]),
        ("epochs", 0),
        ("freeze_epochs", -1),
        ("base_lr", 0.0),
        ("lr_mult", 0.5),
        ("pct_start", 1.5),
        ("div", -1.0),
        ("wd", -0.1),
        ("moms", (0.9, 0.8)),
        ("train_bn", "yes"),
        ("loss_func", "cross_entropy"),
        ("device", "not-a-device"),
    ],
)
def test_fine_tune_refuses(argument: str, value: Any) -> None:
    _refused(argument, **{argument: value})


def test_fine_tune_refuses_groups_from_another_model() -> None:
    _, other_groups, _ = _small()
    _refused("groups", groups=other_groups)


def test_fine_tune_refuses_a_loader_whose_len_lies() -> None:
    class Lying(list):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 2

    _, _, batches = _small()
    _refused("train_loader", train_loader=Lying(batches))


def test_fine_tune_plan_must_fit_the_groups() -> None:
    """A plan for fastai's default three groups is refused by a two-group optimizer."""
    model, groups, _ = _small()
    optimizer = torch.optim.AdamW(optimizer_param_groups(model, groups))
    plan = fine_tune_plan(1, 4)  # n_groups defaults to 3, right for resnets only
    with pytest.raises(LensError, match=r"n_groups=2"):
        OneCycleScheduler(optimizer, plan.phases[0].schedule)


def test_fine_tune_trains_a_two_group_model_and_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model, groups, _ = _small()
    inputs = torch.randn(32, 4)
    targets = (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long()
    batches = [(inputs[i : i + 8], targets[i : i + 8]) for i in range(0, 32, 8)]
    records = fine_tune(model, groups, batches, epochs=8, base_lr=1e-1).batches
    assert len(records) == 4 * 9
    first, last = records[:4], records[-4:]
    assert sum(r.loss for r in last) < sum(r.loss for r in first)
    assert all(p.requires_grad for p in model.parameters())


def test_cheat_sheet_recipe_cell_needs_only_torch_and_torchvision() -> None:
    """The cheat sheet's recipe cell is for copying: it imports no fastai, no transferlens."""
    import ast
    import json
    from pathlib import Path

    notebook = json.loads((Path(__file__).parents[1] / "docs/cheat-sheet.ipynb").read_text())
    cells = notebook["cells"]
    heading = next(
        i for i, c in enumerate(cells) if "## The whole recipe, to copy" in "".join(c["source"])
    )
    recipe = "".join(cells[heading + 1]["source"])
    imported = set()
    for node in ast.walk(ast.parse(recipe)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported == {"torch", "torchvision"}
    assert "OneCycleLR" in recipe and "AdamW" in recipe and "state.clear()" in recipe
