"""YAML experiment configs with ``${placeholders}`` and ``--set key=value`` overrides.

>>> cfg = resolve({"data": {"root": "${data_root}"}, "seed": 1}, {"data_root": "/d"}, ["seed=3"])
>>> cfg["data"]["root"], cfg["seed"]
('/d', 3)
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from lantern.errors import ConfigError

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
    cfg.setdefault("name", path.stem)
    cfg.setdefault("config_dir", str(path.parent))  # relative references resolve from here
    return cfg
