"""Trainer: selects on the validation split only, early-stops, resumes from checkpoints.

The trainer is handed the train and validation dialogues and nothing else, so test labels
cannot influence model selection.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lantern.data.dialogues import Dialogue
from lantern.models.base import VanillaModel
from lantern.models.batching import FeatureSpec, collate
from lantern.models.inference import predict_dialogues
from lantern.training.early_stopping import EarlyStopping, run_early_stopping
from lantern.training.losses import multitask_loss


@dataclass
class TrainingConfig:
    epochs: int = 60
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 8
    patience: int = 10           # epochs past the best one before stopping, plus one (see fit)
    class_weights: bool = True
    vad_weight: float = 0.5
    vad_loss: str = "mse"
    grad_clip: float = 5.0
    seed: int = 0

    @classmethod
    def from_dict(cls, cfg: dict) -> "TrainingConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(cfg) - known
        if unknown:
            from lantern.errors import ConfigError
            raise ConfigError(f"unknown training option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**cfg)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weight_tensor(dialogues: list[Dialogue], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (classes absent from train get weight 1)."""
    counts = np.bincount([u.label for d in dialogues for u in d if u.label is not None],
                         minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 1.0)
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def evaluate_split(model, dialogues, spec, vad_scale, n_classes: int, multi_label: bool = False) -> dict:
    from lantern.evaluation.metrics import mean_average_precision, percent_scores

    if multi_label:   # mAP over the classes with a positive (EMOTIC's measure)
        y, scores = [], []
        for d, probs, _ in predict_dialogues(model, dialogues, spec, vad_scale, multi_label=True):
            for u, p in zip(d, probs):
                if u.labels is not None:
                    y.append(np.isin(np.arange(n_classes), u.labels))
                    scores.append(p)
        return {"mAP": mean_average_precision(np.asarray(y, int), np.asarray(scores))["map"]}
    y_true, y_pred = [], []
    for d, probs, _ in predict_dialogues(model, dialogues, spec, vad_scale):
        for u, p in zip(d, probs):
            if u.label is not None:
                y_true.append(u.label)
                y_pred.append(int(p.argmax()))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return percent_scores(y_true, y_pred, n_classes)


class Trainer:
    """Train ``model`` on ``train`` dialogues, select the epoch with the best validation
    weighted F1 (mAP with ``multi_label``), stop once more than ``patience`` epochs brought
    no improvement.

    With ``run_dir`` set, a checkpoint is written after every epoch; a new Trainer on the
    same ``run_dir`` resumes where the last one stopped.
    """

    def __init__(self, model: VanillaModel, spec: FeatureSpec, train: list[Dialogue],
                 valid: list[Dialogue], config: TrainingConfig, vad_scale=None,
                 run_dir: str | Path | None = None, progress: bool = True, fingerprint: str = "",
                 multi_label: bool = False):
        if not train or not valid:
            raise ValueError("training needs non-empty train and valid splits")
        self.model, self.spec, self.train, self.valid = model, spec, train, valid
        self.cfg, self.vad_scale, self.progress = config, vad_scale, progress
        self.run_dir = Path(run_dir) if run_dir else None
        self.fingerprint = fingerprint   # identifies the whole experiment; checked on resume
        self.multi_label = multi_label
        self.metric = "mAP" if multi_label else "weighted_f1"   # what selects the epoch
        self.class_weight = (class_weight_tensor(train, model.n_classes)
                             if config.class_weights and not multi_label else None)
        self.optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.history: list[dict] = []
        # The Trainer has always run one epoch past ``patience`` without improvement (and
        # counted from epoch -1); kept so that trained models and results reproduce.
        self.stopping: EarlyStopping[dict[str, torch.Tensor]] = EarlyStopping(
            patience=config.patience + 1, mode="max", best_score=-1.0, best_epoch=-1)
        self.train_seconds = 0.0

    # --- checkpoints -------------------------------------------------------------------
    @property
    def _checkpoint(self) -> Path | None:
        return self.run_dir / "checkpoint.pt" if self.run_dir else None

    def _save_checkpoint(self) -> None:
        if self._checkpoint is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model.state_dict(), "optimiser": self.optimiser.state_dict(),
                 "epoch": self.stopping.epoch, "history": self.history,
                 "best_score": self.stopping.best_score, "best_epoch": self.stopping.best_epoch,
                 "best_state": self.stopping.best_state,
                 "train_seconds": self.train_seconds, "config": asdict(self.cfg),
                 "fingerprint": self.fingerprint,
                 "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                         "python": random.getstate()}}
        tmp = self._checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self._checkpoint)

    def _maybe_resume(self) -> bool:
        if self._checkpoint is None or not self._checkpoint.exists():
            return False
        state = torch.load(self._checkpoint, weights_only=False)
        if state["config"] != asdict(self.cfg) or state.get("fingerprint", "") != self.fingerprint:
            raise RuntimeError(f"{self._checkpoint} was written by another experiment or training config; "
                               f"delete it or use another run directory")
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.history, self.train_seconds = state["history"], state["train_seconds"]
        self.stopping.epoch = state["epoch"]
        self.stopping.best_score, self.stopping.best_epoch = state["best_score"], state["best_epoch"]
        self.stopping.best_state = state["best_state"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        return True

    # --- training ----------------------------------------------------------------------
    def _train_epoch(self) -> float:
        self.model.train()
        order = np.random.permutation(len(self.train))
        total, n = 0.0, 0
        for i in range(0, len(order), self.cfg.batch_size):
            batch = collate([self.train[j] for j in order[i:i + self.cfg.batch_size]],
                            self.spec, self.vad_scale, self.model.n_classes)
            out = self.model(batch)
            loss, _ = multitask_loss(out, batch, self.class_weight, self.cfg.vad_weight,
                                     self.cfg.vad_loss)
            self.optimiser.zero_grad()
            loss.backward()
            # an ensemble's members are clipped one by one, as each would be alone
            for part in getattr(self.model, "members", None) or [self.model]:
                torch.nn.utils.clip_grad_norm_(part.parameters(), self.cfg.grad_clip)
            self.optimiser.step()
            total += loss.item()
            n += 1
        return total / max(n, 1)

    def _run_epoch(self, epoch: int) -> float:
        """Train one epoch, score it on validation, log it; returns the selection score."""
        start = time.time()
        loss = self._train_epoch()
        valid = evaluate_split(self.model, self.valid, self.spec, self.vad_scale,
                               self.model.n_classes, self.multi_label)
        self.train_seconds += time.time() - start
        self.history.append({"epoch": epoch, "train_loss": loss,
                             **{f"valid_{k}": v for k, v in valid.items()}})
        return valid[self.metric]

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def fit(self) -> dict:
        from tqdm.auto import tqdm

        resumed = self._maybe_resume()
        if not resumed:
            seed_everything(self.cfg.seed)
        stop = self.stopping
        bar = tqdm(total=self.cfg.epochs, initial=stop.epoch, desc=f"train seed {self.cfg.seed}",
                   disable=not self.progress)

        def after_epoch(epoch: int, improved: bool) -> None:
            self._save_checkpoint()
            bar.update(1)
            last = self.history[-1]
            bar.set_postfix(loss=f"{last['train_loss']:.3f}",
                            valid=f"{last['valid_' + self.metric]:.1f}",
                            best=f"{stop.best_score:.1f}@{stop.best_epoch}")

        run_early_stopping(stop, self.cfg.epochs, self._run_epoch, self._snapshot, after_epoch)
        bar.close()
        self.model.load_state_dict(stop.best_state)
        return {"best_epoch": stop.best_epoch, f"best_valid_{self.metric}": stop.best_score,
                "selection_metric": self.metric, "best_valid_score": stop.best_score,
                "epochs_run": stop.epoch, "train_seconds": self.train_seconds,
                "history": self.history, "resumed": resumed}


def write_json(path: Path, obj) -> None:
    from lantern.paths import atomic_write_text
    atomic_write_text(path, json.dumps(obj, indent=2, default=float))
