"""The vanilla model shipped inside the package, and loading any saved vanilla model.

``src/lantern/pretrained/<name>/`` holds ``config.json`` (architecture, classes, VAD scale,
feature standardisation, library versions), ``model.safetensors`` and a model card
``README.md`` saying what it was trained on and how well it does. It is produced by
``lantern train configs/pretrained-iemocap-text.yaml`` and ``scripts/ship_pretrained.py``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from lantern.errors import ConfigError

DEFAULT_MODEL = "iemocap-6way-text"


def shipped_models() -> list[str]:
    root = resources.files("lantern") / "pretrained"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())


def shipped_model_dir(name: str = DEFAULT_MODEL) -> Path:
    path = Path(str(resources.files("lantern") / "pretrained" / name))
    if not (path / "config.json").is_file():
        raise ConfigError(f"no shipped model {name!r}; shipped: {', '.join(shipped_models()) or 'none'}")
    return path


def model_card_summary(directory: Path) -> str:
    """The first paragraph of the model card after its title (one line for reports)."""
    card = directory / "README.md"
    if not card.is_file():
        return ""
    paragraphs = [p.strip() for p in card.read_text(encoding="utf-8").split("\n\n")]
    body = [p for p in paragraphs if p and not p.startswith("#")]
    return " ".join(body[0].split()) if body else ""


def load_vanilla(model: str | Path | None = None):
    """(model, feature spec, label set, VAD scale, info) for a shipped name or a saved folder."""
    from lantern.data.labels import LABEL_SETS
    from lantern.data.records import LabelSet
    from lantern.models.base import VanillaModel
    from lantern.training.collate import FeatureSpec

    if model is None or (not Path(str(model)).exists() and str(model) in shipped_models()):
        directory = shipped_model_dir(str(model or DEFAULT_MODEL))
    else:
        directory = Path(model)
        if not (directory / "config.json").is_file():
            raise ConfigError(f"{directory} is not a saved lantern model (no config.json); "
                              f"shipped models: {', '.join(shipped_models())}")
    vanilla = VanillaModel.from_pretrained(directory)
    cfg = vanilla.extra_config
    if "feature_spec" not in cfg or "classes" not in cfg:
        raise ConfigError(f"{directory / 'config.json'}: not a model saved by `lantern train` "
                          "(it lacks feature_spec/classes)")
    spec = FeatureSpec.from_config(cfg["feature_spec"])
    classes = tuple(cfg["classes"])
    label_set = LABEL_SETS.get(cfg.get("label_set", ""))
    if label_set is None or tuple(label_set.classes) != classes:
        label_set = LabelSet(cfg.get("label_set") or "custom", classes)
    scale = cfg.get("vad_scale")
    info = {"name": directory.name, "path": str(directory), "card": model_card_summary(directory),
            "model_type": vanilla.model_type, "features": spec.modalities,
            "trained_on": f"{cfg.get('dataset', '?')} {cfg.get('label_set', '')}".strip(),
            "versions": json.loads((directory / "config.json").read_text()).get("versions", {})}
    return vanilla, spec, label_set, tuple(scale) if scale else None, info
