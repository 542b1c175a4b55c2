"""Calibration of LLM answers before fusion: divide out the LLM's own tilt towards classes.

A small model reading label words at answer slots has a prior (it says ``neutral`` by
default); dividing its distributions by an estimate of that prior and renormalising is
the classic fix (Zhao et al., 2021, "Calibrate before use"; Zhou et al., 2023, "Batch
calibration"). Options, chosen on the validation split and named in every result:

- ``none``: answers as read;
- ``batch``: the prior is the mean answer of the split itself (no labels used);
- ``contextual``: the prior is the answer to a content-free field ("N/A" utterances).

>>> import numpy as np
>>> from lantern.fusion.inputs import FusionInputs
>>> x = FusionInputs(vanilla=np.array([[0.5, 0.5], [0.5, 0.5]]), vad=None,
...                  answers=np.array([[[0.9, 0.1]], [[0.6, 0.4]]]), position=np.zeros((2, 1)),
...                  n_before=np.zeros((2, 1), int), n_after=np.zeros((2, 1), int),
...                  clipped=np.zeros((2, 1), bool), labels=np.array([0, 1]))
>>> calibrate(x, "batch").answers[:, 0].round(3).tolist()
[[0.75, 0.25], [0.333, 0.667]]
>>> choose_calibration(x, {})["chosen"]
'batch'
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lantern.errors import ConfigError

CALIBRATIONS = ("none", "batch", "contextual")


def batch_prior(inputs) -> np.ndarray:
    """The mean LLM answer over every (utterance, field) of ``inputs``."""
    return inputs.answers.reshape(-1, inputs.answers.shape[-1]).mean(axis=0)


def calibrate(inputs, method: str, prior=None):
    """Answers divided by a prior over classes and renormalised (the LLM's own tilt removed):
    ``batch`` uses the mean answer of the split itself (no labels) unless a ``prior`` saved
    from another split is given (``lantern predict`` uses the validation split's),
    ``contextual`` the answer to a content-free field (texts "N/A"), ``none`` leaves them."""
    if method == "none":
        return inputs
    if method == "batch":
        prior = batch_prior(inputs) if prior is None else prior
    elif method == "contextual":
        if prior is None:
            raise ConfigError("contextual calibration needs the content-free answer (logprobs runs)")
    else:
        raise ConfigError(f"calibration must be one of {', '.join(CALIBRATIONS)}; got {method!r}")
    q = inputs.answers / np.clip(np.asarray(prior, dtype=np.float64), 1e-6, None)
    q = q / q.sum(axis=-1, keepdims=True)
    valid = inputs.answer_valid if inputs.answer_valid is not None else np.ones(q.shape[:2], bool)
    q = np.where(valid[..., None], q, inputs.answers)   # vanilla stand-ins stay as they are
    return replace(inputs, answers=q)


def prior_for(method: str, header: dict):
    """The stored prior a method needs: the content-free answer for ``contextual``; None
    for ``batch`` (each split's own mean) and ``none``."""
    return header.get("content_free") if method == "contextual" else None


def shipped_prior(method: str, valid_inputs, header: dict):
    """The prior a calibration divides by wherever a merger is used beyond its validation
    split (``lantern predict`` on a user's conversation, another corpus): the validation
    answers' mean for ``batch`` (a short conversation is too small to estimate its own), the
    content-free answer for ``contextual``, None for ``none``."""
    if method == "batch":
        return batch_prior(valid_inputs)
    return prior_for(method, header)


def choose_calibration(valid_inputs, header: dict, options=CALIBRATIONS) -> dict:
    """The calibration whose mean LLM answer (the ``uniform`` merger) is most accurate on the
    validation split; ties keep the simpler one (none < batch < contextual)."""
    from lantern.evaluation.metrics import accuracy

    y = valid_inputs.labels
    scores = {}
    for method in options:
        if method == "contextual" and header.get("content_free") is None:
            continue
        x = calibrate(valid_inputs, method, prior_for(method, header))
        scores[method] = accuracy(y, x.answers.mean(axis=1).argmax(1))
    best = max(scores, key=lambda m: (round(scores[m], 9), -CALIBRATIONS.index(m)))
    return {"chosen": best, "valid_accuracy_of_uniform": scores}
