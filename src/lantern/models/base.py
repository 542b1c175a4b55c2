"""Shared pieces of every vanilla model: the batch layout, the multi-task heads, save/load.

A model maps a padded batch of dialogues to per-utterance class logits and
valence/arousal/dominance scores (in the normalised space [-1, 1] used for training;
:func:`lantern.models.base.denormalise_vad` maps them back to the dataset's scale).
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lantern.paths import atomic_write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class Batch:
    """Padded dialogues. B dialogues, T = longest dialogue.

    features: modality -> (B, T, D) float; mask: (B, T) bool, True on real utterances;
    speakers: (B, T) long, speaker index within the dialogue (order of first appearance);
    labels: (B, T) long, -100 where unknown; vad: (B, T, 3) normalised, NaN where unknown;
    label_options: (B, T, K) bool, the classes a coarse label allows (an utterance of another
    corpus whose class is one of several here: :mod:`lantern.data.mix`), or None when no
    utterance of the batch has one; weights: (B, T) float, each utterance's weight in the
    classification loss (``meta["weight"]``, a mix's per-corpus weight), or None when all are 1;
    texts: (B, T) the utterances' words, for models that read them (Emotion-LLaMA's prompt);
    reasons: (B, T) reason captions (``meta["reason"]``, None where absent), training only,
    or None when no utterance of the batch has one; present: modality -> (B, T) bool for the
    spec's optional modalities (False: the utterance lacks it, its features are zeros), or None;
    targets: (B, T, K) float multi-hot of a multi-label target (``Utterance.labels``), NaN on
    utterances without one, training only, or None for single-label data.
    """

    features: dict[str, torch.Tensor]
    mask: torch.Tensor
    speakers: torch.Tensor
    labels: torch.Tensor
    vad: torch.Tensor
    dialogue_ids: list[str] = field(default_factory=list)
    utterance_ids: list[list[str]] = field(default_factory=list)
    label_options: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    texts: list[list[str]] = field(default_factory=list)
    reasons: list[list[str | None]] | None = None
    present: dict[str, torch.Tensor] | None = None
    targets: torch.Tensor | None = None

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=1)


@dataclass
class ModelOutput:
    logits: torch.Tensor            # (B, T, K)
    vad: torch.Tensor               # (B, T, 3), normalised space
    aux_loss: torch.Tensor | None = None   # model-specific extra loss (e.g. SDT self-distillation)
    #: an ensemble's members' own outputs: each is trained on its own loss (models/ensemble.py)
    members: list["ModelOutput"] | None = None


class MultiTaskHeads(nn.Module):
    """p_i = softmax(W_c h_i), d_i = W_d h_i (spec §1)."""

    def __init__(self, hidden: int, n_classes: int, n_dims: int = 3, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)
        self.regressor = nn.Linear(hidden, n_dims)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.dropout(h)
        return self.classifier(h), torch.tanh(self.regressor(h))


def library_versions() -> dict[str, str]:
    import numpy

    import lantern
    return {"lantern": lantern.__version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


class VanillaModel(nn.Module):
    """Base class: subclasses take ``input_dims`` (modality -> feature size), ``n_classes``,
    ``n_speakers`` and their own keyword hyper-parameters, and implement ``forward(batch)``."""

    model_type: str = "base"

    def __init__(self, input_dims: dict[str, int], n_classes: int, n_speakers: int = 9, **hparams: Any):
        super().__init__()
        if not input_dims:
            raise ValueError("a model needs at least one input modality")
        self.input_dims = dict(input_dims)
        self.n_classes = n_classes
        self.n_speakers = n_speakers
        self.hparams = dict(hparams)

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def modalities_read(cls, hparams: dict[str, Any], modalities: list[str]) -> list[str]:
        """Of a config's ``features:`` modalities, those a model built with ``hparams`` reads
        (the others are neither extracted nor asked of ``lantern predict``); default: all."""
        return list(modalities)

    def config(self) -> dict[str, Any]:
        """The architecture: enough to rebuild the network before loading its weights."""
        return {"model_type": self.model_type, "input_dims": self.input_dims,
                "n_classes": self.n_classes, "n_speakers": self.n_speakers,
                "hparams": self.hparams}

    def save_pretrained(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write config.json (architecture, ``metadata``, library versions) and
        model.safetensors. :class:`lantern.models.bundle.ModelBundle` supplies the metadata
        (label set, feature spec, ...) a model needs to be used."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        tmp = directory / f".{WEIGHTS_NAME}.tmp"
        save_file(state, str(tmp), metadata={"model_type": self.model_type})
        tmp.replace(directory / WEIGHTS_NAME)
        atomic_write_text(directory / CONFIG_NAME, json.dumps(
            {**self.config(), **(metadata or {}), "versions": library_versions()}, indent=2, default=str))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "VanillaModel":
        """The network of any registered vanilla model saved by :meth:`save_pretrained`
        (:meth:`lantern.models.bundle.ModelBundle.load` reads the rest)."""
        from safetensors.torch import load_file

        from lantern.models import MODELS

        directory = Path(directory)
        cfg = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        model_cls = MODELS.get(cfg["model_type"])
        model = model_cls(cfg["input_dims"], cfg["n_classes"], cfg["n_speakers"], **cfg["hparams"])
        check = getattr(model, "check_saved_config", None)
        if callable(check):   # e.g. Emotion-LLaMA: the base LLM must be the one it was trained on
            check(cfg, directory)
        model.load_state_dict(load_file(str(directory / WEIGHTS_NAME)))
        model.eval()
        return model


def normalise_vad(v: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
    lo, hi = scale
    return (v - (lo + hi) / 2) / ((hi - lo) / 2)


def denormalise_vad(v: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
    lo, hi = scale
    return v * ((hi - lo) / 2) + (lo + hi) / 2
