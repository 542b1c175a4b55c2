"""Mergers: from t LLM answers + the vanilla prediction to one distribution (spec §4).

Inputs for one split are a :class:`FusionInputs` (numpy arrays; n utterances, t fields per
utterance, K classes). Every merger has the same small API::

    merger.fit(inputs, split_name)        # no-op for the fixed ones; refuses "test"
    merger.predict_proba(inputs)          # (n, K), rows sum to 1
    merger.save_pretrained(directory)     # config.json (+ model.safetensors if learned)
    Merger.from_pretrained(directory)     # any saved merger, type read from config.json

``fit`` takes the name of the split its data comes from and raises
:class:`SplitLeakageError` for ``"test"``: the learned mergers are fitted on the
validation split's LLM answers (optionally out-of-fold training answers), never on the
split they are evaluated on.

The learned mergers (``position``, ``attention``) are trained on the labelled utterances
with cross-entropy on log P, AdamW, and early stopping on a held-out fraction of the
fitting data (whole dialogues are held out when dialogue ids are known, because
utterances of one dialogue are correlated). With ``guard=True`` the trained merger is
compared with its fallback on that held-out part and replaced by the fallback when it
does not beat it (by default: lower NLL and strictly higher accuracy);
``merger.state["guard"]`` records both sides' held-out scores and the decision. The same
held-out part picks the epoch and judges the guard, which makes the guard somewhat
optimistic; requiring a strict accuracy gain on top of the NLL is what keeps it from
passing on noise.

>>> import numpy as np
>>> x = FusionInputs(vanilla=np.array([[0.6, 0.4]]), vad=np.array([[3.0, 3.0, 3.0]]),
...                  answers=np.array([[[0.2, 0.8], [0.4, 0.6]]]),
...                  position=np.array([[1.0, 0.0]]), n_before=np.array([[1, 0]]),
...                  n_after=np.array([[0, 1]]), clipped=np.array([[False, False]]))
>>> UniformMerger().predict_proba(x).round(3)
array([[0.3, 0.7]])
>>> VanillaOnlyMerger().predict_proba(x).round(3)
array([[0.6, 0.4]])
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, fields as dataclass_fields
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lantern.errors import DataError
from lantern.models.base import CONFIG_NAME, WEIGHTS_NAME, library_versions
from lantern.paths import atomic_write_text

__all__ = ["FusionInputs", "SplitLeakageError", "check_fit_split", "answer_record",
           "group_answer_rows", "central_field_index", "Merger", "VanillaOnlyMerger",
           "LLMOnlyMerger", "UniformMerger", "ProductMerger", "PositionMerger", "AttentionMerger"]

_SUM_TOLERANCE = 1e-3   # probability rows may drift this much from 1 (rounding) before we object


# ----------------------------------------------------------------------------- inputs

def _as_probs(a: Any, name: str, ndim: int) -> np.ndarray:
    """Float64 array of probability rows (last axis), validated and renormalised exactly."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d; got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise ValueError(f"{name} holds negative or non-finite probabilities")
    s = a.sum(axis=-1, keepdims=True)
    if a.size and np.abs(s - 1.0).max() > _SUM_TOLERANCE:
        raise ValueError(f"{name} rows must sum to 1 (within {_SUM_TOLERANCE}); "
                         f"worst row sums to {float(s.flat[np.abs(s - 1).argmax()]):.4f}")
    return _rescale_drifting_rows(a)


def _rescale_drifting_rows(a: np.ndarray) -> np.ndarray:
    # Rescale only rows whose sum is off by more than rounding, so that normalising is
    # idempotent: validated inputs, their subsets and vanilla-only outputs keep exact values.
    s = a.sum(axis=-1, keepdims=True)
    return np.where(np.abs(s - 1.0) > 1e-12, a / np.where(s > 0, s, 1.0), a)


@dataclass
class FusionInputs:
    """Everything a merger sees for one split: n utterances, t fields each, K classes.

    vanilla (n, K): vanilla class probabilities p_i. vad (n, 3): vanilla dimension scores
    d_i on the dataset's scale (None: unknown; the mergers normalise them). answers
    (n, t, K): the LLM's adjusted probabilities q_{i,r} from each of the t receptive fields
    of the utterance, ordered by field id. answer_valid (n, t): False where the LLM failed
    and the vanilla probabilities were substituted (still a usable answer). position,
    n_before, n_after, clipped (n, t): the utterance's relative position in [0, 1] in that
    field, the context before/after it there, and whether the field was clipped.
    labels (n,): gold class index, -1 where unknown (None: all unknown).
    classes, dialogue_ids, utterance_ids: optional names (length K, n, n).
    """

    vanilla: np.ndarray
    vad: np.ndarray | None
    answers: np.ndarray
    position: np.ndarray
    n_before: np.ndarray
    n_after: np.ndarray
    clipped: np.ndarray
    answer_valid: np.ndarray | None = None
    labels: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    dialogue_ids: tuple[str, ...] = ()
    utterance_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.vanilla = _as_probs(self.vanilla, "vanilla", 2)
        n, k = self.vanilla.shape
        self.answers = _as_probs(self.answers, "answers", 3)
        if self.answers.shape[0] != n or self.answers.shape[2] != k:
            raise ValueError(f"answers must be (n={n}, t, K={k}); got {self.answers.shape}")
        t = self.answers.shape[1]
        if t < 1:
            raise ValueError("every utterance needs at least one LLM answer (t >= 1)")
        if self.vad is None:
            self.vad = np.full((n, 3), np.nan)
        self.vad = np.asarray(self.vad, dtype=np.float64)
        if self.vad.shape != (n, 3):
            raise ValueError(f"vad must be (n={n}, 3); got {self.vad.shape}")
        if self.answer_valid is None:
            self.answer_valid = np.ones((n, t), dtype=bool)
        for name in ("position", "n_before", "n_after", "clipped", "answer_valid"):
            a = np.asarray(getattr(self, name))
            if a.shape != (n, t):
                raise ValueError(f"{name} must be (n={n}, t={t}); got {a.shape}")
            dtype = bool if name in ("clipped", "answer_valid") else np.float64
            setattr(self, name, a.astype(dtype))
        if not np.isfinite(self.position).all() or (self.position < 0).any() \
                or (self.position > 1).any():
            raise ValueError("position (relative position in the field) must lie in [0, 1]")
        if (self.n_before < 0).any() or (self.n_after < 0).any():
            raise ValueError("n_before and n_after count utterances and cannot be negative")
        labels = np.full(n, -1) if self.labels is None else np.asarray(self.labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must be (n={n},); got {labels.shape}")
        self.labels = labels.astype(np.int64)
        if ((self.labels < -1) | (self.labels >= k)).any():
            raise ValueError(f"labels must be class indices in range({k}) or -1 (unknown)")
        self.classes = tuple(self.classes)
        if self.classes and len(self.classes) != k:
            raise ValueError(f"{len(self.classes)} class names for {k} classes")
        for name in ("dialogue_ids", "utterance_ids"):
            ids = tuple(getattr(self, name))
            if ids and len(ids) != n:
                raise ValueError(f"{name} has {len(ids)} entries for {n} utterances")
            setattr(self, name, ids)

    @property
    def n(self) -> int:
        return self.vanilla.shape[0]

    @property
    def t(self) -> int:
        return self.answers.shape[1]

    @property
    def n_classes(self) -> int:
        return self.vanilla.shape[1]

    def subset(self, index: Sequence[int] | np.ndarray) -> "FusionInputs":
        """The utterances at ``index`` (integer positions), as new inputs."""
        idx = np.asarray(index, dtype=np.int64)
        kw = {}
        for f in dataclass_fields(self):
            v = getattr(self, f.name)
            if f.name == "classes":
                kw[f.name] = v
            elif isinstance(v, tuple):
                kw[f.name] = tuple(v[i] for i in idx) if v else ()
            else:
                kw[f.name] = v[idx]
        return FusionInputs(**kw)

    @classmethod
    def from_records(cls, vanilla_rows: Iterable[Mapping[str, Any]],
                     answers_by_utterance: Mapping[Any, Sequence[Mapping[str, Any]]],
                     classes: Sequence[str] | None = None) -> "FusionInputs":
        """Build inputs from vanilla prediction rows and per-utterance LLM answer records.

        ``vanilla_rows``: the rows of :mod:`lantern.training.predictions` (``dialogue_id``,
        ``utterance_id``, ``label``, ``probs`` {class: p}, ``vad`` [v, a, d]).
        ``answers_by_utterance``: for each utterance, keyed by ``(dialogue_id,
        utterance_id)`` (or by ``utterance_id`` alone when that is unique), the list of
        its t answer records (see :func:`answer_record`)::

            {"field_id": 3, "relative_position": 0.5, "n_before": 1, "n_after": 1,
             "clipped": false, "probs": {"hap": 0.1, ...}, "valid": true}

        Answers are ordered by ``field_id``. ``classes`` defaults to the key order of the
        first row's ``probs``. Missing utterances, classes or keys, and utterances with a
        different number of answers, raise :class:`lantern.errors.DataError`.
        """
        rows = list(vanilla_rows)
        if not rows:
            raise DataError("no vanilla prediction rows", field="vanilla_rows")
        classes = tuple(classes) if classes is not None else tuple(rows[0]["probs"])
        k = len(classes)

        def probs_of(d: Mapping[str, Any], where: str) -> list[float]:
            p = d.get("probs")
            if not isinstance(p, Mapping):
                raise DataError(f"{where}: 'probs' must be a {{class: probability}} object",
                                field="probs")
            missing = [c for c in classes if c not in p]
            if missing:
                raise DataError(f"{where}: probs lack classes {missing}", field="probs")
            vals = [float(p[c]) for c in classes]
            total = sum(vals)
            if not all(math.isfinite(v) and v >= 0 for v in vals) or total <= 0:
                raise DataError(f"{where}: probs must be non-negative with a positive sum",
                                field="probs")
            return [v / total for v in vals]  # the LLM stage renormalises too; be exact

        vanilla, vad, labels, dids, uids = [], [], [], [], []
        answers, valid, pos, nb, na, clipped = [], [], [], [], [], []
        t = None
        for row in rows:
            did, uid = str(row.get("dialogue_id", "")), str(row["utterance_id"])
            where = f"utterance {did}/{uid}"
            vanilla.append(probs_of(row, where))
            v = row.get("vad")
            vad.append([float(x) for x in v] if v is not None else [math.nan] * 3)
            label = row.get("label")
            if label is not None and label not in classes:
                raise DataError(f"{where}: unknown label {label!r}; classes {list(classes)}",
                                field="label")
            labels.append(classes.index(label) if label is not None else -1)
            dids.append(did)
            uids.append(uid)
            recs = answers_by_utterance.get((did, uid))
            if recs is None:
                recs = answers_by_utterance.get(uid)
            if not recs:
                raise DataError(f"{where}: no LLM answers", field="answers")
            if t is None:
                t = len(recs)
            elif len(recs) != t:
                raise DataError(f"{where}: {len(recs)} LLM answers but earlier utterances "
                                f"have {t}; every utterance must lie in exactly t fields",
                                field="answers")
            try:
                recs = sorted(recs, key=lambda r: int(r["field_id"]))
                answers.append([probs_of(r, f"{where}, field {r['field_id']}") for r in recs])
                pos.append([float(r["relative_position"]) for r in recs])
                nb.append([int(r["n_before"]) for r in recs])
                na.append([int(r["n_after"]) for r in recs])
                clipped.append([bool(r["clipped"]) for r in recs])
                valid.append([bool(r.get("valid", True)) for r in recs])
            except KeyError as e:
                raise DataError(f"{where}: an answer record lacks {e.args[0]!r}",
                                field=str(e.args[0])) from None
        try:
            return cls(vanilla=np.array(vanilla).reshape(-1, k), vad=np.array(vad),
                       answers=np.array(answers).reshape(len(rows), -1, k),
                       answer_valid=np.array(valid), position=np.array(pos),
                       n_before=np.array(nb), n_after=np.array(na), clipped=np.array(clipped),
                       labels=np.array(labels), classes=classes, dialogue_ids=tuple(dids),
                       utterance_ids=tuple(uids))
        except ValueError as e:
            raise DataError(str(e), field="answers") from e


def answer_record(membership: Any, probs: Mapping[str, float], valid: bool = True,
                  utterance_id: str | None = None) -> dict[str, Any]:
    """The per-answer record :meth:`FusionInputs.from_records` reads, from a
    :class:`lantern.receptive_fields.Membership` and the LLM's probabilities for the
    utterance in that field (``valid=False`` when they are the vanilla substitute)."""
    rec = membership.as_dict()
    rec.update(probs={c: float(p) for c, p in probs.items()}, valid=bool(valid))
    if utterance_id is not None:
        rec["utterance_id"] = utterance_id
    return rec


def group_answer_rows(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[dict]]:
    """Group flat answer records (each with ``dialogue_id`` and ``utterance_id``, e.g. one
    JSONL line per (utterance, field)) into the mapping ``from_records`` takes."""
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((str(r.get("dialogue_id", "")), str(r["utterance_id"])), []).append(dict(r))
    return out


def central_field_index(position: np.ndarray, n_before: np.ndarray,
                        n_after: np.ndarray) -> np.ndarray:
    """(n,) index of the field in which each utterance is most central.

    Closest relative position to 0.5; ties (e.g. positions 1/3 and 2/3) go to the field
    with more context, then to the one with more context *before* the utterance (what
    led up to an emotion is the usual cause), then to the lower field id.

    >>> central_field_index(np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]]),
    ...                     np.array([[2, 1, 0], [0, 1, 0]]), np.array([[0, 1, 2], [1, 0, 0]]))
    array([1, 1])
    """
    # Rounded so that 2/3 - 0.5 and 0.5 - 1/3 count as the tie they are.
    dist = np.round(np.abs(np.asarray(position, dtype=np.float64) - 0.5), 9)
    best = dist == dist.min(axis=1, keepdims=True)
    context = np.where(best, n_before + n_after, -1)
    best &= context == context.max(axis=1, keepdims=True)
    before = np.where(best, n_before, -1)
    best &= before == before.max(axis=1, keepdims=True)
    return best.argmax(axis=1)


# ----------------------------------------------------------------------------- base

class SplitLeakageError(ValueError):
    """A merger was asked to fit on the split it will be evaluated on (test)."""


def check_fit_split(split_name: str) -> str:
    """The split name a merger may be fitted on; raises for ``"test"`` (any case)."""
    if not isinstance(split_name, str) or not split_name.strip():
        raise ValueError("fit needs split_name, the split the fitting data comes from "
                         "(e.g. 'validation')")
    if split_name.strip().lower() == "test":
        raise SplitLeakageError(
            "refusing to fit a merger on the test split: fit it on the validation split's "
            "LLM answers (or out-of-fold training answers) and only evaluate on test")
    return split_name.strip()


def _normalise_rows(p: np.ndarray) -> np.ndarray:
    return _rescale_drifting_rows(np.clip(np.asarray(p, dtype=np.float64), 0.0, None))


class Merger:
    """Base class. ``options`` are the constructor's keyword arguments (saved in
    config.json); ``state`` is what fitting learned or decided (also saved)."""

    name: ClassVar[str] = "base"
    learned: ClassVar[bool] = False

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

    # -- fitting / prediction
    def fit(self, inputs: FusionInputs, split_name: str) -> "Merger":
        """Fit on ``inputs`` from split ``split_name`` (never ``"test"``); returns self."""
        split = check_fit_split(split_name)
        self.state = {"fit_split": split, "n_fit": int((inputs.labels >= 0).sum()),
                      "n_classes": inputs.n_classes, "classes": list(inputs.classes)}
        self._fit(inputs)
        return self

    def _fit(self, inputs: FusionInputs) -> None:
        """Fixed mergers learn nothing."""

    def predict_proba(self, inputs: FusionInputs) -> np.ndarray:
        """(n, K) fused class probabilities; every row sums to 1."""
        self._check_compatible(inputs)
        return _normalise_rows(self._predict_proba(inputs))

    def _predict_proba(self, inputs: FusionInputs) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def predict(self, inputs: FusionInputs) -> np.ndarray:
        """(n,) argmax class index."""
        return self.predict_proba(inputs).argmax(axis=1)

    def _check_compatible(self, inputs: FusionInputs) -> None:
        k = self.state.get("n_classes")
        if k is not None and k != inputs.n_classes:
            raise ValueError(f"merger was fitted on {k} classes; inputs have {inputs.n_classes}")
        names = self.state.get("classes")
        if names and inputs.classes and list(inputs.classes) != list(names):
            raise ValueError(f"merger was fitted on classes {names}; inputs have "
                             f"{list(inputs.classes)}")

    # -- persistence
    def config(self) -> dict[str, Any]:
        return {"merger": self.name, "options": self.options, "state": self.state}

    def _weights(self) -> dict[str, torch.Tensor] | None:
        return None

    def _load_weights(self, cfg: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        pass

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json (options, fitted state, library versions) and, for learned
        mergers that have been fitted, model.safetensors."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = self._weights()
        if weights is not None:
            tmp = directory / f".{WEIGHTS_NAME}.tmp"
            save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp),
                      metadata={"merger": self.name})
            tmp.replace(directory / WEIGHTS_NAME)
        else:
            # An unfitted or fixed merger must not pick up stale weights from a reused folder.
            (directory / WEIGHTS_NAME).unlink(missing_ok=True)
        atomic_write_text(directory / CONFIG_NAME, json.dumps(
            {**self.config(), "versions": library_versions()}, indent=2, default=str))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "Merger":
        """Load a merger written by :meth:`save_pretrained`; on a subclass, the saved
        merger must be of that class."""
        from safetensors.torch import load_file

        from lantern.fusion import MERGERS

        directory = Path(directory)
        cfg = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        merger_cls = MERGERS.get(cfg["merger"])
        if not issubclass(merger_cls, cls):
            raise ValueError(f"{directory} holds a {cfg['merger']!r} merger, not a {cls.name!r}")
        merger = merger_cls(**cfg.get("options", {}))
        merger.state = cfg.get("state", {})
        path = directory / WEIGHTS_NAME
        if merger.learned and path.exists():
            merger._load_weights(cfg, load_file(str(path)))
        return merger

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


# ----------------------------------------------------------------------- fixed mergers

class VanillaOnlyMerger(Merger):
    """The vanilla model's probabilities, unchanged (the baseline every gain is against)."""

    name = "vanilla-only"

    def _predict_proba(self, inputs: FusionInputs) -> np.ndarray:
        return inputs.vanilla.copy()


class LLMOnlyMerger(Merger):
    """The LLM's answer from one field per utterance: the one where it is most central
    (:func:`central_field_index`), i.e. what a t = 1 pipeline with the most context would
    give, without any vanilla input at fusion time."""

    name = "llm-only"

    def _predict_proba(self, inputs: FusionInputs) -> np.ndarray:
        slot = central_field_index(inputs.position, inputs.n_before, inputs.n_after)
        return inputs.answers[np.arange(inputs.n), slot].copy()


class UniformMerger(Merger):
    """The mean of the t answers (failed answers count: they are the vanilla substitute)."""

    name = "uniform"

    def _predict_proba(self, inputs: FusionInputs) -> np.ndarray:
        return inputs.answers.mean(axis=1)


class ProductMerger(Merger):
    """The geometric mean of the vanilla prediction and the mean of the t answers,
    P ∝ p^w · (mean_r q_r)^(1-w) with ``w = 0.5`` fixed in advance (the weight of the probe
    that motivated log-probability answers, not tuned here): nothing is learned, so it shows
    what the LLM's answers add to the vanilla model with no fitting at all.

    >>> x = FusionInputs(vanilla=np.array([[0.8, 0.2]]), vad=None, answers=np.array([[[0.2, 0.8]]]),
    ...                  position=np.zeros((1, 1)), n_before=np.zeros((1, 1), int),
    ...                  n_after=np.zeros((1, 1), int), clipped=np.zeros((1, 1), bool))
    >>> ProductMerger().predict_proba(x).round(3)
    array([[0.5, 0.5]])
    """

    name = "product"

    def __init__(self, vanilla_weight: float = 0.5):
        super().__init__()
        if not 0.0 <= float(vanilla_weight) <= 1.0:
            raise ValueError(f"vanilla_weight must be in [0, 1]; got {vanilla_weight}")
        self.options = {"vanilla_weight": float(vanilla_weight)}

    def _predict_proba(self, inputs: FusionInputs) -> np.ndarray:
        w = self.options["vanilla_weight"]
        log_p = (w * np.log(np.clip(inputs.vanilla, 1e-12, None))
                 + (1 - w) * np.log(np.clip(inputs.answers.mean(axis=1), 1e-12, None)))
        p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------- learned mergers

def _entropy(p: np.ndarray) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=-1)


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


class _SlotScorer(nn.Module):
    """Scores e_{i,r} of each slot's feature vector; softmax over slots gives α.

    ``hidden=0`` makes it linear. The output layer starts at zero so every answer slot
    starts with the same score, and the optional vanilla slot (the last one) gets an extra
    learned bias that starts large: the merger starts at (nearly) the vanilla model and
    only moves away from it as far as the data pushes it.
    """

    def __init__(self, n_features: int, hidden: int, vanilla_bias: float | None,
                 n_classes: int | None = None):
        super().__init__()
        # Log-linear pooling only: a sharpness (log beta, starts at 1) and a per-class bias
        # (a learned calibration, starts at 0).
        self.log_linear = n_classes is not None
        if self.log_linear:
            self.log_beta = nn.Parameter(torch.zeros(()))
            self.class_bias = nn.Parameter(torch.zeros(int(n_classes)))
        if hidden > 0:
            self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 1))
        else:
            self.mlp = nn.Sequential(nn.Linear(n_features, 1, bias=False))
        nn.init.zeros_(self.mlp[-1].weight)
        if self.mlp[-1].bias is not None:
            nn.init.zeros_(self.mlp[-1].bias)
        self.has_vanilla_slot = vanilla_bias is not None
        if self.has_vanilla_slot:
            self.vanilla_bias = nn.Parameter(torch.tensor(float(vanilla_bias)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:   # (n, S, F) -> (n, S)
        e = self.mlp(feats).squeeze(-1)
        if self.has_vanilla_slot:
            e = torch.cat([e[:, :-1], e[:, -1:] + self.vanilla_bias], dim=1)
        return e


_GUARD_METRICS = ("nll+accuracy", "nll", "accuracy", "weighted_f1")
#: how the slots' distributions are combined: a mixture Σ α q (``linear``) or a weighted
#: product ∝ Π q^(β α) with a class bias (``log-linear``)
POOLINGS = ("linear", "log-linear")


class _LearnedMerger(Merger):
    """Shared training loop: softmax weights over slots, P_i = Σ_r α_{i,r} q_{i,r}.

    Subclasses define the slots and their features (:meth:`_slots`), the scorer
    (:meth:`_build_net`) and the fallback the guard compares with (:meth:`_fallback`).

    Options: ``hidden`` (MLP width; 0 = linear scorer), ``lr``, ``weight_decay`` (AdamW,
    on weight matrices only), ``max_epochs`` (full-batch steps; 0 keeps the
    initialisation), ``patience`` (early stopping on the held-out NLL), ``holdout``
    (fraction of the labelled fitting utterances held out, by dialogue), ``guard`` and
    ``guard_metric``: ``"nll+accuracy"`` (default: lower held-out NLL *and* strictly
    higher held-out accuracy than the fallback), ``"nll"``, ``"accuracy"`` or
    ``"weighted_f1"`` (strictly higher); ``seed``; ``vad_scale`` (the dataset's
    dimension-score range, mapped to [-1, 1]); ``pooling`` (:data:`POOLINGS`);
    ``guard_folds`` (> 1: the guard and the reported hold-out scores come from k-fold
    out-of-fold predictions over all labelled fitting dialogues instead of one hold-out).
    """

    learned = True
    fallback_name: ClassVar[str] = ""

    def __init__(self, *, hidden: int = 0, lr: float = 0.01, weight_decay: float = 1e-3,
                 max_epochs: int = 400, patience: int = 40, holdout: float = 0.2,
                 guard: bool = True, guard_metric: str = "nll+accuracy", seed: int = 0,
                 vad_scale: Sequence[float] = (1.0, 5.0), pooling: str = "linear",
                 guard_folds: int = 0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
        if not 0.0 < holdout < 1.0:
            raise ValueError(f"holdout must be a fraction in (0, 1); got {holdout}")
        if guard_metric not in _GUARD_METRICS:
            raise ValueError(f"guard_metric must be one of {_GUARD_METRICS}; got {guard_metric!r}")
        if int(max_epochs) < 0 or int(patience) < 1 or int(hidden) < 0:
            raise ValueError("max_epochs must be >= 0, patience >= 1 and hidden >= 0")
        lo, hi = (float(v) for v in vad_scale)
        if not hi > lo:
            raise ValueError(f"vad_scale must be (low, high) with high > low; got {vad_scale}")
        self.options = {"hidden": int(hidden), "lr": float(lr),
                        "weight_decay": float(weight_decay), "max_epochs": int(max_epochs),
                        "patience": int(patience), "holdout": float(holdout),
                        "guard": bool(guard), "guard_metric": guard_metric, "seed": int(seed),
                        "vad_scale": [lo, hi], "pooling": pooling, "guard_folds": int(guard_folds)}
        self.net: _SlotScorer | None = None

    # -- subclass hooks
    def _slots(self, x: FusionInputs) -> tuple[np.ndarray, np.ndarray]:
        """(features (n, S, F), slot distributions (n, S, K))."""
        raise NotImplementedError  # pragma: no cover

    def _build_net(self, n_features: int) -> _SlotScorer:
        raise NotImplementedError  # pragma: no cover

    def _fallback(self, x: FusionInputs) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def _fallback_weights(self, n: int, n_slots: int) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    # -- training
    def _holdout_split(self, x: FusionInputs) -> tuple[np.ndarray, np.ndarray]:
        labelled = np.flatnonzero(x.labels >= 0)
        groups = (np.array([x.dialogue_ids[i] for i in labelled], dtype=object)
                  if x.dialogue_ids else labelled.astype(object))
        unique = sorted(set(groups.tolist()), key=str)
        if len(unique) < 2 and len(labelled) >= 2:
            # One dialogue only (a small user set, a --limit 1 run): hold out utterances
            # instead; neighbouring turns then share context, so the guard is optimistic.
            groups = labelled.astype(object)
            unique = sorted(set(groups.tolist()), key=str)
        if len(unique) < 2:
            raise ValueError(f"{self.name} needs labelled utterances from at least two "
                             f"{'dialogues' if x.dialogue_ids else 'utterances'} to hold some "
                             f"out for early stopping; got {len(unique)}")
        rng = np.random.default_rng(self.options["seed"])
        order = [unique[i] for i in rng.permutation(len(unique))]
        target = self.options["holdout"] * len(labelled)
        held, count = set(), 0
        sizes = {g: 0 for g in unique}
        for g in groups.tolist():
            sizes[g] += 1
        for g in order[:-1]:       # at least one group stays for training
            if count >= target and held:
                break
            held.add(g)
            count += sizes[g]
        is_held = np.array([g in held for g in groups.tolist()])
        return labelled[~is_held], labelled[is_held]

    def _log_proba(self, feats: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        log_alpha = torch.log_softmax(self.net(feats), dim=1)            # (n, S)
        log_q = torch.log(q.clamp_min(1e-12))
        if self.net.log_linear:
            # log P ∝ β Σ_r α_r log q_r + b: a weighted product of the answers (agreement
            # sharpens, one confident dissent does not dominate) with a learned class bias.
            z = torch.exp(self.net.log_beta) * (log_alpha.exp().unsqueeze(-1) * log_q).sum(1)
            return torch.log_softmax(z + self.net.class_bias, dim=-1)
        # log P = logsumexp_r(log α_r + log q_r): stable where P is tiny.
        return torch.logsumexp(log_alpha.unsqueeze(-1) + log_q, dim=1)

    def _n_classes_if_log_linear(self) -> int | None:
        return int(self.state["n_classes"]) if self.options.get("pooling") == "log-linear" else None

    def _fit(self, x: FusionInputs) -> None:
        opts = self.options
        train_idx, hold_idx = self._holdout_split(x)
        feats_np, q_np = self._slots(x)
        feats = torch.from_numpy(feats_np).float()
        q = torch.from_numpy(q_np).float()
        y = torch.from_numpy(x.labels)
        tr, ho = torch.from_numpy(train_idx), torch.from_numpy(hold_idx)
        # Seed a private RNG stream: fitting is reproducible and leaves global state alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opts["seed"])
            self.net = self._build_net(feats.shape[-1])
        # Decay only weight matrices: decaying the vanilla-slot bias would pull the merger
        # away from the vanilla model, the opposite of the prior we want.
        decay = [p for n, p in self.net.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.net.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": opts["weight_decay"]},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=opts["lr"])

        def loss_on(idx: torch.Tensor) -> torch.Tensor:
            return nn.functional.nll_loss(self._log_proba(feats[idx], q[idx]), y[idx])

        with torch.no_grad():
            best_loss = float(loss_on(ho))
        best_state, best_epoch, bad, epoch = copy.deepcopy(self.net.state_dict()), 0, 0, 0
        for epoch in range(1, opts["max_epochs"] + 1):
            # Full batch: the fitting split is small (a validation set), so this is both the
            # fastest and the most deterministic choice.
            opt.zero_grad()
            loss = loss_on(tr)
            loss.backward()
            opt.step()
            with torch.no_grad():
                hold_loss = float(loss_on(ho))
            if hold_loss < best_loss - 1e-6:
                best_loss, best_state, best_epoch, bad = (
                    hold_loss, copy.deepcopy(self.net.state_dict()), epoch, 0)
            else:
                bad += 1
                if bad >= opts["patience"]:
                    break
        self.net.load_state_dict(best_state)
        self.net.eval()
        self.state.update(n_features=int(feats.shape[-1]), n_train=int(train_idx.size),
                          n_holdout=int(hold_idx.size), best_epoch=best_epoch,
                          epochs_run=epoch, holdout_nll=best_loss, uses_fallback=False)
        self._apply_guard(x, hold_idx)

    def _out_of_fold(self, x: FusionInputs) -> tuple[np.ndarray, np.ndarray]:
        """(labelled indices, fused probabilities for them), each predicted by a copy of this
        merger fitted on the other ``guard_folds`` folds of whole dialogues."""
        labelled = np.flatnonzero(x.labels >= 0)
        groups = [x.dialogue_ids[i] if x.dialogue_ids else str(i) for i in labelled]
        unique = sorted(set(groups))
        if len(unique) < 2 * self.options["guard_folds"]:
            # Too few dialogues for folds of whole dialogues (a small user set, a --limit
            # run): fold utterances instead, as the single hold-out does; optimistic.
            groups = [str(i) for i in labelled]
            unique = sorted(set(groups))
        rng = np.random.default_rng(self.options["seed"])
        fold_of = {g: k % self.options["guard_folds"] for k, g in enumerate(rng.permutation(unique))}
        folds = np.array([fold_of[g] for g in groups])
        out = np.zeros((labelled.size, x.n_classes))
        for k in range(self.options["guard_folds"]):
            inner = type(self)(**{**self.options, "guard_folds": 0, "guard": False})
            inner.fit(x.subset(labelled[folds != k]), "validation folds")
            out[folds == k] = inner._fused(x.subset(labelled[folds == k]))
        return labelled, out

    def _apply_guard(self, x: FusionInputs, hold_idx: np.ndarray) -> None:
        from lantern.evaluation.metrics import accuracy, weighted_f1

        if self.options["guard_folds"] > 1:
            # Judged out of fold over every labelled utterance: a validation split of a few
            # dozen dialogues gives a single hold-out of one or two hundred turns, too few to
            # tell a gain of a point or two from noise.
            hold_idx, fused = self._out_of_fold(x)
            held = x.subset(hold_idx)
        else:
            held = x.subset(hold_idx)
            fused = self._fused(held)
        y = held.labels
        scores = {}
        for which, p in (("fused", fused), ("fallback", self._fallback(held))):
            pred = p.argmax(axis=1)
            scores[which] = {"nll": _nll(p, y), "accuracy": accuracy(y, pred),
                             "weighted_f1": weighted_f1(y, pred, held.n_classes)}
        f, b = scores["fused"], scores["fallback"]
        metric = self.options["guard_metric"]
        if metric == "nll+accuracy":
            # Better as a probability model AND strictly more held-out utterances right.
            # NLL alone is not enough: mixing in even useless answers can lower the NLL of an
            # over- or under-confident vanilla model (calibration) while costing accuracy.
            beats = f["nll"] < b["nll"] and f["accuracy"] > b["accuracy"]
        elif metric == "nll":
            beats = f["nll"] < b["nll"]
        else:
            beats = f[metric] > b[metric]
        enabled = self.options["guard"]
        self.state["guard"] = {"enabled": enabled, "metric": metric, "fallback": self.fallback_name,
                               "beats_fallback": bool(beats), "holdout": scores,
                               "judged_on": (f"{self.options['guard_folds']}-fold out-of-fold predictions"
                                             if self.options["guard_folds"] > 1 else "the held-out part")}
        self.state["uses_fallback"] = bool(enabled and not beats)

    # -- prediction
    def _require_fitted(self) -> None:
        if self.net is None and not self.state.get("uses_fallback"):
            raise RuntimeError(f"the {self.name!r} merger is not fitted; call fit(inputs, "
                               f"split_name) or load one with from_pretrained")

    def _fused(self, x: FusionInputs) -> np.ndarray:
        feats, q = self._slots(x)
        with torch.no_grad():
            logp = self._log_proba(torch.from_numpy(feats).float(), torch.from_numpy(q).float())
        return _normalise_rows(logp.exp().double().numpy())

    def _predict_proba(self, x: FusionInputs) -> np.ndarray:
        self._require_fitted()
        if self.state.get("uses_fallback"):
            return self._fallback(x)
        return self._fused(x)

    def weights(self, x: FusionInputs) -> np.ndarray:
        """(n, S) attention weights α over the slots (the fallback's when it is in use)."""
        self._check_compatible(x)
        self._require_fitted()
        feats, _ = self._slots(x)
        if self.state.get("uses_fallback"):
            return self._fallback_weights(x.n, feats.shape[1])
        with torch.no_grad():
            e = self.net(torch.from_numpy(feats).float())
        return torch.softmax(e, dim=1).double().numpy()

    # -- persistence
    def _weights(self) -> dict[str, torch.Tensor] | None:
        return None if self.net is None else dict(self.net.state_dict())

    def _load_weights(self, cfg: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        self.net = self._build_net(int(cfg["state"]["n_features"]))
        self.net.load_state_dict(weights)
        self.net.eval()


class PositionMerger(_LearnedMerger):
    """Learned weights over the t answers from where the utterance sits in each field, and
    nothing else: α_{i,r} = softmax_r(w · φ(position_{i,r})) with φ = [one-hot bin of the
    relative position (``n_bins``), log1p(n_before), log1p(n_after), clipped]. Starts at the
    uniform mean (w = 0); the guard falls back to the uniform mean."""

    name = "position"
    fallback_name = "uniform"

    def __init__(self, *, n_bins: int = 5, **options: Any):
        options.setdefault("hidden", 0)
        super().__init__(**options)
        if int(n_bins) < 1:
            raise ValueError(f"n_bins must be >= 1; got {n_bins}")
        self.options["n_bins"] = int(n_bins)

    def _slots(self, x: FusionInputs) -> tuple[np.ndarray, np.ndarray]:
        n_bins = self.options["n_bins"]
        bins = np.minimum((x.position * n_bins).astype(np.int64), n_bins - 1)
        feats = np.concatenate([np.eye(n_bins)[bins], np.log1p(x.n_before)[..., None],
                                np.log1p(x.n_after)[..., None], x.clipped[..., None]], axis=-1)
        return feats, x.answers

    def _build_net(self, n_features: int) -> _SlotScorer:
        return _SlotScorer(n_features, self.options["hidden"], vanilla_bias=None,
                           n_classes=self._n_classes_if_log_linear())

    def _fallback(self, x: FusionInputs) -> np.ndarray:
        return x.answers.mean(axis=1)

    def _fallback_weights(self, n: int, n_slots: int) -> np.ndarray:
        return np.full((n, n_slots), 1.0 / n_slots)


class AttentionMerger(_LearnedMerger):
    """Receptive-field-aware attention (spec §4) with the vanilla answer as an extra slot.

    Each of the t answers q_{i,r} is scored by a small MLP on
    [q_{i,r}; p_i; d_i; posenc(position); log1p(n_before), log1p(n_after); clipped; valid;
    entropy(q)/log K; agreement with p_i (dot, log1p KL(q‖p), same argmax); agreement with
    the mean of the t answers (dot); vanilla flag]. The vanilla slot (last) has q = p_i and
    its own features (position features 0, vanilla flag 1) plus a learned bias that starts
    at ``vanilla_bias``, so training starts at (nearly) the vanilla model. α_i = softmax
    over the t + 1 slots; P_i = Σ_r α_{i,r} q_{i,r}. With ``guard=True`` (the default) the
    fitted merger is replaced by vanilla-only (α on vanilla = 1) unless it beats vanilla
    on the held-out part of the fitting data.
    """

    name = "attention"
    fallback_name = "vanilla-only"

    def __init__(self, *, hidden: int = 32, vanilla_bias: float = 4.0, **options: Any):
        super().__init__(hidden=hidden, **options)
        self.options["vanilla_bias"] = float(vanilla_bias)

    @staticmethod
    def _posenc(rp: np.ndarray) -> np.ndarray:
        # Raw position, distance from the centre, and two sinusoid frequencies: enough for a
        # small MLP to pick out "start", "middle" and "end" of a field.
        return np.stack([rp, 2 * np.abs(rp - 0.5), np.sin(np.pi * rp), np.cos(np.pi * rp),
                         np.sin(2 * np.pi * rp), np.cos(2 * np.pi * rp)], axis=-1)

    def _slots(self, x: FusionInputs) -> tuple[np.ndarray, np.ndarray]:
        n, t, k = x.answers.shape
        p = x.vanilla
        lo, hi = self.options["vad_scale"]
        d = np.nan_to_num((x.vad - (lo + hi) / 2) / ((hi - lo) / 2), nan=0.0)  # unknown -> mid
        d = np.clip(d, -2.0, 2.0)
        q = np.concatenate([x.answers, p[:, None, :]], axis=1)            # (n, t+1, K)
        s = t + 1
        log_k = math.log(k) if k > 1 else 1.0
        p_rep = np.broadcast_to(p[:, None, :], (n, s, k))
        kl = (q * (np.log(np.clip(q, 1e-12, None)) - np.log(np.clip(p_rep, 1e-12, None)))).sum(-1)
        consensus = x.answers.mean(axis=1)                                 # (n, K)
        is_vanilla = np.zeros((n, s))
        is_vanilla[:, -1] = 1.0

        def with_vanilla_slot(a: np.ndarray, vanilla_value: float) -> np.ndarray:
            return np.concatenate([a.astype(np.float64), np.full((n, 1), vanilla_value)], axis=1)

        rp = with_vanilla_slot(x.position, 0.0)
        posenc = self._posenc(rp) * (1 - is_vanilla)[..., None]     # the vanilla slot has none
        feats = np.concatenate([
            q, p_rep, np.broadcast_to(d[:, None, :], (n, s, 3)), posenc,
            np.log1p(with_vanilla_slot(x.n_before, 0.0))[..., None],
            np.log1p(with_vanilla_slot(x.n_after, 0.0))[..., None],
            with_vanilla_slot(x.clipped, 0.0)[..., None],
            with_vanilla_slot(x.answer_valid, 1.0)[..., None],
            (_entropy(q) / log_k)[..., None],
            (q * p_rep).sum(-1, keepdims=True),
            np.log1p(np.clip(kl, 0.0, None))[..., None],
            (q.argmax(-1) == p.argmax(-1)[:, None]).astype(np.float64)[..., None],
            (q * consensus[:, None, :]).sum(-1, keepdims=True),
            is_vanilla[..., None],
        ], axis=-1)
        return np.ascontiguousarray(feats), np.ascontiguousarray(q)

    def _build_net(self, n_features: int) -> _SlotScorer:
        return _SlotScorer(n_features, self.options["hidden"],
                           vanilla_bias=self.options["vanilla_bias"],
                           n_classes=self._n_classes_if_log_linear())

    def _fallback(self, x: FusionInputs) -> np.ndarray:
        return x.vanilla.copy()

    def _fallback_weights(self, n: int, n_slots: int) -> np.ndarray:
        w = np.zeros((n, n_slots))
        w[:, -1] = 1.0
        return w
