"""A GGUF model cut after its first ``n`` transformer blocks, for a middle layer's states.

llama.cpp returns the states of a model's last layer only (after the final norm). A model file
that keeps blocks ``0 .. n-1``, the token embeddings, the final norm and the output head, with
``<arch>.block_count`` set to ``n``, returns the final-normed states of layer ``n`` instead, and
reads a prompt in about ``n / block_count`` of the time. Middle layers of decoder LLMs often
separate classes better than the last one, which is tuned to predict the next token.

The cut file is written once next to the source (``<stem>-l<n>.gguf``), atomically, with a
stamp of its sha256 like the assembled models (:func:`lantern.llm.is_verified`) and the size
and mtime of the source it was cut from: a changed source is cut again.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lantern.errors import ConfigError

_BLOCK = re.compile(r"^blk\.(\d+)\.")


def _gguf():
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - an extra's dependency
        raise ConfigError("cutting a GGUF model needs the gguf package: "
                          "pip install 'lantern[llm]'") from exc
    return gguf


def _blocks(reader) -> tuple[str, str, int]:
    """A model's architecture, the key of its block count, and the count."""
    arch = reader.fields[_gguf().Keys.General.ARCHITECTURE].contents()
    key = f"{arch}.block_count"
    return arch, key, int(reader.fields[key].contents())


def block_count(path: str | Path) -> int:
    """The number of transformer blocks of a GGUF model file."""
    return _blocks(_gguf().GGUFReader(str(path)))[2]


def truncated_model(source: str | Path, n_layers: int, dest: str | Path | None = None) -> Path:
    """``source`` cut after ``n_layers`` blocks (``1 <= n_layers <= block_count``); the source
    itself when nothing is cut. Reuses a verified cut file."""
    import json

    from lantern.llm import _stamp_path, _stat_key, _write_stamp, is_verified, sha256_file
    from lantern.paths import atomic_write_text

    n, source = int(n_layers), Path(source)
    dest = Path(dest) if dest else source.with_name(f"{source.stem}-l{n}.gguf")
    origin = dest.with_name(dest.name + ".source.json")
    try:   # cut and checked before, from this very source file: the source is not read again
        if (json.loads(origin.read_text()) == _stat_key(source)
                and is_verified(dest, json.loads(_stamp_path(dest).read_text())["sha256"], rehash=False)):
            return dest
    except (OSError, ValueError, KeyError):
        pass

    gguf = _gguf()
    reader = gguf.GGUFReader(str(source))
    arch, count_key, total = _blocks(reader)
    if not 1 <= n <= total:
        raise ConfigError(f"{source.name}: layers must be between 1 and {total}, got {n_layers}")
    if n == total:
        return source

    kept = [t for t in reader.tensors if not ((m := _BLOCK.match(t.name)) and int(m.group(1)) >= n)]
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        # The writer adds the architecture and the GGUF.* header fields itself.
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, n if field.name == count_key else field.contents(), kind,
                             sub_type=sub)
    for t in kept:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    try:
        try:
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for t in kept:
                writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
        finally:
            writer.close()          # the file handle, also when a write fails
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(dest, sha256_file(dest))
    atomic_write_text(origin, json.dumps(_stat_key(source)))
    return dest
