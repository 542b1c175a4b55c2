"""Turn dialogues with attached features into padded :class:`~lantern.models.base.Batch` es.

Feature vectors are standardised with statistics fitted on the training split only; the
statistics travel with the saved model so inference uses exactly the same transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lantern.data.dialogues import Dialogue
from lantern.errors import DataError
from lantern.models.base import Batch, normalise_vad


@dataclass
class FeatureSpec:
    """modality -> feature name (e.g. ``{"text": "text:minilm", "audio": "audio:iemocap8"}``)
    plus per-feature standardisation statistics."""

    modalities: dict[str, str]
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    #: modalities an utterance may lack (its clip has no face, an image has no voice): their
    #: vectors are then zeros and ``Batch.present`` says so; any other missing one is an error
    optional: tuple[str, ...] = ()
    #: the features were z-scored within each speaker before these statistics were fitted
    #: (``feature_norm: speaker``); whoever feeds the model must do the same
    #: (:func:`lantern.features.normalise.apply_feature_norm`)
    speaker_norm: bool = False

    @classmethod
    def fit(cls, modalities: dict[str, str], train: list[Dialogue],
            optional: tuple[str, ...] | list[str] = (),
            unscaled: tuple[str, ...] | list[str] = ()) -> "FeatureSpec":
        """``unscaled``: modalities fed as they are (mean 0, std 1), such as padded token
        embeddings, whose per-position statistics would turn padding into values and
        explode positions that few training texts reach."""
        optional = tuple(optional or ())
        unknown = sorted(set(optional) - set(modalities))
        if unknown:
            raise DataError(f"optional modalities {unknown} are not among the features {sorted(modalities)}",
                            field="optional_features")
        mean, std = {}, {}
        for modality, name in modalities.items():
            rows = [_vector(u, name) for d in train for u in d
                    if modality not in optional or name in u.features]
            if not rows:
                raise DataError(f"no training utterance has {name!r}", field=name)
            if modality in unscaled:
                mean[modality] = np.zeros(rows[0].shape[0], np.float32)
                std[modality] = np.ones(rows[0].shape[0], np.float32)
                continue
            stacked = np.stack(rows).astype(np.float64)
            # NaN marks a missing measurement: statistics ignore it, collate imputes the mean.
            with np.errstate(all="ignore"):
                m, sd = np.nanmean(stacked, 0), np.nanstd(stacked, 0)
            mean[modality] = np.nan_to_num(m).astype(np.float32)
            std[modality] = np.maximum(np.nan_to_num(sd), 1e-6).astype(np.float32)
        return cls(dict(modalities), mean, std, optional)

    def dims(self) -> dict[str, int]:
        return {m: int(v.shape[0]) for m, v in self.mean.items()}

    def to_config(self) -> dict:
        return {"modalities": self.modalities,
                "mean": {m: v.tolist() for m, v in self.mean.items()},
                "std": {m: v.tolist() for m, v in self.std.items()},
                **({"optional": list(self.optional)} if self.optional else {}),
                **({"speaker_norm": True} if self.speaker_norm else {})}

    @classmethod
    def from_config(cls, cfg: dict) -> "FeatureSpec":
        return cls(dict(cfg["modalities"]),
                   {m: np.asarray(v, np.float32) for m, v in cfg["mean"].items()},
                   {m: np.asarray(v, np.float32) for m, v in cfg["std"].items()},
                   tuple(cfg.get("optional", ())), bool(cfg.get("speaker_norm", False)))


def _vector(utterance, name: str) -> np.ndarray:
    if name not in utterance.features:
        raise DataError(f"utterance {utterance.id} has no feature {name!r}; "
                        f"it has {sorted(utterance.features)} (run feature extraction first)",
                        field=name)
    return np.asarray(utterance.features[name], dtype=np.float32)


def speaker_indices(dialogue: Dialogue) -> list[int]:
    order = {s: i for i, s in enumerate(dialogue.speakers)}
    return [order[u.speaker] for u in dialogue]


def collate(dialogues: list[Dialogue], spec: FeatureSpec,
            vad_scale: tuple[float, float] | None, n_classes: int | None = None) -> Batch:
    """Pad ``dialogues`` into a batch; with ``n_classes`` (training only: inference has no use
    for them), coarse labels (``meta["label_options"]``) become ``label_options``, loss
    weights (``meta["weight"]``) ``weights``, reason captions (``meta["reason"]``) ``reasons``
    and multi-label targets (``Utterance.labels``) ``targets``."""
    if not dialogues:
        raise ValueError("cannot collate an empty list of dialogues")
    B, T = len(dialogues), max(len(d) for d in dialogues)
    feats = {m: torch.zeros(B, T, spec.mean[m].shape[0]) for m in spec.modalities}
    mask = torch.zeros(B, T, dtype=torch.bool)
    speakers = torch.zeros(B, T, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    vad = torch.full((B, T, 3), float("nan"))
    present = {m: torch.zeros(B, T, dtype=torch.bool) for m in spec.optional}
    for b, d in enumerate(dialogues):
        n = len(d)
        mask[b, :n] = True
        speakers[b, :n] = torch.tensor(speaker_indices(d))
        for m, name in spec.modalities.items():
            if m in present:
                for t, u in enumerate(d):
                    if name in u.features:
                        present[m][b, t] = True
                        x = (_vector(u, name) - spec.mean[m]) / spec.std[m]
                        feats[m][b, t] = torch.from_numpy(np.nan_to_num(x))
                continue
            x = np.stack([_vector(u, name) for u in d])
            feats[m][b, :n] = torch.from_numpy(np.nan_to_num((x - spec.mean[m]) / spec.std[m]))
        for t, u in enumerate(d):
            if u.label is not None:
                labels[b, t] = u.label
            if u.vad is not None and vad_scale is not None:
                vad[b, t] = torch.tensor(u.vad, dtype=torch.float32)
    if vad_scale is not None:
        vad = normalise_vad(vad, vad_scale)
    options = None
    if n_classes is not None and any("label_options" in u.meta for d in dialogues for u in d):
        options = torch.zeros(B, T, n_classes, dtype=torch.bool)
        for b, d in enumerate(dialogues):
            for t, u in enumerate(d):
                if u.label is None and u.meta.get("label_options"):
                    options[b, t, list(u.meta["label_options"])] = True
    weights = None
    if n_classes is not None and any("weight" in u.meta for d in dialogues for u in d):
        weights = torch.ones(B, T)
        for b, d in enumerate(dialogues):
            weights[b, :len(d)] = torch.tensor([float(u.meta.get("weight", 1.0)) for u in d])
    reasons = None
    if n_classes is not None and any(u.meta.get("reason") for d in dialogues for u in d):
        reasons = [[u.meta.get("reason") or None for u in d] for d in dialogues]
    return Batch(feats, mask, speakers, labels, vad, [d.id for d in dialogues],
                 [[u.id for u in d] for d in dialogues], options, weights,
                 [[u.text for u in d] for d in dialogues], reasons, present or None,
                 _targets(dialogues, T, n_classes) if n_classes is not None else None)


def _targets(dialogues: list[Dialogue], T: int, n_classes: int) -> torch.Tensor | None:
    """(B, T, K) multi-hot of ``Utterance.labels``, NaN rows where an utterance has none;
    None when no utterance of the batch has a multi-label target."""
    if not any(u.labels is not None for d in dialogues for u in d):
        return None
    targets = torch.full((len(dialogues), T, n_classes), float("nan"))
    for b, d in enumerate(dialogues):
        for t, u in enumerate(d):
            if u.labels is not None:
                targets[b, t] = 0.0
                targets[b, t, list(u.labels)] = 1.0
    return targets
