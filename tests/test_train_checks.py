"""``transferlens.fine_tune``'s checks, its validation pass and the state it leaves the model in.

Each check turns a common mistake, which torch reports deep inside the loop (or not at all), into
a `LensError` before training that names the argument and says what to pass. The checks read the
batch the loop trains on first and run the model on it once in eval mode without gradients; the
bit-for-bit oracle tests in ``test_train.py`` (with dropout and a validation loader) prove that
nothing they do changes a trained bit. Tiny models only: everything here runs in a few seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from transferlens import EpochRecord, FineTuneLog, LensError, fine_tune

N_CLASSES = 3


def conv_model(n_out: int = N_CLASSES) -> tuple[nn.Module, list[list[nn.Parameter]]]:
    """A tiny image classifier with fastai's shape: a conv body, a BatchNorm1d head."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.BatchNorm1d(4),
        nn.Dropout(0.5),
        nn.Linear(4, n_out),
    )
    return model, [list(model[:2].parameters()), list(model[5:].parameters())]


def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=generator)
    y = torch.randint(0, N_CLASSES, (n,), generator=generator)
    return x, y


def batches(n_batches: int = 2, size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = images(n_batches * size)
    return [(x[i : i + size], y[i : i + size]) for i in range(0, n_batches * size, size)]


def refused(match: str, *, model: nn.Module | None = None, **arguments: Any) -> str:
    """Run fine_tune on the conv model (or ``model``) and return the LensError's message."""
    if model is None:
        model, groups = conv_model()
    else:
        groups = [list(model.parameters())]
    arguments = {"train_loader": batches(), "epochs": 1, **arguments}
    with pytest.raises(LensError, match=match) as info:
        fine_tune(model, arguments.pop("groups", groups), **arguments)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# 1. The first batch, checked before training


def test_a_dataset_instead_of_a_dataloader_is_refused() -> None:
    """Without the check: ``expected 4D input (got 3D input)`` from BatchNorm2d."""
    message = refused("`train_loader` is a TensorDataset", train_loader=TensorDataset(*images(8)))
    assert "DataLoader(dataset, batch_size=64, shuffle=True, drop_last=True)" in message
    message = refused("`valid_loader` is a TensorDataset", valid_loader=TensorDataset(*images(8)))
    assert "DataLoader(dataset, batch_size=64, shuffle=False)" in message


def test_fastai_dataloaders_are_refused_with_the_two_loaders_to_pass() -> None:
    from fastai.data.core import DataLoaders

    x, y = images(8)
    samples = list(zip(x, y, strict=True))
    dls = DataLoaders.from_dsets(samples, samples, bs=4, device="cpu")
    message = refused("`train_loader` is a fastai DataLoaders", train_loader=dls)
    assert "train_loader=dls.train and valid_loader=dls.valid" in message
    model, groups = conv_model()
    log = fine_tune(model, groups, dls.train, 1, valid_loader=dls.valid)
    assert log.epochs[-1].valid_loss is not None


def test_a_list_of_samples_is_refused() -> None:
    """fastai's ``from_dsets`` takes a list of (image, label) samples; fine_tune wants batches."""
    x, y = images(8)
    message = refused(
        "`train_loader` gave a single sample", train_loader=list(zip(x, y, strict=True))
    )
    assert "DataLoader(" in message
    one_hot = nn.functional.one_hot(y, N_CLASSES).float()
    # One-hot targets of 3 classes for 3-channel images: the shapes agree by chance, so the
    # dtype is the fault found, and the message adds that the inputs look like one sample.
    message = refused("dtype torch.float32", train_loader=list(zip(x, one_hot, strict=True)))
    assert "one sample where the model's first convolution takes 4-d batches" in message
    refused("`valid_loader` gave a single sample", valid_loader=list(zip(x, y, strict=True)))


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        (torch.tensor([0.0, 1.0, 2.0, 0.0]), r"dtype torch.float32.*int64.*\(batch,\)"),
        (nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), N_CLASSES).float(), "argmax"),
        (torch.tensor([0, 1, 2, 0], dtype=torch.int32), r"targets.long\(\)"),
        (torch.tensor([[0], [1], [2], [0]]), r"targets.view\(-1\)"),
    ],
    ids=["float", "one-hot", "int32", "column"],
)
def test_targets_the_default_cross_entropy_cannot_take_are_refused(
    targets: torch.Tensor, match: str
) -> None:
    """Without the check one-hot floats train silently (as probabilities), int32 and (batch, 1)
    fail inside torch's loss."""
    x, _ = images(4)
    message = refused(match, train_loader=[(x, targets)])
    assert "`train_loader`" in message


def test_one_hot_targets_are_accepted_with_an_explicit_cross_entropy() -> None:
    """nn.CrossEntropyLoss takes class probabilities: passing it says they are meant."""
    model, groups = conv_model()
    x, y = images(4)
    one_hot = nn.functional.one_hot(y, N_CLASSES).float()
    log = fine_tune(model, groups, [(x, one_hot)], 1, loss_func=nn.CrossEntropyLoss())
    assert len(log.batches) == 2


@pytest.mark.parametrize("loss_func", [None, nn.CrossEntropyLoss()], ids=["default", "explicit"])
def test_a_one_wide_output_with_cross_entropy_is_refused(loss_func: Any) -> None:
    """Without the check: a loss of exactly 0 on every batch of class 0 (nothing trains), or
    ``IndexError: Target 1 is out of bounds``."""
    model, groups = conv_model(n_out=1)
    x, _ = images(4)
    zeros = torch.zeros(4, dtype=torch.long)
    message = refused(
        "one score per sample",
        model=model,
        groups=groups,
        train_loader=[(x, zeros)],
        loss_func=loss_func,
    )
    assert "n_out=2" in message and "nn.BCEWithLogitsLoss()" in message
    assert "(batch, 1)" in message


def test_a_one_wide_output_trains_with_bce() -> None:
    model, groups = conv_model(n_out=1)
    x, y = images(4)
    targets = (y > 0).float().unsqueeze(1)
    log = fine_tune(model, groups, [(x, targets)], 1, loss_func=nn.BCEWithLogitsLoss())
    assert len(log.batches) == 2


def test_classes_beyond_the_output_width_are_refused_on_any_batch() -> None:
    """Without the check: ``IndexError: Target 5 is out of bounds`` (on a GPU, a device-side
    assert that ends the process)."""
    x, y = images(8)
    message = refused(r"class 5.*3 scores.*at least 6", train_loader=[(x[:4], y[:4] + 3)])
    assert "n_out" in message
    later = [(x[:4], y[:4]), (x[4:], torch.tensor([0, 1, 5, 0]))]
    refused("`train_loader` gave a target of class 5", train_loader=later)
    refused("`valid_loader` gave a target of class 5", valid_loader=later)
    refused("class of -1", train_loader=[(x[:4], torch.tensor([0, -1, 1, 2]))])


def test_ignore_index_is_not_a_class() -> None:
    model, groups = conv_model()
    x, y = images(4)
    y[1] = -100  # nn.CrossEntropyLoss's default ignore_index
    assert len(fine_tune(model, groups, [(x, y)], 1).batches) == 2


def test_mismatched_batch_sizes_are_refused() -> None:
    x, y = images(8)
    refused("inputs for 4 samples but targets for 8", train_loader=[(x[:4], y)])


def test_a_last_batch_of_one_for_batchnorm_is_refused() -> None:
    """9 samples in batches of 4: the last holds one, and BatchNorm1d cannot normalize it in
    training mode. Without the check: ``Expected more than 1 value per channel when training``,
    at the end of the first epoch."""
    data = TensorDataset(*images(9))
    loader = DataLoader(data, batch_size=4, shuffle=True, drop_last=False)
    message = refused("its last batch holds one sample", train_loader=loader)
    assert "drop_last=True" in message and "layer `5` (BatchNorm1d)" in message
    assert "fastai's training DataLoader drops the last partial batch" in message
    refused(
        "its batch 1 holds one sample", train_loader=[batches()[0], (images(1)[0], images(1)[1])]
    )
    first_of_one = DataLoader(data, batch_size=1)
    refused("its first batch holds one sample", train_loader=first_of_one)


def test_a_last_batch_of_one_in_a_fastai_dataloader_is_refused() -> None:
    from fastai.data.load import DataLoader as FastaiDataLoader

    x, y = images(9)
    loader = FastaiDataLoader(list(zip(x, y, strict=True)), bs=4, drop_last=False)
    refused("9 samples in batches of 4, drop_last=False", train_loader=loader)


def test_a_batch_of_one_is_fine_where_batchnorm_sees_more_than_one_value() -> None:
    """BatchNorm2d over 8x8 maps normalizes one image over 64 values: no refusal."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(2, 3, 8, 8))  # initialize the lazy layer
    loader = DataLoader(TensorDataset(*images(9)), batch_size=4)
    log = fine_tune(model, [list(model.parameters())], loader, 1, freeze_epochs=0)
    assert len(log.batches) == 3
    loader = DataLoader(TensorDataset(*images(8)), batch_size=4, drop_last=True)
    assert len(fine_tune(*conv_model(), loader, 1).batches) == 4  # drop_last: accepted


def test_lazy_layers_not_initialized_are_refused() -> None:
    model = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    refused("lazy layers not initialized", model=model)


def test_a_refused_first_batch_leaves_the_model_untouched() -> None:
    """The checks run before any change: weights, BatchNorm statistics, training flags and
    ``requires_grad`` are as they were."""
    model, groups = conv_model(n_out=1)
    model[1].eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    x, y = images(4)
    with pytest.raises(LensError):
        fine_tune(model, groups, [(x, y)], 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == flags
    assert all(p.requires_grad for p in model.parameters())


class CountingLoader:
    """A shuffling DataLoader that counts how often it is iterated and how many batches leave."""

    def __init__(self, loader: DataLoader) -> None:  # type: ignore[type-arg]
        self.loader, self.iterations, self.batches = loader, 0, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.iterations += 1
        for batch in self.loader:
            self.batches += 1
            yield batch


def test_the_checks_draw_no_extra_batch_and_no_random_number() -> None:
    """The first batch checked is the first batch trained on: the loader is iterated once per
    epoch, and a shuffling loader's order (drawn from torch's generator) is what a loop without
    checks sees."""
    data = TensorDataset(*images(16))

    def loader() -> CountingLoader:
        return CountingLoader(DataLoader(data, batch_size=4, shuffle=True, drop_last=True))

    model, groups = conv_model()
    counted = loader()
    torch.manual_seed(5)
    log = fine_tune(model, groups, counted, 2, valid_loader=batches())
    assert (counted.iterations, counted.batches) == (3, 12)
    after_fine_tune = torch.get_rng_state()

    # The same draws without fine_tune: three epochs of shuffling and the dropout masks.
    model, _ = conv_model()
    plain = loader()
    torch.manual_seed(5)
    reference: list[float] = []
    for _ in range(3):
        model.train()
        for x, y in plain:
            reference.append(nn.functional.cross_entropy(model(x), y).item())
    assert torch.equal(torch.get_rng_state(), after_fine_tune)
    assert log.batches[0].loss == reference[0]  # same first batch, same dropout mask


# ---------------------------------------------------------------------------------------------
# 2. Eval mode at the end, as fastai leaves its model


def test_the_model_is_in_eval_mode_after_fine_tune() -> None:
    """Without it a later batch of one fails: ``Expected more than 1 value per channel``."""
    model, groups = conv_model()
    model[6].eval()  # mixed modes before: all eval after, as model.eval() leaves them
    fine_tune(model, groups, batches(), 1)
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        assert model(images(1)[0]).shape == (1, N_CLASSES)


# ---------------------------------------------------------------------------------------------
# 3. Validation and the per-epoch table


def test_validation_reports_fastai_numbers() -> None:
    """valid_loss: batch means weighted by batch size (fastai's AvgLoss); error_rate: the
    fraction of wrong samples (AvgMetric(error_rate)). Checked here by hand on the last epoch;
    test_train.py checks them against fastai's Recorder."""
    model, groups = conv_model()
    x, y = images(7, seed=1)
    valid = [(x[:4], y[:4]), (x[4:], y[4:])]  # batches of 4 and 3
    log = fine_tune(model, groups, batches(), 2, valid_loader=valid)
    with torch.no_grad():
        outputs = model(x)
    expected_loss = nn.functional.cross_entropy(outputs, y, reduction="sum").item() / 7
    wrong = (outputs.argmax(1) != y).sum().item()
    last = log.epochs[-1]
    assert last.valid_loss == pytest.approx(expected_loss, rel=1e-6)
    assert last.error_rate == pytest.approx(wrong / 7, rel=1e-6)
    assert all(e.valid_loss is not None for e in log.epochs)


def test_train_loss_is_fastai_smoothed_loss_restarted_each_phase() -> None:
    """fastai's train_loss is AvgSmoothLoss: lerp(loss, value, 0.98) in float32, debiased by
    1 - 0.98**count, restarted at each fit_one_cycle (each phase)."""
    model, groups = conv_model()
    log = fine_tune(model, groups, batches(3), 2)
    for record in log.epochs:
        losses = [b.loss for b in log.batches if b.phase == record.phase]
        seen = losses[: 3 * (record.epoch + 1)]
        value = torch.tensor(0.0)
        for loss in seen:
            value = torch.lerp(torch.tensor(loss), value, 0.98)
        assert record.train_loss == (value / (1 - 0.98 ** len(seen))).item()
        assert record.valid_loss is None and record.error_rate is None


def test_validation_changes_no_trained_bit() -> None:
    """With dropout and BatchNorm, and list loaders (which draw nothing): training with a
    validation loader ends in the same bits as training without."""
    results = []
    for valid in (None, batches()):
        model, groups = conv_model()
        torch.manual_seed(3)
        fine_tune(model, groups, batches(), 2, valid_loader=valid)
        results.append(model.state_dict())
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_the_log_prints_fastai_table(capsys: pytest.CaptureFixture[str]) -> None:
    model, groups = conv_model()
    log = fine_tune(model, groups, batches(), 1, valid_loader=batches(1), show=True)
    printed = capsys.readouterr().out.splitlines()
    assert printed == str(log).splitlines()
    assert printed[0] == "phase     epoch  train_loss  valid_loss  error_rate  time"
    assert [line.split()[:2] for line in printed[1:]] == [["frozen", "0"], ["unfrozen", "0"]]
    cells = printed[1].split()
    assert len(cells[2].split(".")[1]) == 6 and cells[5] == "00:00"
    assert isinstance(log, FineTuneLog) and isinstance(log.epochs[0], EpochRecord)


def test_the_table_shows_none_without_validation() -> None:
    record = EpochRecord("unfrozen", 3, 0.25, None, None, 75.0)
    log = FineTuneLog([], [record])
    assert str(log).splitlines()[1] == "unfrozen  3      0.250000    None        None        01:15"


def test_error_rate_is_none_for_outputs_that_are_not_class_scores() -> None:
    model = nn.Linear(4, 1)
    x = torch.randn(4, 4)
    data = [(x, x.sum(1, keepdim=True))]
    log = fine_tune(
        model, [list(model.parameters())], data, 1, valid_loader=data, loss_func=nn.MSELoss()
    )
    assert log.epochs[0].valid_loss is not None and log.epochs[0].error_rate is None


# ---------------------------------------------------------------------------------------------
# 4. Devices


def test_a_meta_device_is_refused() -> None:
    """Without the check: '`groups[0]` holds parameters that are not in `model`'."""
    message = refused("`device` is 'meta'", device="meta")
    assert "device='cpu'" in message
    with torch.device("meta"):
        model = nn.Linear(4, 3)
    refused(r"`model` holds meta tensors \(`weight`\)", model=model)


def test_parameters_replaced_by_the_move_say_to_build_the_groups_after_it() -> None:
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        message = refused("Build the groups after moving the model", device="cpu")
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
    assert "`groups[0]`" in message and "model.to('cpu')" in message


# ---------------------------------------------------------------------------------------------
# 5. Every numeric argument: one set of checks


NUMERIC = {
    "epochs": [math.inf, math.nan, -1, True, 0, 1.5],
    "freeze_epochs": [math.inf, math.nan, -1, True, 1.5],
    "base_lr": [math.inf, math.nan, -1e-3, True, 0.0],
    "lr_mult": [math.inf, math.nan, -1.0, True, 0.5],
    "pct_start": [math.inf, math.nan, -0.1, True, 0.0, 1.5],
    "div": [math.inf, math.nan, -1.0, True, 0.0],
    "wd": [math.inf, math.nan, -0.1, True],
}
CASES = [(name, value) for name, values in NUMERIC.items() for value in values] + [
    ("moms", value)
    for value in [
        (math.inf, 0.85, 0.95),
        (0.95, math.nan, 0.95),
        (0.95, 0.85, -0.1),
        (True, 0.85, 0.95),
        (0.95, 1.0, 0.95),
        (0.95, 0.85),
        "abc",
        0.9,
    ]
]


@pytest.mark.parametrize(("argument", "value"), CASES, ids=[f"{a}={v!r}" for a, v in CASES])
def test_numeric_arguments_are_checked(argument: str, value: Any) -> None:
    message = refused(".", **{argument: value})
    assert message.startswith(f"`{argument}")
