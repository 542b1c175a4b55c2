"""Fusion of the LLM's per-field answers with the vanilla predictions (spec §4).

Each utterance has t LLM answers (one per receptive field it lies in) and the vanilla
model's probabilities and dimension scores; a *merger* turns them into one probability
vector. The mergers are registered by name (the ablations every benchmark reports):

- ``vanilla-only``: the vanilla probabilities, unchanged;
- ``llm-only``: the answer of the one field where the utterance is most central;
- ``uniform``: the mean of the t answers;
- ``product``: the geometric mean of the vanilla prediction and the mean answer (fixed 50/50);
- ``position``: learned weights over the t answers from position features only;
- ``attention``: the receptive-field-aware attention, with the vanilla answer as an extra
  slot, initialised at and guarded by the vanilla model.

Learned mergers are fitted on the **validation** split's LLM answers, never on test
(``fit`` refuses ``split_name="test"``). Inputs are a :class:`FusionInputs`.

Modules: :mod:`~lantern.fusion.inputs` (the inputs, built from the records of
:mod:`lantern.records`), :mod:`~lantern.fusion.base` (the merger API and save/load),
:mod:`~lantern.fusion.fixed` and :mod:`~lantern.fusion.learned` (the mergers),
:mod:`~lantern.fusion.calibration` (answers' class prior divided out before fusion).

>>> MERGERS.names()
['attention', 'llm-only', 'position', 'product', 'uniform', 'vanilla-only']
>>> make_merger("uniform").name
'uniform'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lantern.registry import Registry

#: how the learned mergers pool their slots (chosen on validation with the calibration)
POOLINGS = ("linear", "log-linear")

MERGERS = Registry("merger")
MERGERS.register("vanilla-only", "lantern.fusion.fixed:VanillaOnlyMerger")
MERGERS.register("llm-only", "lantern.fusion.fixed:LLMOnlyMerger")
MERGERS.register("uniform", "lantern.fusion.fixed:UniformMerger")
MERGERS.register("product", "lantern.fusion.fixed:ProductMerger")
MERGERS.register("position", "lantern.fusion.learned:PositionMerger")
MERGERS.register("attention", "lantern.fusion.learned:AttentionMerger")

__all__ = ["MERGERS", "make_merger", "load_merger", "FusionInputs"]


def make_merger(name: str, **options: Any):
    """A new merger by registered name, with its options (hyper-parameters)."""
    return MERGERS.create(name, **options)


def load_merger(directory: str | Path):
    """Any merger saved with ``save_pretrained`` (the type is read from config.json)."""
    from lantern.fusion.base import Merger
    return Merger.from_pretrained(directory)


def __getattr__(name: str) -> Any:
    # Importing the package is only the registry; load FusionInputs (numpy) when asked.
    if name == "FusionInputs":
        from lantern.fusion.inputs import FusionInputs
        return FusionInputs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
