"""transferlens._schedule against fastai itself.

The oracle tests train a tiny model with a real fastai ``Learner`` (``fit_one_cycle`` and
``fine_tune``), record the learning rate of every group and the momentum that fastai's
``ParamScheduler`` set before every training batch, and compare them with the plans computed
by transferlens, to 1e-9 relative.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from fastai.callback.schedule import combined_cos
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import SGD as FastaiSGD
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transferlens import (
    FineTunePlan,
    LensError,
    OneCycle,
    OneCycleScheduler,
    discriminative_lrs,
    fine_tune_plan,
    one_cycle,
)
from transferlens.tutorial import ScheduleRecording, record_schedule

RTOL = 1e-9


# ---------------------------------------------------------------------------------------------
# A tiny fastai Learner that records the hyper-parameters of every training batch


def tiny_learner(n_groups: int, steps_per_epoch: int, batch_size: int = 2) -> Learner:
    """One Linear layer per parameter group, and exactly ``steps_per_epoch`` training batches."""
    torch.manual_seed(0)
    layers = [nn.Linear(3, 3) for _ in range(n_groups - 1)] + [nn.Linear(3, 1)]
    model = nn.Sequential(*layers)
    inputs = torch.randn(steps_per_epoch * batch_size, 3)
    targets = torch.randn(steps_per_epoch * batch_size, 1)
    train = list(zip(inputs, targets, strict=True))
    dls = DataLoaders.from_dsets(train, train[:batch_size], bs=batch_size, device="cpu")
    learn = Learner(
        dls,
        model,
        loss_func=nn.MSELoss(),
        splitter=lambda m: [list(layer.parameters()) for layer in m],
    )
    assert len(learn.dls.train) == steps_per_epoch
    return learn


def run_fastai(learn: Learner, method: str, *args: Any, **kwargs: Any) -> ScheduleRecording:
    """Train with fastai and return what its optimizer used before each training batch."""
    with learn.no_bar(), learn.no_logging(), record_schedule(learn) as recorded:
        getattr(learn, method)(*args, **kwargs)
    moms = {float(h["mom"]) for h in learn.opt.hypers}
    assert len(moms) == 1, "fastai sets one momentum for all groups"
    return recorded


def assert_matches(actual: torch.Tensor, recorded: list[Any]) -> None:
    expected = torch.tensor(recorded, dtype=torch.float64)
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=0)


# ---------------------------------------------------------------------------------------------
# discriminative_lrs vs fastai's Optimizer.set_hyper

DISCRIMINATIVE_CASES = [
    pytest.param(1e-3, 1, id="float-1group"),
    pytest.param(1e-3, 3, id="float-3groups"),
    pytest.param(7, 2, id="int-2groups"),
    pytest.param(slice(1e-3), 1, id="slice_stop-1group"),
    pytest.param(slice(1e-3), 2, id="slice_stop-2groups"),
    pytest.param(slice(3e-3), 4, id="slice_stop-4groups"),
    pytest.param(slice(1e-5, 1e-3), 1, id="slice_start_stop-1group"),
    pytest.param(slice(1e-5, 1e-3), 2, id="slice_start_stop-2groups"),
    pytest.param(slice(1e-5, 1e-3), 3, id="slice_start_stop-3groups"),
    pytest.param(slice(1e-6, 1e-2), 5, id="slice_start_stop-5groups"),
    pytest.param(slice(1e-4, 1e-4), 3, id="slice_equal-3groups"),
    pytest.param([1e-4, 2e-4, 3e-3], 3, id="list-3groups"),
    pytest.param((5e-4,), 3, id="tuple_of_one-3groups"),
]


@pytest.mark.oracle
@pytest.mark.parametrize(("lr", "n_groups"), DISCRIMINATIVE_CASES)
def test_discriminative_lrs_matches_set_hyper(lr: Any, n_groups: int) -> None:
    params = [[nn.Parameter(torch.zeros(1))] for _ in range(n_groups)]
    opt = FastaiSGD(params, lr=0.1)
    opt.set_hyper("lr", lr)
    fastai_lrs = [float(h["lr"]) for h in opt.hypers]
    # Same arithmetic as fastai and fastcore's even_mults, so equal to the last bit.
    assert discriminative_lrs(lr, n_groups) == fastai_lrs


def test_discriminative_lrs_returns_python_floats() -> None:
    rates = discriminative_lrs(slice(1e-5, 1e-3), 3)
    assert all(type(rate) is float for rate in rates)
    assert rates[-1] == pytest.approx(1e-3, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# one_cycle vs Learner.fit_one_cycle

ONE_CYCLE_CASES = [
    # epochs, steps_per_epoch, n_groups, lr_max, fit_one_cycle keyword arguments
    pytest.param(1, 4, 1, 1e-3, {}, id="float-1x4"),
    pytest.param(2, 3, 1, 1e-2, {}, id="float-2x3"),
    pytest.param(3, 5, 2, 1e-3, {}, id="float-3x5-2groups"),
    pytest.param(1, 1, 1, 1e-3, {}, id="single-step"),
    pytest.param(5, 1, 2, 1e-3, {}, id="one-batch-per-epoch"),
    pytest.param(1, 7, 2, slice(1e-3), {}, id="slice_stop-1x7"),
    pytest.param(2, 4, 3, slice(1e-3), {}, id="slice_stop-2x4-3groups"),
    pytest.param(2, 4, 3, slice(1e-5, 1e-3), {}, id="slice_start_stop-2x4"),
    pytest.param(3, 3, 4, slice(1e-6, 1e-2), {}, id="slice_start_stop-3x3-4groups"),
    pytest.param(2, 5, 2, slice(1e-4, 1e-4), {}, id="slice_equal"),
    pytest.param(1, 6, 3, [1e-4, 2e-4, 3e-3], {}, id="list"),
    pytest.param(2, 3, 2, (1e-3,), {}, id="tuple_of_one"),
    pytest.param(2, 4, 2, 1e-3, {"pct_start": 0.3}, id="pct_start=0.3"),
    pytest.param(1, 10, 1, 1e-3, {"pct_start": 0.99}, id="pct_start=0.99"),
    pytest.param(2, 5, 1, 1e-3, {"pct_start": 1.0}, id="pct_start=1"),
    pytest.param(3, 4, 2, 1e-3, {"pct_start": 0.1}, id="pct_start=0.1"),
    pytest.param(3, 7, 1, 3e-4, {"pct_start": 0.45}, id="pct_start=0.45-3x7"),
    pytest.param(2, 4, 1, 1e-3, {"div": 5.0}, id="div=5"),
    pytest.param(2, 4, 2, slice(1e-3), {"div": 3.7, "div_final": 1e3}, id="div=3.7-div_final"),
    pytest.param(2, 3, 1, 1e-3, {"moms": (0.9, 0.8, 0.9)}, id="moms"),
    pytest.param(
        4, 3, 3, slice(1e-5, 1e-3), {"pct_start": 0.5, "div": 10.0}, id="slice-pct0.5-div10"
    ),
    pytest.param(
        1,
        13,
        3,
        slice(2e-3),
        {"pct_start": 0.7, "div": 2.0, "div_final": 50.0, "moms": (0.9, 0.7, 0.8)},
        id="everything",
    ),
]


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("epochs", "steps_per_epoch", "n_groups", "lr_max", "kwargs"), ONE_CYCLE_CASES
)
def test_one_cycle_matches_fit_one_cycle(
    epochs: int, steps_per_epoch: int, n_groups: int, lr_max: Any, kwargs: dict[str, Any]
) -> None:
    learn = tiny_learner(n_groups, steps_per_epoch)
    recorded = run_fastai(learn, "fit_one_cycle", epochs, lr_max, **kwargs)

    plan = one_cycle(
        epochs * steps_per_epoch,
        lr_max,
        n_groups=n_groups,
        steps_per_epoch=steps_per_epoch,
        **kwargs,
    )
    assert plan.lr.dtype == plan.mom.dtype == torch.float64
    assert plan.lr.shape == (epochs * steps_per_epoch, n_groups)
    assert plan.mom.shape == (epochs * steps_per_epoch,)
    assert_matches(plan.lr, recorded.lrs)
    assert_matches(plan.mom, recorded.moms)


@pytest.mark.oracle
@settings(max_examples=40, deadline=None)
@given(
    epochs=st.integers(1, 5),
    steps_per_epoch=st.integers(1, 30),
    n_groups=st.integers(1, 4),
    peak=st.floats(1e-6, 1.0),
    pct_start=st.floats(0.01, 1.0),
    div=st.floats(1.5, 100.0),
)
def test_one_cycle_matches_combined_cos(
    epochs: int, steps_per_epoch: int, n_groups: int, peak: float, pct_start: float, div: float
) -> None:
    """Cheaper and wider than a Learner: fastai's combined_cos at fastai's batch positions."""
    plan = one_cycle(
        epochs * steps_per_epoch,
        slice(peak),
        n_groups=n_groups,
        pct_start=pct_start,
        div=div,
        steps_per_epoch=steps_per_epoch,
    )
    lr_max = torch.tensor(discriminative_lrs(slice(peak), n_groups), dtype=torch.float64).numpy()
    lr_sched = combined_cos(pct_start, lr_max / div, lr_max, lr_max / 1e5)
    mom_sched = combined_cos(pct_start, 0.95, 0.85, 0.95)
    lrs, moms = [], []
    for epoch in range(epochs):  # TrainEvalCallback's pct_train
        pct = epoch / epochs
        for _ in range(steps_per_epoch):
            lrs.append(list(lr_sched(pct)))
            moms.append(mom_sched(pct))
            pct += 1.0 / (steps_per_epoch * epochs)
    assert_matches(plan.lr, lrs)
    assert_matches(plan.mom, moms)


def test_one_cycle_shape_of_the_cycle() -> None:
    plan = one_cycle(100, 1e-2, pct_start=0.25)
    lr = plan.lr[:, 0]
    assert lr[0].item() == pytest.approx(1e-2 / 25, rel=1e-12)
    assert lr.max().item() == pytest.approx(1e-2, rel=1e-12)
    assert int(lr.argmax()) == 25
    assert bool((lr[1:26] > lr[:25]).all()) and bool((lr[26:] < lr[25:-1]).all())
    assert plan.mom[25].item() == pytest.approx(0.85)
    assert plan.n_steps == 100 and plan.n_groups == 1
    assert isinstance(plan, OneCycle) and "n_steps=100" in repr(plan)


def test_one_cycle_is_frozen() -> None:
    plan = one_cycle(4, 1e-3)
    with pytest.raises(AttributeError):
        plan.div = 3.0  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# fine_tune_plan vs Learner.fine_tune

FINE_TUNE_CASES = [
    # epochs, steps_per_epoch, n_groups, fine_tune keyword arguments
    pytest.param(1, 4, 3, {}, id="defaults"),
    pytest.param(2, 3, 2, {"base_lr": 1e-2}, id="base_lr-2groups"),
    pytest.param(
        3,
        5,
        3,
        {"freeze_epochs": 2, "lr_mult": 10, "pct_start": 0.25, "div": 25.0},
        id="freeze_epochs=2-lr_mult=10",
    ),
    pytest.param(
        2, 4, 4, {"base_lr": 5e-4, "lr_mult": 1000, "div": 2.0}, id="4groups-lr_mult=1000"
    ),
    pytest.param(1, 3, 1, {}, id="one-group"),
    pytest.param(2, 3, 2, {"freeze_epochs": 0}, id="freeze_epochs=0"),
    pytest.param(1, 4, 2, {"moms": (0.9, 0.8, 0.9), "div_final": 1e3}, id="moms-div_final-kwargs"),
]


@pytest.mark.oracle
@pytest.mark.parametrize(("epochs", "steps_per_epoch", "n_groups", "kwargs"), FINE_TUNE_CASES)
def test_fine_tune_plan_matches_fine_tune(
    epochs: int, steps_per_epoch: int, n_groups: int, kwargs: dict[str, Any]
) -> None:
    learn = tiny_learner(n_groups, steps_per_epoch)
    recorded = run_fastai(learn, "fine_tune", epochs, **kwargs)

    plan = fine_tune_plan(epochs, steps_per_epoch, n_groups=n_groups, **kwargs)
    assert isinstance(plan, FineTunePlan)
    freeze_epochs = kwargs.get("freeze_epochs", 1)
    assert [phase.epochs for phase in plan.phases] == [e for e in (freeze_epochs, epochs) if e]
    assert plan.n_steps == len(recorded.lrs) == (freeze_epochs + epochs) * steps_per_epoch
    assert_matches(plan.lr, recorded.lrs)
    assert_matches(plan.mom, recorded.moms)

    frozen_idx = [phase.frozen_idx for phase in plan.phases for _ in range(phase.lr.shape[0])]
    assert frozen_idx == recorded.frozen_idx
    start = 0
    for phase in plan.phases:  # each phase on its own, too
        stop = start + phase.lr.shape[0]
        assert_matches(phase.lr, recorded.lrs[start:stop])
        assert_matches(phase.mom, recorded.moms[start:stop])
        start = stop


def test_fine_tune_plan_phases() -> None:
    plan = fine_tune_plan(2, 10, base_lr=2e-3, n_groups=3)
    frozen, unfrozen = plan.phases
    assert (frozen.name, frozen.frozen_idx, frozen.epochs) == ("frozen", 2, 1)
    assert (unfrozen.name, unfrozen.frozen_idx, unfrozen.epochs) == ("unfrozen", 0, 2)
    assert frozen.schedule.pct_start == 0.99 and frozen.schedule.div == 25.0
    assert unfrozen.schedule.pct_start == 0.3 and unfrozen.schedule.div == 5.0
    assert frozen.schedule.lr_max == pytest.approx((2e-4, 2e-4, 2e-3), rel=1e-12)
    assert unfrozen.schedule.lr_max == pytest.approx((1e-5, 1e-4, 1e-3), rel=1e-12)
    assert plan.lr.shape == (30, 3) and plan.mom.shape == (30,)


# ---------------------------------------------------------------------------------------------
# OneCycleScheduler: a plain torch optimizer trains with the plan's values


def _groups(n_groups: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    return [{"params": [nn.Parameter(torch.randn(2))]} for _ in range(n_groups)]


def _momentum_of(group: dict[str, Any]) -> float:
    return float(group["betas"][0]) if "betas" in group else float(group["momentum"])


def _train_and_record(
    optimizer: torch.optim.Optimizer, scheduler: OneCycleScheduler, n_steps: int
) -> tuple[list[list[float]], list[float]]:
    """Run ``n_steps`` batches; record the lr and momentum each ``optimizer.step()`` used."""
    used_lrs: list[list[float]] = []
    used_moms: list[float] = []

    def record(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        used_lrs.append([float(group["lr"]) for group in opt.param_groups])
        moms = {_momentum_of(group) for group in opt.param_groups}
        assert len(moms) == 1
        used_moms.append(moms.pop())

    optimizer.register_step_pre_hook(record)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for _ in range(n_steps):
        loss = sum((p**2).sum() for p in params)
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    return used_lrs, used_moms


OPTIMIZERS = [
    pytest.param(torch.optim.Adam, id="Adam"),
    pytest.param(torch.optim.AdamW, id="AdamW"),
    pytest.param(lambda groups: torch.optim.SGD(groups, lr=0.1), id="SGD"),
    pytest.param(lambda groups: torch.optim.RMSprop(groups, lr=0.1), id="RMSprop"),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
def test_scheduler_sets_plan_before_each_step(make_optimizer: Any) -> None:
    n_groups, n_steps = 3, 12
    plan = one_cycle(n_steps, slice(1e-5, 1e-3), n_groups=n_groups, pct_start=0.3)
    optimizer = make_optimizer(_groups(n_groups))
    scheduler = OneCycleScheduler(optimizer, plan)
    used_lrs, used_moms = _train_and_record(optimizer, scheduler, n_steps)
    assert used_lrs == plan.lr.tolist()  # exactly
    assert used_moms == plan.mom.tolist()
    assert scheduler.get_last_lr() == plan.lr[-1].tolist()  # the last step() kept them


def test_scheduler_refuses_to_step_past_the_plan() -> None:
    plan = one_cycle(2, 1e-3)
    optimizer = torch.optim.Adam(_groups(1))
    scheduler = OneCycleScheduler(optimizer, plan)
    _train_and_record(optimizer, scheduler, 2)
    with pytest.raises(LensError, match=r"`n_steps`"):
        scheduler.step()


def test_scheduler_without_momentum() -> None:
    plan = one_cycle(3, 1e-2)
    optimizer = torch.optim.Adagrad(_groups(1))
    scheduler = OneCycleScheduler(optimizer, plan, momentum=False)
    assert optimizer.param_groups[0]["lr"] == plan.lr[0, 0].item()
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == plan.lr[1, 0].item()


@pytest.mark.oracle
def test_plain_torch_loop_trains_with_fastai_values() -> None:
    """End to end: fastai's fine_tune values, reproduced by Adam + OneCycleScheduler."""
    epochs, steps_per_epoch, n_groups = 2, 3, 3
    recorded = run_fastai(tiny_learner(n_groups, steps_per_epoch), "fine_tune", epochs)
    used_lrs: list[list[float]] = []
    used_moms: list[float] = []
    for phase in fine_tune_plan(epochs, steps_per_epoch, n_groups=n_groups).phases:
        optimizer = torch.optim.Adam(_groups(n_groups))
        lrs, moms = _train_and_record(
            optimizer, OneCycleScheduler(optimizer, phase.schedule), phase.schedule.n_steps
        )
        used_lrs += lrs
        used_moms += moms
    assert_matches(torch.tensor(used_lrs, dtype=torch.float64), recorded.lrs)
    assert_matches(torch.tensor(used_moms, dtype=torch.float64), recorded.moms)


# ---------------------------------------------------------------------------------------------
# Bad inputs: a LensError (a ValueError) that names the argument


def _assert_refused(call: Any, argument: str) -> None:
    with pytest.raises(LensError) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert f"`{argument}`" in str(info.value)


@pytest.mark.parametrize(
    ("lr", "n_groups", "argument"),
    [
        pytest.param(slice(1e-2, 1e-4), 3, "lr", id="slice-start-above-stop"),
        pytest.param(0.0, 2, "lr", id="zero-rate"),
        pytest.param(-1e-3, 2, "lr", id="negative-rate"),
        pytest.param(math.nan, 2, "lr", id="nan-rate"),
        pytest.param(math.inf, 2, "lr", id="inf-rate"),
        pytest.param(slice(-1e-3), 2, "lr", id="negative-slice-stop"),
        pytest.param(slice(0, 1e-3), 2, "lr", id="zero-slice-start"),
        pytest.param([1e-3, -1e-3], 2, "lr", id="negative-in-list"),
        pytest.param([1e-3, 1e-3], 3, "lr", id="list-wrong-length"),
        pytest.param(slice(1e-5, 1e-3, 2), 3, "lr", id="slice-with-step"),
        pytest.param(slice(None), 3, "lr", id="slice-without-stop"),
        pytest.param("1e-3", 3, "lr", id="string"),
        pytest.param(True, 3, "lr", id="bool"),
        pytest.param(1e-3, 0, "n_groups", id="zero-groups"),
        pytest.param(1e-3, -1, "n_groups", id="negative-groups"),
        pytest.param(1e-3, 2.5, "n_groups", id="fractional-groups"),
    ],
)
def test_discriminative_lrs_refuses(lr: Any, n_groups: Any, argument: str) -> None:
    _assert_refused(lambda: discriminative_lrs(lr, n_groups), argument)


@pytest.mark.parametrize(
    ("args", "kwargs", "argument"),
    [
        pytest.param((0, 1e-3), {}, "n_steps", id="zero-steps"),
        pytest.param((-5, 1e-3), {}, "n_steps", id="negative-steps"),
        pytest.param((10, 1e-3), {"pct_start": 0.0}, "pct_start", id="pct_start=0"),
        pytest.param((10, 1e-3), {"pct_start": 1.5}, "pct_start", id="pct_start=1.5"),
        pytest.param((10, 1e-3), {"pct_start": -0.1}, "pct_start", id="pct_start<0"),
        pytest.param((10, 1e-3), {"div": 0.0}, "div", id="div=0"),
        pytest.param((10, 1e-3), {"div_final": -1.0}, "div_final", id="div_final<0"),
        pytest.param((10, 1e-3), {"moms": (0.9, 0.8)}, "moms", id="two-moms"),
        pytest.param((10, 1e-3), {"steps_per_epoch": 3}, "steps_per_epoch", id="not-divisor"),
        pytest.param((10, 1e-3), {"n_groups": 0}, "n_groups", id="zero-groups"),
        pytest.param((10, slice(1e-2, 1e-4)), {"n_groups": 2}, "lr_max", id="bad-lr_max"),
    ],
)
def test_one_cycle_refuses(args: tuple[Any, ...], kwargs: dict[str, Any], argument: str) -> None:
    _assert_refused(lambda: one_cycle(*args, **kwargs), argument)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        pytest.param({"epochs": 0}, "epochs", id="zero-epochs"),
        pytest.param({"steps_per_epoch": 0}, "steps_per_epoch", id="zero-steps_per_epoch"),
        pytest.param({"freeze_epochs": -1}, "freeze_epochs", id="negative-freeze_epochs"),
        pytest.param({"base_lr": 0.0}, "base_lr", id="zero-base_lr"),
        pytest.param({"lr_mult": 0.5}, "lr_mult", id="lr_mult<1"),
        pytest.param({"n_groups": 0}, "n_groups", id="zero-groups"),
        pytest.param({"pct_start": 2.0}, "pct_start", id="pct_start=2"),
    ],
)
def test_fine_tune_plan_refuses(kwargs: dict[str, Any], argument: str) -> None:
    arguments = {"epochs": 1, "steps_per_epoch": 4, **kwargs}
    _assert_refused(lambda: fine_tune_plan(**arguments), argument)


def test_scheduler_refuses_wrong_group_count() -> None:
    optimizer = torch.optim.Adam(_groups(2))
    _assert_refused(lambda: OneCycleScheduler(optimizer, one_cycle(4, 1e-3)), "optimizer")


def test_scheduler_refuses_optimizer_without_momentum() -> None:
    optimizer = torch.optim.Adagrad(_groups(1))
    _assert_refused(lambda: OneCycleScheduler(optimizer, one_cycle(4, 1e-3)), "optimizer")


def test_scheduler_refuses_epoch_argument() -> None:
    optimizer = torch.optim.Adam(_groups(1))
    scheduler = OneCycleScheduler(optimizer, one_cycle(4, 1e-3))
    optimizer.step()
    _assert_refused(lambda: scheduler.step(3), "epoch")


# ---------------------------------------------------------------------------------------------
# record_schedule: the recorder the oracle tests above rely on


@pytest.mark.oracle
def test_record_schedule_sees_every_training_batch_and_can_be_removed() -> None:
    learn = tiny_learner(n_groups=2, steps_per_epoch=3)
    recorded = run_fastai(learn, "fit_one_cycle", 2, lr_max=slice(1e-4, 1e-2))
    assert len(recorded) == 6  # 2 epochs x 3 training batches; validation is not recorded
    assert recorded.lr.shape == (6, 2) and recorded.mom.shape == (6,)
    assert recorded.frozen_idx == [0] * 6
    assert not [cb for cb in learn.cbs if type(cb).__name__ == "_RecordSchedule"]
    run_fastai(learn, "fit_one_cycle", 1, lr_max=1e-3)
    assert len(recorded) == 6  # stopped: the second fit was not recorded into it


def test_record_schedule_refuses_what_is_not_a_learner() -> None:
    with pytest.raises(LensError, match="`learn`"):
        record_schedule(nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# Checkpoints: the scheduler's state round-trips through torch.save / torch.load(weights_only)


def _checkpoint(objects: dict[str, Any]) -> dict[str, Any]:
    import io

    buffer = io.BytesIO()
    torch.save(objects, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # PyTorch's default since 2.6, said explicitly


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS)
def test_scheduler_checkpoint_resumes_the_same_schedule(make_optimizer: Any) -> None:
    n_groups, n_steps, stop_after = 2, 10, 4
    plan = one_cycle(n_steps, slice(1e-4, 1e-2), n_groups=n_groups, steps_per_epoch=5)

    optimizer = make_optimizer(_groups(n_groups))
    uninterrupted = _train_and_record(optimizer, OneCycleScheduler(optimizer, plan), n_steps)

    optimizer = make_optimizer(_groups(n_groups))
    scheduler = OneCycleScheduler(optimizer, plan)
    first = _train_and_record(optimizer, scheduler, stop_after)
    saved = _checkpoint({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})

    # A fresh process would rebuild the optimizer and a scheduler from any plan of the right
    # shape; the checkpoint's plan and position replace it.
    resumed_optimizer = make_optimizer(_groups(n_groups))
    resumed = OneCycleScheduler(resumed_optimizer, one_cycle(3, 1e-3, n_groups=n_groups))
    resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    assert isinstance(resumed.plan, OneCycle)
    assert torch.equal(resumed.plan.lr, plan.lr) and torch.equal(resumed.plan.mom, plan.mom)
    assert resumed.plan.lr_max == plan.lr_max and resumed.plan.steps_per_epoch == 5
    second = _train_and_record(resumed_optimizer, resumed, n_steps - stop_after)
    assert first[0] + second[0] == uninterrupted[0] == plan.lr.tolist()
    assert first[1] + second[1] == uninterrupted[1] == plan.mom.tolist()
    with pytest.raises(LensError, match=r"`n_steps`"):
        resumed.step()


def test_scheduler_state_dict_holds_no_transferlens_objects() -> None:
    optimizer = torch.optim.Adam(_groups(1))
    state = OneCycleScheduler(optimizer, one_cycle(4, 1e-3)).state_dict()

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return all(plain(v) for v in value)
        return isinstance(value, torch.Tensor | int | float | bool | str | type(None))

    assert plain(state)


def test_scheduler_load_state_dict_refuses_a_foreign_state() -> None:
    optimizer = torch.optim.Adam(_groups(1))
    scheduler = OneCycleScheduler(optimizer, one_cycle(4, 1e-3))
    _assert_refused(lambda: scheduler.load_state_dict({"last_epoch": 2}), "state_dict")
    other = OneCycleScheduler(torch.optim.Adam(_groups(2)), one_cycle(4, 1e-3, n_groups=2))
    _assert_refused(lambda: scheduler.load_state_dict(other.state_dict()), "optimizer")


# ---------------------------------------------------------------------------------------------
# A natural mistake: a whole FineTunePlan where one cycle is expected


def test_scheduler_refuses_a_fine_tune_plan_and_says_what_to_pass() -> None:
    optimizer = torch.optim.Adam(_groups(3))
    plan = fine_tune_plan(1, 4)
    with pytest.raises(LensError) as info:
        OneCycleScheduler(optimizer, plan)  # type: ignore[arg-type]
    message = str(info.value)
    assert "`plan`" in message and "plan.phases[i].schedule" in message
    assert "transferlens.fine_tune" in message
    OneCycleScheduler(optimizer, plan.phases[0].schedule)  # what the message says works


def test_scheduler_refuses_what_is_not_a_plan() -> None:
    optimizer = torch.optim.Adam(_groups(1))
    _assert_refused(lambda: OneCycleScheduler(optimizer, [1e-3, 1e-3]), "plan")  # type: ignore[arg-type]


def test_scheduler_refuses_group_indices_that_do_not_fit_the_plan() -> None:
    params = _groups(3)
    groups = [{**group, "group_index": i} for i, group in enumerate(params)]
    optimizer = torch.optim.Adam(groups)
    two_groups = one_cycle(4, 1e-3, n_groups=2)
    _assert_refused(lambda: OneCycleScheduler(optimizer, two_groups), "optimizer")
    mixed = torch.optim.Adam([{**params[0], "group_index": 0}, params[1]])
    _assert_refused(lambda: OneCycleScheduler(mixed, one_cycle(4, 1e-3, n_groups=2)), "optimizer")
