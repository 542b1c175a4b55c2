"""A saved vanilla model and everything needed to use it: :class:`ModelBundle`.

A bundle folder holds ``config.json`` (architecture, label-set name and classes, VAD scale,
the feature spec with its standardisation statistics, feature options, the dataset it was
trained on, library versions), ``model.safetensors`` and, once shipped, ``README.md`` (a
card generated from its result file by :func:`lantern.models.card.model_card`). Training,
the CLI, the pipeline and ``lantern predict`` all load and save models through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lantern.data.dialogues import Dialogue, LabelSet
from lantern.errors import ConfigError
from lantern.models.base import CONFIG_NAME, VanillaModel
from lantern.models.batching import FeatureSpec

def resolve_label_set(name: str | None, classes: tuple[str, ...]) -> LabelSet:
    """The registered label set called ``name`` when its classes are ``classes`` (so
    ``4way-merge`` and ``4way-drop`` stay apart), else an ad-hoc one of that name with no
    class definitions (prompts then show the class names as they are)."""
    from lantern.data.labels import LABEL_SETS

    known = LABEL_SETS.get(name or "")
    if known is not None and tuple(known.classes) == tuple(classes):
        return known
    return LabelSet(name or "custom", tuple(classes))


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """A saved model's ``config.json`` without loading its weights (dataset, label set,
    feature spec, ...)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"{directory} is not a saved lantern model (no {CONFIG_NAME})")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class ModelBundle:
    """A vanilla network with what it needs to be used: the feature spec (extractor names and
    the train split's standardisation), the label set, the VAD scale of its outputs, the dataset
    it was trained on and the extractors' options; ``directory`` and ``versions`` once saved."""

    model: VanillaModel
    spec: FeatureSpec
    label_set: LabelSet
    vad_scale: tuple[float, float] | None
    dataset: str
    feature_options: dict[str, Any] = field(default_factory=dict)
    #: where the training texts came from when they are not the data's own (context
    #: descriptions: file, describers, writers), so predict writes its texts the same way
    text_source: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)

    # -- persistence
    def metadata(self) -> dict[str, Any]:
        return {"classes": list(self.label_set.classes), "label_set": self.label_set.name,
                "dataset": self.dataset, "vad_scale": self.vad_scale,
                "feature_spec": self.spec.to_config(), "feature_options": self.feature_options,
                **({"text_source": self.text_source} if self.text_source else {})}

    def save(self, directory: str | Path) -> Path:
        self.directory = self.model.save_pretrained(directory, metadata=self.metadata())
        return self.directory

    @classmethod
    def load(cls, directory: str | Path) -> "ModelBundle":
        directory = Path(directory)
        cfg = read_metadata(directory)
        if "feature_spec" not in cfg or "classes" not in cfg:
            raise ConfigError(f"{directory / CONFIG_NAME}: not a model saved by `lantern train` "
                              "(it lacks feature_spec/classes)")
        model = VanillaModel.from_pretrained(directory)
        scale = cfg.get("vad_scale")
        return cls(model, FeatureSpec.from_config(cfg["feature_spec"]),
                   resolve_label_set(cfg.get("label_set"), tuple(cfg["classes"])),
                   tuple(scale) if scale else None, str(cfg.get("dataset") or "?"),
                   dict(cfg.get("feature_options") or {}), dict(cfg.get("text_source") or {}),
                   directory, dict(cfg.get("versions") or {}))

    # -- use
    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.label_set.classes)

    @property
    def feature_names(self) -> list[str]:
        return list(self.spec.modalities.values())

    def feature_options_for(self, names) -> dict[str, Any]:
        """The saved feature options of the extractors in ``names`` (what extraction needs)."""
        return {k: v for k, v in self.feature_options.items() if k in set(names)}

    def prediction_rows(self, dialogues: list[Dialogue], gold: LabelSet | None = None):
        """Prediction rows; gold labels named in ``gold`` (the data's label set, when it is
        not the model's)."""
        from lantern.models.inference import prediction_rows
        return prediction_rows(self.model, dialogues, self.spec, self.label_set, self.vad_scale,
                               gold)

    def check_classes(self, label_set: LabelSet) -> None:
        if tuple(label_set.classes) != self.classes:
            raise ConfigError(f"the model predicts {list(self.classes)} but the data uses "
                              f"{list(label_set.classes)}")

    def info(self) -> dict[str, Any]:
        """What reports say about the model."""
        from lantern.models.card import card_summary

        directory = self.directory
        return {"name": directory.name if directory else None,
                "path": str(directory) if directory else None,
                "card": card_summary(directory) if directory else "",
                "model_type": self.model.model_type, "features": self.spec.modalities,
                "trained_on": f"{self.dataset} {self.label_set.name}".strip(),
                "versions": self.versions}
