"""Record the hyper-parameters a fastai Learner really trains with, batch by batch.

fastai's ``Recorder`` keeps only the last parameter group's learning rate. To compare a training
run with `transferlens.one_cycle` or `transferlens.fine_tune_plan`, we need every
group's rate, the momentum and ``frozen_idx`` at every training batch, read after fastai's
``ParamScheduler`` has set them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from transferlens import LensError

if TYPE_CHECKING:  # torch is imported when a recording is read, not with the site's machinery
    import torch


@dataclass
class ScheduleRecording:
    """What `record_schedule` saw before each training batch.

    Attributes:
        lrs: one list per batch: the learning rate of each parameter group.
        moms: the momentum of each batch (fastai gives every group the same).
        frozen_idx: the optimizer's ``frozen_idx`` at each batch.
    """

    lrs: list[list[float]] = field(default_factory=list)
    moms: list[float] = field(default_factory=list)
    frozen_idx: list[int] = field(default_factory=list)
    _learner: Any = field(default=None, repr=False)
    _callback: Any = field(default=None, repr=False)

    @property
    def lr(self) -> torch.Tensor:
        """The learning rates as a float64 tensor of shape ``(batches, groups)``."""
        import torch

        return torch.tensor(self.lrs, dtype=torch.float64)

    @property
    def mom(self) -> torch.Tensor:
        """The momentum as a float64 tensor of shape ``(batches,)``."""
        import torch

        return torch.tensor(self.moms, dtype=torch.float64)

    def __len__(self) -> int:
        return len(self.lrs)

    def stop(self) -> None:
        """Remove the recording callback from the learner (recorded values stay)."""
        if self._callback is not None:
            self._learner.remove_cb(self._callback)
            self._callback = None

    def __enter__(self) -> ScheduleRecording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def record_schedule(learn: Any) -> ScheduleRecording:
    """Record every group's learning rate, the momentum and ``frozen_idx`` at each training batch.

    Adds a callback to the fastai ``learn`` that runs just after fastai's ``ParamScheduler``
    (``fastai/callback/schedule.py``) in ``before_batch``, so it sees the values the optimizer
    step of that batch uses. Validation batches are not recorded. Use it as a context manager to
    remove the callback afterwards. Needs fastai (imported here, not by ``import transferlens``).

    Args:
        learn: a fastai ``Learner``.

    Returns:
        A `ScheduleRecording` that fills up while the learner trains.

    Raises:
        LensError: ``learn`` is not a fastai ``Learner``.

    Examples:
        A two-group learner on 16 random points, 4 batches of 4, one cycle:

        >>> import torch
        >>> from fastai.data.core import DataLoaders
        >>> from fastai.learner import Learner
        >>> from torch import nn
        >>> from torch.utils.data import TensorDataset
        >>> import transferlens
        >>> data = TensorDataset(torch.randn(16, 2), torch.randn(16, 1))
        >>> dls = DataLoaders.from_dsets(data, data, bs=4, device="cpu")
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> learn = Learner(dls, model, loss_func=nn.MSELoss(),
        ...                 splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())])
        >>> with record_schedule(learn) as seen, learn.no_bar(), learn.no_logging():
        ...     learn.fit_one_cycle(1, lr_max=slice(1e-4, 1e-3))
        >>> len(seen), len(seen.lrs[0])
        (4, 2)
        >>> plan = transferlens.one_cycle(4, slice(1e-4, 1e-3), n_groups=2)
        >>> torch.allclose(seen.lr, plan.lr.double())
        True
    """
    from fastai.callback.core import Callback
    from fastai.callback.schedule import ParamScheduler
    from fastai.learner import Learner

    if not isinstance(learn, Learner):
        raise LensError(
            f"`learn` must be a fastai Learner, got {type(learn).__name__}. Pass the learner "
            "you are about to train (e.g. what vision_learner returned)."
        )
    recording = ScheduleRecording(_learner=learn)

    class _RecordSchedule(Callback):
        order = ParamScheduler.order + 1
        run_valid = False

        def before_batch(self) -> None:
            hypers = self.learn.opt.hypers
            recording.lrs.append([float(h["lr"]) for h in hypers])
            recording.moms.append(float(hypers[-1]["mom"]))
            recording.frozen_idx.append(int(self.learn.opt.frozen_idx))

    recording._callback = _RecordSchedule()
    learn.add_cb(recording._callback)
    return recording
