"""The :class:`FeatureExtractor` contract and helpers shared by every extractor.

An extractor turns utterances into fixed-size float32 vectors. Its cache identity is
``identity()`` (name, version, output-changing options, a hash of the model files) plus
``input_key(utterance)`` (the text itself, or a fingerprint of the media file).

>>> class Length(FeatureExtractor):
...     name, modality, dim = "text:length", "text", 1
...     def input_key(self, u):
...         return u.text
...     def extract_batch(self, utterances):
...         return np.array([[len(u.text)] for u in utterances], dtype=np.float32)
>>> from lantern.data.dialogues import Utterance
>>> Length().extract_batch([Utterance("u1", "A", "hello")])
array([[5.]], dtype=float32)
>>> Length().identity()
{'name': 'text:length', 'version': 1, 'options': {}}
>>> len(Length().cache_key(Utterance("u1", "A", "hello")))
64
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lantern.errors import DataError

#: Media files up to this size are fingerprinted by content (sha256); larger ones by
#: resolved path + size + modification time (nanoseconds).
CONTENT_HASH_LIMIT = 8 * 1024 * 1024


class FeatureExtractor:
    """Base class: subclasses set ``name``, ``modality``, ``dim`` and implement
    :meth:`input_key` and :meth:`extract_batch`.

    Bump ``version`` whenever the vectors an extractor produces change, so cached vectors
    of the old version are not reused. Heavy models are loaded lazily on the first
    :meth:`extract_batch` call, so a run served entirely from the cache never loads them.
    """

    name: str = ""
    version: int = 1
    modality: str = ""
    dim: int | None = None
    #: utterances per :meth:`extract_batch` call (and per cache commit)
    batch_size: int = 32
    #: False for pass-through extractors whose values already live on the utterance
    cacheable: bool = True
    #: the ``utterance.media`` keys this extractor reads (any one suffices); empty: it reads
    #: the utterance itself (text)
    input_media: tuple[str, ...] = ()
    #: False: models get the vectors as they are, not standardised with training statistics
    #: (padded token sequences: see :class:`~lantern.models.batching.FeatureSpec`)
    standardise: bool = True

    #: True: a vector depends on the turns before the utterance in its dialogue, so
    #: :func:`~lantern.features.attach_features` calls :meth:`bind_dialogues` first and the
    #: input key holds that context
    reads_context: bool = False

    def bind_dialogues(self, dialogues) -> None:
        """Tell a context-reading extractor which dialogue (and turn) each utterance is."""

    def has_input(self, utterance) -> bool:
        """Whether ``utterance`` has what this extractor reads (for optional modalities)."""
        return not self.input_media or any((utterance.media or {}).get(k) for k in self.input_media)

    def options(self) -> dict[str, Any]:
        """Options that change the output (part of the cache identity)."""
        return {}

    def identity(self) -> dict[str, Any]:
        """Everything that determines the output apart from the input itself."""
        return {"name": self.name, "version": self.version, "options": self.options()}

    def input_key(self, utterance) -> str:
        """A string that changes whenever this extractor's input for ``utterance`` changes."""
        raise NotImplementedError

    def extract_batch(self, utterances: Sequence) -> np.ndarray:
        """Vectors for ``utterances``: an ``(n, dim)`` float32 array."""
        raise NotImplementedError

    def cache_key(self, utterance, identity: str | None = None) -> str:
        """sha256 of the identity (JSON) and the input key."""
        if identity is None:
            identity = identity_json(self.identity())
        return hashlib.sha256(f"{identity}\0{self.input_key(utterance)}".encode("utf-8", "surrogatepass")).hexdigest()

    def summarize(self, vectors: np.ndarray) -> dict[str, Any]:
        """Extra statistics about a set of output vectors (e.g. how many had no face)."""
        return {}

    def close(self) -> None:
        """Release models and native resources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dim={self.dim} options={self.options()}>"


def identity_json(identity: dict) -> str:
    """Canonical JSON of an identity dict (sorted keys, no whitespace)."""
    return json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)


def check_output(extractor: FeatureExtractor, vectors: np.ndarray, n: int) -> np.ndarray:
    """Validate what ``extract_batch`` returned: shape ``(n, dim)`` and float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != n or (extractor.dim and vectors.shape[1] != extractor.dim):
        raise RuntimeError(f"{extractor.name} returned shape {vectors.shape}, expected ({n}, {extractor.dim})")
    return vectors


def media_path(utterance, key: str, extractor: str) -> Path:
    """The existing file ``utterance.media[key]``, or a :class:`DataError` naming it."""
    raw = (utterance.media or {}).get(key)
    if not raw:
        raise DataError(f"utterance {utterance.id}: {extractor} needs media[{key!r}], "
                        f"but the utterance has {sorted(utterance.media or {}) or 'no media'}",
                        field=f"media.{key}")
    path = Path(raw).expanduser()
    if not path.exists():
        raise DataError(f"utterance {utterance.id}: {key} file not found", path=path,
                        field=f"media.{key}")
    if not path.is_file():
        raise DataError(f"utterance {utterance.id}: {key} path is not a regular file", path=path,
                        field=f"media.{key}")
    return path


def file_key(path: str | Path) -> str:
    """Fingerprint of a file: content sha256 for small files, else path + size + mtime_ns.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".bin") as f:
    ...     _ = f.write(b"abc"); f.flush()
    ...     file_key(f.name)
    'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    path = Path(path)
    st = path.stat()
    if st.st_size <= CONTENT_HASH_LIMIT:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return f"stat:{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def directory_fingerprint(directory: str | Path) -> str:
    """sha256 over a model directory: relative names and contents of its files.

    Files up to :data:`CONTENT_HASH_LIMIT` are hashed whole; larger weight files by size
    plus their first and last MiB (a retrained model of the same size still differs there,
    and hashing hundreds of MB on every run would cost seconds). README files are skipped.
    """
    directory = Path(directory)
    h = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if p.is_file()
                   and not p.name.lower().startswith("readme") and ".git" not in p.parts)
    for p in files:
        rel = p.relative_to(directory).as_posix()
        size = p.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        with open(p, "rb") as f:
            if size <= CONTENT_HASH_LIMIT:
                h.update(f.read())
            else:
                h.update(f.read(1 << 20))
                f.seek(-(1 << 20), os.SEEK_END)
                h.update(f.read(1 << 20))
    return h.hexdigest()


def limit_threads(n: int = 2) -> None:
    """Default the native thread pools to ``n`` threads (only where not set by the user)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
