"""Name -> implementation registries with lazy ``"module:attr"`` targets.

Heavy optional dependencies are imported only when a registered entry is used,
in the manner of lm-evaluation-harness.

>>> reg = Registry("demo")
>>> reg.register("dumps", "json:dumps")
>>> reg.get("dumps")([1, 2])
'[1, 2]'
>>> "dumps" in reg.names()
True
"""

from __future__ import annotations

import importlib
from typing import Any

from lantern.errors import ConfigError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._targets: dict[str, str | Any] = {}

    def register(self, name: str, target: str | Any) -> None:
        if name in self._targets:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._targets[name] = target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: str) -> bool:
        return name in self._targets

    def get(self, name: str) -> Any:
        if name not in self._targets:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        target = self._targets[name]
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            module = importlib.import_module(module_name)
            target = getattr(module, attr)
            self._targets[name] = target
        return target
