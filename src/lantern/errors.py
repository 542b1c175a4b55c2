"""Errors that name the file, line and field at fault, so users can fix their input."""

from __future__ import annotations

from pathlib import Path


class LanternError(Exception):
    """Base class of every error lantern raises on purpose."""


class DataError(LanternError, ValueError):
    """Bad input data: says which file, which line (1-based, as an editor shows it) and which field.

    >>> str(DataError("unknown label 'happyy'", path="talk.csv", line=3, field="label"))
    "talk.csv, line 3, field 'label': unknown label 'happyy'"
    """

    def __init__(self, message: str, *, path: str | Path | None = None,
                 line: int | None = None, field: str | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return (", ".join(where) + ": " + self.message) if where else self.message


class ConfigError(LanternError, ValueError):
    """A configuration file or override is invalid."""
