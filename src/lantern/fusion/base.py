"""The merger API every merger shares, and its persistence (spec §4).

Every merger turns a :class:`~lantern.fusion.inputs.FusionInputs` into one distribution
per utterance with the same small API::

    merger.fit(inputs, split_name)        # no-op for the fixed ones; refuses "test"
    merger.predict_proba(inputs)          # (n, K), rows sum to 1
    merger.save_pretrained(directory)     # config.json (+ model.safetensors if learned)
    Merger.from_pretrained(directory)     # any saved merger, type read from config.json

``fit`` takes the name of the split its data comes from and raises
:class:`SplitLeakageError` for ``"test"``: the learned mergers are fitted on the
validation split's LLM answers (optionally out-of-fold training answers), never on the
split they are evaluated on. A saved config.json names the merger by its registered name
(``"merger": "attention"``), not by a module path.

>>> check_fit_split(" validation ")
'validation'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lantern.fusion.inputs import FusionInputs, rescale_drifting_rows
from lantern.models.base import CONFIG_NAME, WEIGHTS_NAME, library_versions
from lantern.paths import atomic_write_text

if TYPE_CHECKING:
    import torch

__all__ = ["SplitLeakageError", "check_fit_split", "normalise_rows", "Merger"]

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


def normalise_rows(p: np.ndarray) -> np.ndarray:
    """``p`` clipped at 0, with rows rescaled to sum to 1 where they drift."""
    return rescale_drifting_rows(np.clip(np.asarray(p, dtype=np.float64), 0.0, None))




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
        return normalise_rows(self._predict_proba(inputs))

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
