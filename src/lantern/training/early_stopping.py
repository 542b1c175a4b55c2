"""The one early-stopping loop every training loop in lantern runs.

Epochs; score each on validation data; keep a copy of the best state; stop once
``patience`` epochs in a row brought no improvement (or at ``max_epochs``). The caller
supplies the epoch (train, then return the validation score) and the snapshot of its
state; the loop does the bookkeeping, so the learned mergers, the :class:`Trainer` and
the text-encoder fine-tune all select their epoch by the same rule. (A training config's
``patience`` counts one epoch more than a merger's: the Trainer passes ``patience + 1``, as
it always stopped, so that retrained models stay identical.)

>>> scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])
>>> stop = EarlyStopping(patience=2)
>>> run_early_stopping(stop, 5, lambda epoch: next(scores), snapshot=lambda: "state")
EarlyStopping(patience=2, mode='max', min_delta=0.0, best_score=0.7, best_epoch=2, best_state='state', epoch=4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generic, Literal, TypeVar

State = TypeVar("State")


@dataclass
class EarlyStopping(Generic[State]):
    """Where an early-stopped run stands: the best score so far, its epoch and state.

    ``mode="max"``: a score improves when it exceeds the best by more than ``min_delta``;
    ``"min"``: when it is below the best by more than ``min_delta``. ``patience=None``
    never stops early (every epoch runs; the best one is still kept). ``best_*`` and
    ``epoch`` start where the run starts: a baseline scored before training (epoch 0) or
    the values restored from a checkpoint.
    """

    patience: int | None
    mode: Literal["max", "min"] = "max"
    min_delta: float = 0.0
    best_score: float | None = None
    best_epoch: int = 0
    best_state: State | None = None
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'; got {self.mode!r}")
        if self.best_score is None:
            self.best_score = -math.inf if self.mode == "max" else math.inf

    def improves(self, score: float) -> bool:
        """Whether ``score`` beats the best so far by more than ``min_delta``."""
        if self.mode == "max":
            return score > self.best_score + self.min_delta
        return score < self.best_score - self.min_delta

    def exhausted(self) -> bool:
        """Whether ``patience`` epochs have passed since the best one."""
        return self.patience is not None and self.epoch - self.best_epoch >= self.patience

    def record(self, epoch: int, score: float, snapshot: Callable[[], State]) -> bool:
        """Count ``epoch`` as run with ``score``; keep ``snapshot()`` if it is the best."""
        self.epoch = epoch
        if not self.improves(score):
            return False
        self.best_score, self.best_epoch, self.best_state = score, epoch, snapshot()
        return True


def run_early_stopping(stopping: EarlyStopping[State], max_epochs: int,
                       run_epoch: Callable[[int], float], snapshot: Callable[[], State],
                       after_epoch: Callable[[int, bool], None] | None = None
                       ) -> EarlyStopping[State]:
    """Run epochs ``stopping.epoch + 1 .. max_epochs`` until ``stopping`` is exhausted.

    ``run_epoch(epoch)`` trains one epoch and returns its validation score;
    ``snapshot()`` copies the state worth keeping; ``after_epoch(epoch, improved)`` runs
    once the epoch is recorded (checkpoints, progress bars). Returns ``stopping``, which
    then holds the best epoch's score and state; restoring that state is the caller's.
    """
    while stopping.epoch < max_epochs and not stopping.exhausted():
        epoch = stopping.epoch + 1
        improved = stopping.record(epoch, run_epoch(epoch), snapshot)
        if after_epoch is not None:
            after_epoch(epoch, improved)
    return stopping
