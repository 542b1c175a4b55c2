"""The fixed mergers: nothing is learned, so they need no fitting data (spec §4).

``vanilla-only`` (the vanilla model), ``llm-only`` (the answer of the field where the
utterance is most central, :func:`central_field_index`), ``uniform`` (the mean of the t
answers) and ``product`` (a fixed 50/50 geometric mean of vanilla and the mean answer):
the ablations every learned merger is compared with.

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

import numpy as np

from lantern.fusion.base import Merger
from lantern.fusion.inputs import FusionInputs

__all__ = ["central_field_index", "VanillaOnlyMerger", "LLMOnlyMerger", "UniformMerger",
           "ProductMerger"]


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
