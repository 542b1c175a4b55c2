"""The learned mergers, ``position`` and ``attention``, and how they are trained (spec §4).

Both score slots (the t answers, plus the vanilla answer for ``attention``) with a small
network and pool the slots' distributions with the softmax weights. They are trained on
the labelled utterances with cross-entropy on log P, AdamW, and early stopping
(:mod:`lantern.training.early_stopping`) on a held-out fraction of the fitting data
(whole dialogues are held out when dialogue ids are known, because utterances of one
dialogue are correlated). With ``guard=True`` the trained merger is compared with its
fallback on that held-out part (or out of fold, ``guard_folds``) and replaced by the
fallback when it does not beat it (by default: lower NLL and strictly higher accuracy);
``merger.state["guard"]`` records both sides' held-out scores and the decision. The same
held-out part picks the epoch and judges the guard, which makes the guard somewhat
optimistic; requiring a strict accuracy gain on top of the NLL is what keeps it from
passing on noise.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from lantern.fusion import POOLINGS
from lantern.fusion.base import Merger, normalise_rows
from lantern.fusion.inputs import FusionInputs
from lantern.training.early_stopping import EarlyStopping, run_early_stopping

__all__ = ["PositionMerger", "AttentionMerger"]


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

        def held_out_loss() -> float:
            with torch.no_grad():
                return float(loss_on(ho))

        def run_epoch(epoch: int) -> float:
            # Full batch: the fitting split is small (a validation set), so this is both the
            # fastest and the most deterministic choice.
            opt.zero_grad()
            loss_on(tr).backward()
            opt.step()
            return held_out_loss()

        def snapshot() -> dict[str, torch.Tensor]:
            return copy.deepcopy(self.net.state_dict())

        # Epoch 0 is the initialisation (at or near the fallback): training must beat it.
        stopping = run_early_stopping(
            EarlyStopping(patience=opts["patience"], mode="min", min_delta=1e-6,
                          best_score=held_out_loss(), best_state=snapshot()),
            opts["max_epochs"], run_epoch, snapshot)
        self.net.load_state_dict(stopping.best_state)
        self.net.eval()
        self.state.update(n_features=int(feats.shape[-1]), n_train=int(train_idx.size),
                          n_holdout=int(hold_idx.size), best_epoch=stopping.best_epoch,
                          epochs_run=stopping.epoch, holdout_nll=stopping.best_score,
                          uses_fallback=False)
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
        return normalise_rows(logp.exp().double().numpy())

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
