"""The vanilla models shipped inside the package, and finding any saved one by name or folder.

``src/lantern/pretrained/<name>/`` is a :class:`~lantern.models.bundle.ModelBundle` folder
(``config.json``, ``model.safetensors``) with a card ``README.md`` generated from its result
file. The default, ``mix-6way-text-dialogue`` (issue #11), is the seed of
``configs/cross-corpus/mix3-6way-qwen-dialogue.yaml`` that ``scripts/choose_vanilla.py``
chooses on validation splits for robustness across corpora, shipped by
``scripts/ship_pretrained.py``; ``iemocap-6way-text`` (IEMOCAP only, MiniLM only, no 1.5B
model needed) stays shipped. ``fer2013-context`` (issue #13) and ``ravdess-emotion-llama``
(issue #12) are the defaults of ``--system context`` and ``--system emotion-llama``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lantern.errors import ConfigError

DEFAULT_MODEL = "mix-6way-text-dialogue"
#: The shipped model each ``lantern predict --system`` loads when no ``--model`` is given
#: (None: that system ships none, ``--model`` is required).
SYSTEM_DEFAULT_MODEL = {"lantern": DEFAULT_MODEL, "context": "fer2013-context",
                        "emotion-llama": "ravdess-emotion-llama"}
#: The recipe that trains a model of each system (said when one is needed and none is shipped).
SYSTEM_RECIPE = {"lantern": "configs/cross-corpus/mix3-6way-qwen-dialogue.yaml",
                 "context": "configs/fer2013/context-qformer.yaml",
                 "emotion-llama": "configs/ravdess/emotion-llama.yaml"}


def shipped_models() -> list[str]:
    root = resources.files("lantern") / "pretrained"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").is_file())


def shipped_model_dir(name: str = DEFAULT_MODEL) -> Path:
    path = Path(str(resources.files("lantern") / "pretrained" / name))
    if not (path / "config.json").is_file():
        raise ConfigError(f"no shipped model {name!r}; shipped: {', '.join(shipped_models()) or 'none'}")
    return path


def default_model(system: str) -> str:
    """The shipped model ``system`` uses without ``--model``; ConfigError when it ships none."""
    name = SYSTEM_DEFAULT_MODEL.get(system)
    if name is None or name not in shipped_models():
        raise ConfigError(f"--system {system} needs --model: no model of it is shipped; "
                          f"`lantern train {SYSTEM_RECIPE.get(system, '...')}` writes one per seed")
    return name


def model_dir(model: str | Path | None = None) -> Path:
    """The folder of a shipped model name (default :data:`DEFAULT_MODEL`) or a saved model."""
    if model is None or (not Path(str(model)).exists() and str(model) in shipped_models()):
        return shipped_model_dir(str(model or DEFAULT_MODEL))
    directory = Path(model)
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{directory} is not a saved lantern model (no config.json); "
                          f"shipped models: {', '.join(shipped_models())}")
    return directory


def load_bundle(model: str | Path | None = None):
    """The :class:`~lantern.models.bundle.ModelBundle` of a shipped name or a saved folder."""
    from lantern.models.bundle import ModelBundle

    return ModelBundle.load(model_dir(model))
