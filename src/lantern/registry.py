"""Name -> implementation registries with lazy ``"module:attr"`` targets.

Heavy optional dependencies are imported only when a registered entry is used,
in the manner of lm-evaluation-harness.

>>> reg = Registry("demo")
>>> reg.register("dumps", "json:dumps")
>>> reg.get("dumps")([1, 2])
'[1, 2]'
>>> "dumps" in reg.names()
True
>>> reg.register("dedent", "textwrap:dedent")
>>> reg.create("dedent", "  hi", widht=3)
Traceback (most recent call last):
...
lantern.errors.ConfigError: bad options for demo 'dedent': got an unexpected keyword argument 'widht'
"""

from __future__ import annotations

import importlib
import inspect
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

    def create(self, name: str, *args: Any, **options: Any) -> Any:
        """Call the registered target with ``options``; options its signature does not accept
        (a typo in a config) become a :class:`ConfigError` naming the entry, while a
        ``TypeError`` raised inside the target itself still propagates as the bug it is."""
        target = self.get(name)
        try:
            inspect.signature(target).bind(*args, **options)
        except TypeError as exc:
            raise ConfigError(f"bad options for {self.kind} {name!r}: {exc}") from None
        except ValueError:  # no introspectable signature (some builtins): let the call decide
            pass
        return target(*args, **options)
