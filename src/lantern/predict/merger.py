"""The merger ``lantern predict`` ships with its vanilla model: how the t LLM answers of an
utterance and the vanilla prediction become the refined one.

A shipped merger lives next to the vanilla model whose predictions were its references:
``<vanilla model>/mergers/<llm name>-<answer mode>-w<window>s<stride>/`` with the saved
merger (``config.json`` + weights), ``calibration.json`` (the calibration chosen on
validation and the prior it divides by, estimated on the validation answers) and a card
(``README.md``, generated from its result files). It is used only when the LLM that
answers is the one it was trained on (same model file: name and sha256) with the same
answer mode and fields; otherwise the refined prediction is the plain mean of the t
answers, and the prediction document says which of the two it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = "calibration.json"


def merger_name(llm_name: str, answer: str, window: int, stride: int) -> str:
    """``qwen2.5-coder-1.5b-logprobs-w6s2``."""
    return f"{llm_name}-{answer}-w{window}s{stride}"


@dataclass
class ShippedMerger:
    directory: Path
    merger: Any
    calibration: dict

    @property
    def model_id(self) -> str:
        return self.calibration.get("llm_model_id", "")

    def describe(self) -> dict:
        return {"name": self.directory.name, "type": self.merger.name,
                "calibration": self.calibration.get("method"),
                "trained_on": self.calibration.get("trained_on"),
                "uses_fallback": bool(getattr(self.merger, "state", {}).get("uses_fallback"))}

    def fuse(self, rows: list[dict], grouped: dict, classes) -> np.ndarray:
        """(n, K) refined probabilities for ``rows`` from their grouped answer records."""
        from lantern.fusion.calibration import calibrate
        from lantern.fusion.inputs import FusionInputs

        x = FusionInputs.from_records([{**r, "label": None} for r in rows], grouped, classes=list(classes))
        x = calibrate(x, self.calibration.get("method", "none"), self.calibration.get("prior"))
        return self.merger.predict_proba(x)


def find_shipped_merger(vanilla_dir: str | Path, llm, answer: str, window: int,
                        stride: int) -> ShippedMerger | None:
    """The merger shipped for this vanilla model, LLM and field settings, or None."""
    from lantern.fusion import load_merger

    name = getattr(llm, "name", None)
    if not name:                      # a server: no merger was trained on its answers
        return None
    directory = Path(vanilla_dir) / "mergers" / merger_name(name, answer, window, stride)
    cal_path = directory / CALIBRATION_FILE
    if not cal_path.is_file():
        return None
    calibration = json.loads(cal_path.read_text())
    if calibration.get("llm_model_id") != llm.model_id:
        return None
    return ShippedMerger(directory, load_merger(directory), calibration)
