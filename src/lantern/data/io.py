"""Careful file readers: every problem becomes a :class:`DataError` naming file, line and field."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path
from typing import Any, Iterator

from lantern.errors import DataError


def require_file(path: str | Path, what: str = "file") -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found (set the data root with --data-root or "
                        f"$LANTERN_DATA_ROOT)", path=path)
    if not path.is_file():
        raise DataError(f"{what} is not a regular file", path=path)
    return path


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """Read a text file (gzip-compressed when its name ends in ``.gz``), reporting the line
    of the first undecodable byte."""
    path = require_file(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"not a readable gzip file ({exc})", path=path) from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"not valid {encoding} (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                        path=path, line=line) from None


def read_csv_rows(path: str | Path, required: tuple[str, ...] = (),
                  encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` for each record of a quote-aware CSV file.

    The line number is where the record starts in the file (header = line 1).
    """
    path = Path(path)
    text = read_text(path, encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("empty file: expected a header row", path=path, line=1) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=1) from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"missing column(s) {missing}; found {header}", path=path, line=1,
                        field=missing[0])
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", path=path, line=line) from None
        if values:
            if len(values) != len(header):
                raise DataError(f"expected {len(header)} values, found {len(values)}",
                                path=path, line=line)
            yield line, dict(zip(header, values))
        line = reader.line_num + 1


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line_number, object)`` per non-blank line. Lines end at ``\\n`` only: U+2028 and
    the like are legal raw inside JSON strings (``str.splitlines`` would cut there)."""
    path = Path(path)
    for i, raw in enumerate(read_text(path).split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except RecursionError:
            raise DataError("JSON nested too deeply", path=path, line=i) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=i) from None
        if not isinstance(obj, dict):
            raise DataError("each line must be a JSON object", path=path, line=i)
        yield i, obj


def read_pickle(path: str | Path, encoding: str = "ASCII") -> Any:
    """Unpickle a file (trusted dataset files only), with a clear error if it is not a pickle."""
    path = require_file(path)
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding=encoding)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ModuleNotFoundError, UnicodeDecodeError, IndexError, KeyError) as exc:
        raise DataError(f"cannot unpickle: {type(exc).__name__}: {exc}", path=path) from None


def parse_float(value: str, *, path, line, field, allow_empty: bool = True) -> float | None:
    value = value.strip()
    if value == "":
        if allow_empty:
            return None
        raise DataError("empty value", path=path, line=line, field=field)
    try:
        return float(value)
    except ValueError:
        raise DataError(f"not a number: {value!r}", path=path, line=line, field=field) from None
