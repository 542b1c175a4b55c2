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

>>> MERGERS.names()
['attention', 'llm-only', 'position', 'product', 'uniform', 'vanilla-only']
>>> make_merger("uniform").name
'uniform'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lantern.registry import Registry

MERGERS = Registry("merger")
MERGERS.register("vanilla-only", "lantern.fusion.mergers:VanillaOnlyMerger")
MERGERS.register("llm-only", "lantern.fusion.mergers:LLMOnlyMerger")
MERGERS.register("uniform", "lantern.fusion.mergers:UniformMerger")
MERGERS.register("product", "lantern.fusion.mergers:ProductMerger")
MERGERS.register("position", "lantern.fusion.mergers:PositionMerger")
MERGERS.register("attention", "lantern.fusion.mergers:AttentionMerger")

__all__ = ["MERGERS", "make_merger", "load_merger", "FusionInputs"]


def make_merger(name: str, **options: Any):
    """A new merger by registered name, with its options (hyper-parameters)."""
    return MERGERS.create(name, **options)


def load_merger(directory: str | Path):
    """Any merger saved with ``save_pretrained`` (the type is read from config.json)."""
    from lantern.fusion.mergers import Merger
    return Merger.from_pretrained(directory)


def __getattr__(name: str) -> Any:
    # FusionInputs lives with the mergers (which import torch); load it only when asked.
    if name == "FusionInputs":
        from lantern.fusion.mergers import FusionInputs
        return FusionInputs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
