"""YAML configs with ``${placeholders}`` and ``--set key=value`` overrides, checked on load:
every key of a training or pipeline config must be known (:func:`validate_config`), and the
pipeline's sections are typed (:class:`VanillaSection`, :class:`LLMSection`,
:class:`FusionSection`).

>>> cfg = resolve({"data": {"root": "${data_root}"}, "seed": 1}, {"data_root": "/d"}, ["seed=3"])
>>> cfg["data"]["root"], cfg["seed"]
('/d', 3)
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from lantern.errors import ConfigError
from lantern.fusion import POOLINGS
from lantern.llm.base import EMBEDDED

_PLACEHOLDER = re.compile(r"\$\{([a-zA-Z_][a-zA-Z0-9_.]*)\}")


def _substitute(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, str):
        def repl(m: re.Match) -> str:
            if m.group(1) not in variables:
                raise ConfigError(f"unknown placeholder ${{{m.group(1)}}}; known: {sorted(variables)}")
            return str(variables[m.group(1)])
        return _PLACEHOLDER.sub(repl, value)
    return value


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides; the value is parsed as YAML (numbers, lists, null)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        node = cfg
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return cfg


def resolve(cfg: dict, variables: dict[str, Any], overrides: list[str] | None = None) -> dict:
    return _substitute(apply_overrides(cfg, overrides or []), variables)


def load_config(path: str | Path, overrides: list[str] | None = None,
                variables: dict[str, Any] | None = None) -> dict:
    """Read a YAML config, apply overrides, fill placeholders (``data_root``, ``cache_dir``)."""
    from lantern.paths import cache_dir, data_root

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level")
    base = {"data_root": str(data_root()), "cache_dir": str(cache_dir()),
            "config_dir": str(path.parent)}
    base.update(variables or {})
    cfg = resolve(raw, base, overrides)
    validate_config(cfg, path)
    cfg.setdefault("name", path.stem)
    cfg.setdefault("config_dir", str(path.parent))  # relative references resolve from here
    return cfg


# --------------------------------------------------------------------------- sections

DEFAULT_VARIANTS = ("vanilla-only", "llm-only", "uniform", "product", "position", "attention")
MERGER_SEEDS = (0, 1, 2)

# Typed sections of a pipeline config: their fields are the keys a config may use (checked
# by load_config), their defaults the only ones; read them with ``Section.of(cfg)``.
# ``fields:`` and ``prompt:`` are lantern.refine.RefineSettings, ``training:`` is
# lantern.training.trainer.TrainingConfig (their homes: the code they configure).

class _Section:
    key: str = ""                      # the config's key for this section
    _TUPLES: tuple[str, ...] = ()      # list values read as tuples (hashable, immutable)

    @classmethod
    def of(cls, cfg: dict):
        """The section ``cls.key`` of a config (defaults where it is absent)."""
        raw = dict(cfg.get(cls.key) or {})
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) and k in cls._TUPLES else v
                          for k, v in raw.items()})
        except TypeError as exc:   # files are checked on load; this guards config dicts
            raise ConfigError(f"{cls.key}: {exc}") from None


@dataclass(frozen=True)
class VanillaSection(_Section):
    key: ClassVar[str] = "vanilla"
    config: str | None = None            # a vanilla training config, relative to this file
    pretrained: str | None = None        # or a shipped model name / saved model folder
    overrides: list[str] = field(default_factory=list)
    seed: int = 0


@dataclass(frozen=True)
class LLMSection(_Section):
    key: ClassVar[str] = "llm"
    backend: str = EMBEDDED
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionSection(_Section):
    key: ClassVar[str] = "fusion"
    _TUPLES: ClassVar[tuple[str, ...]] = ("variants", "seeds", "poolings", "calibrations")
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    seeds: tuple[int, ...] = MERGER_SEEDS     # learned mergers
    poolings: tuple[str, ...] = POOLINGS      # learned mergers, chosen on validation
    calibrations: tuple[str, ...] | None = None   # None: every one (log-probability answers)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)   # per variant


#: top-level keys of a pipeline config besides its sections
PIPELINE_KEYS = ("name", "output_dir", "config_dir", "answers_root", "answers_dir", "llm_cache",
                 "threads")
PIPELINE_SECTIONS = {"vanilla": VanillaSection, "llm": LLMSection, "fusion": FusionSection}


# ------------------------------------------------------------------------- validation
# Two kinds of config: a vanilla training config (``model:`` at the top) and a Lantern
# pipeline config (``vanilla:``). Every key must be known: a typo (``fusoin:``, ``widnow:``)
# is a ConfigError naming the file and the key, never silently ignored.

#: top-level keys of a training config besides its sections
TRAINING_KEYS = ("name", "variant", "method", "seeds", "threads", "output_dir", "config_dir",
                 "features", "feature_options", "feature_norm", "reasons", "optional_features",
                 "init_from", "evaluate_on")


def _section_keys() -> dict[str, dict[str, tuple[str, ...]]]:
    from dataclasses import fields

    from lantern.data.folds import CrossValidationFold
    from lantern.refine import RefineSettings
    from lantern.training.experiment import TextEncoderSection
    from lantern.training.trainer import TrainingConfig

    names = lambda cls: tuple(f.name for f in fields(cls))   # noqa: E731
    refine = names(RefineSettings)
    pipeline = {k: names(v) for k, v in PIPELINE_SECTIONS.items()}
    pipeline.update(fields=("window", "stride"), prompt=tuple(k for k in refine if k not in ("window", "stride")))
    training = {"training": tuple(k for k in names(TrainingConfig) if k != "seed"),
                "text_encoder": names(TextEncoderSection), "cv": names(CrossValidationFold),
                "dataset": (), "model": ()}
    return {"pipeline": {"": PIPELINE_KEYS, **pipeline}, "training": {"": TRAINING_KEYS, **training}}


def _unknown(path, where: str, key: str, known) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
    return ConfigError(f"{path}: unknown key {where + key!r}{hint}")


def validate_config(cfg: dict, path: str | Path = "<config>") -> str:
    """Check every key of a loaded config; return its kind (``training`` or ``pipeline``).
    Dataset and model options are checked against their registered loader and model."""
    kind = "pipeline" if "vanilla" in cfg else "training" if "model" in cfg or "dataset" in cfg else None
    if kind is None:
        raise ConfigError(f"{path}: neither a training config (model:, dataset:) nor a "
                          "pipeline config (vanilla:)")
    schema = _section_keys()[kind]
    for key, value in cfg.items():
        if key in schema[""]:
            continue
        if key not in schema:
            raise _unknown(path, "", key, [*schema[""], *[k for k in schema if k]])
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {key!r} must be a mapping, not {type(value).__name__}")
        for sub in value:
            if schema[key] and sub not in schema[key]:
                raise _unknown(path, f"{key}.", sub, schema[key])
    if kind == "training":
        _check_registered(cfg, path)
    return kind


def _check_registered(cfg: dict, path) -> None:
    """``dataset:`` and ``model:`` options against their registered targets' signatures."""
    import inspect

    from lantern.data import DATASETS
    from lantern.models import MODELS

    for section, registry, fixed in (("dataset", DATASETS, ()),
                                     ("model", MODELS, ("input_dims", "n_classes"))):
        options = dict(cfg.get(section) or {})
        if "name" not in options:
            raise ConfigError(f"{path}: {section}.name is missing")
        target = registry.get(options.pop("name"))
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            continue
        check = getattr(target, "check_options", None)   # a model whose options depend on others
        if callable(check):
            known = check(options)
        elif any(p.kind is p.VAR_KEYWORD for p in params.values()):
            continue
        else:
            known = [n for n in params if n not in fixed]
        if section == "dataset":
            known.append("descriptions")   # applied by load_dataset itself, for any loader
        for key in options:
            if key not in known:
                raise _unknown(path, f"{section}.", key, known)
