"""`lantern serve` over real HTTP: a uvicorn server on 127.0.0.1 in a background thread.

Most tests pass a fast fake engine into ``create_app`` so they check the web layer: uploads,
limits, errors, path safety and concurrency; :class:`PredictEngine` (what turns an upload into
``lantern.predict`` settings and shares the LLM) is checked on its own with fake predict
functions. One test runs the real engine (MiniLM text features, LLM off) and one drives the
form with headless Chromium.
"""

from __future__ import annotations

import contextlib
import html
import http.client
import json
import os
import re
import secrets
import select
import socket
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from lantern.errors import DataError, LanternError  # noqa: E402
from lantern.predict import PredictResult  # noqa: E402
from lantern.predict.media import (AUDIO_SUFFIXES, CONVERSATION_SUFFIXES, VIDEO_SUFFIXES,  # noqa: E402
                                   input_kind)
from lantern.predict.outputs import write_outputs  # noqa: E402
from lantern.web import PredictEngine, ServeSettings, create_app, serve  # noqa: E402
from lantern.web.jobs import JOB_ID_RE, JobStore  # noqa: E402

LIMIT_MB = 1
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


# --- a server in a thread, and a tiny client --------------------------------------------------------
class Server:
    def __init__(self, app):
        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True, name="uvicorn-test")
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jobs_dir(self) -> Path:
        return self.app.state.jobs.root

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60):
        """(status, lower-case headers, body). The path goes on the wire exactly as given.
        A POST carries the server's own Origin, as a browser's form post does, unless
        ``headers`` name another (``"Origin": None``: none at all)."""
        headers = dict(headers or {})
        if method == "POST":
            headers.setdefault("Origin", self.url)
        headers = {k: v for k, v in headers.items() if v is not None}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def upload(self, filename: str, data: bytes, fields: dict | None = None, headers: dict | None = None):
        body, ctype = multipart(filename, data, fields)
        return self.request("POST", "/predict", body, {"Content-Type": ctype, **(headers or {})})


def multipart(filename: str | None, data: bytes, fields: dict | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f'{value}\r\n'.encode())
    if filename is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                     + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def conversation(*texts: str) -> bytes:
    return "".join(json.dumps({"speaker": "AB"[i % 2], "text": t}) + "\n"
                   for i, t in enumerate(texts)).encode()


def job_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if JOB_ID_RE.fullmatch(p.name))


# --- the fake engine ------------------------------------------------------------------------------
class FakeEngine:
    """The web app's engine (``run``, ``close``), fast: writes a tiny report that shows the
    uploaded text; misbehaves on request (markers)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.closed = 0
        self.reset()

    def reset(self):
        self.delay = 0.0
        self.calls: list[dict] = []
        self.active = self.max_active = 0

    def close(self):
        self.closed += 1

    def run(self, input_path, out_dir, llm, display_name=None):
        input_path, out_dir = Path(input_path), Path(out_dir)
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append({"input": input_path, "out": out_dir, "llm": llm,
                               "display_name": display_name,
                               "thread": threading.current_thread().name})
        try:
            time.sleep(self.delay)
            text = input_path.read_text(encoding="utf-8", errors="replace")
            if "CORRUPT" in text:
                raise DataError("not valid JSON <script>alert(2)</script>", path=input_path, line=1,
                                field="text")
            if "LANTERNERR" in text:
                raise LanternError(f"the recording {input_path} is too long <b>bold</b>")
            if "BOOM" in text:
                raise RuntimeError("internal detail that must stay in the log")
            write_outputs({}, out_dir, files={
                "report.html": (f"<!DOCTYPE html><html><head><title>Fake report</title></head><body>"
                                f"<h1>Emotion report</h1><pre>{html.escape(text)}</pre></body>"
                                f"</html>").encode(),
                "predictions.json": json.dumps({"input": text, "llm": llm}).encode(),
                "predictions.csv": b"speaker,text\nA,x\n"})
            return PredictResult({"input": text}, out_dir / "predictions.json",
                                 out_dir / "predictions.csv", out_dir / "report.html")
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture(scope="module")
def fake_engine():
    return FakeEngine()


@pytest.fixture
def fake(fake_engine):
    """The fake engine of the ``server`` app, its record cleared for one test."""
    fake_engine.reset()
    return fake_engine


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake_engine):
    app = create_app(ServeSettings(jobs_dir=tmp_path_factory.mktemp("jobs"), max_upload_mb=LIMIT_MB,
                                   llm="embedded", allowed_hosts=("127.0.0.1", "localhost")),
                     engine=fake_engine)
    s = Server(app)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The real engine, LLM off (the form then offers no refinement)."""
    s = Server(create_app(ServeSettings(jobs_dir=tmp_path_factory.mktemp("real-jobs"), llm="off")))
    yield s
    s.stop()


# --- pages ------------------------------------------------------------------------------------------
def test_index_page_explains_files_and_limits(server):
    status, headers, body = server.get("/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert 'enctype="multipart/form-data"' in page and 'type="file" name="file"' in page
    assert 'type="checkbox" name="llm"' in page          # the server allows refinement
    for suffix in (".jsonl", ".json", ".csv", ".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus",
                   ".aac", ".mp4", ".mkv", ".mov", ".avi", ".webm"):
        assert f"<code>{suffix}</code>" in page
    assert f"at most {LIMIT_MB} MB" in page and "30 minutes" in page
    assert "<script" not in page and "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_templates_and_styles_ship_as_package_data():
    """The pages are read from package data: pyproject.toml must ship every file of them."""
    import fnmatch
    import tomllib

    repo = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["lantern"]
    package = repo / "src" / "lantern"
    files = [p for d in ("templates", "static") for p in (package / "web" / d).iterdir()]
    assert files
    for f in files:
        rel = f.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(rel, pattern) for pattern in patterns), rel


def test_healthz(server):
    status, headers, body = server.get("/healthz")
    doc = json.loads(body)
    assert status == 200 and doc["status"] == "ok" and doc["workers"] == 1 and doc["llm"] == "embedded"
    assert doc["uploading"] == 0


def test_upload_redirects_to_report_and_downloads_work(server, fake):
    marker = f"marker-{secrets.token_hex(4)}"
    data = conversation(f"I am so happy today! {marker}", "Fine. <b>Fine!</b>")
    status, headers, _ = server.upload("../../evil/Talk.JSONL", data)
    assert status == 303
    m = re.fullmatch(r"/reports/([0-9a-f]{32})", headers["location"])
    assert m, headers["location"]
    job = m.group(1)
    # The stored name is server-made; only the allow-listed suffix came from the client.
    call = fake.calls[-1]
    assert call["input"] == server.jobs_dir / job / "input.jsonl" and call["out"] == server.jobs_dir / job
    assert call["llm"] == "off" and call["display_name"] == "Talk.JSONL"
    assert call["thread"] != server.thread.name      # a worker thread, not the event loop

    status, headers, body = server.get(headers["location"])
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "<title>Fake report</title>" in page and marker in page
    assert "Fine. &lt;b&gt;Fine!&lt;/b&gt;" in page
    assert f'href="/reports/{job}/predictions.json"' in page   # the download bar
    assert "default-src 'none'" in headers["content-security-policy"]

    status, headers, body = server.get(f"/reports/{job}/predictions.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert "attachment" in headers["content-disposition"] and marker in json.loads(body)["input"]
    status, headers, body = server.get(f"/reports/{job}/predictions.csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert body.startswith(b"speaker,text")
    status, _, body = server.get(f"/reports/{job}/report.html")
    assert status == 200 and marker.encode() in body


def test_llm_checkbox_turns_refinement_on(server, fake):
    status, _, _ = server.upload("talk.jsonl", conversation("hello"), fields={"llm": "on"})
    assert status == 303
    assert fake.calls[-1]["llm"] == "embedded"


#: Every suffix ``lantern predict`` reads, from its own tables.
PREDICT_SUFFIXES = tuple(dict.fromkeys(CONVERSATION_SUFFIXES + AUDIO_SUFFIXES + VIDEO_SUFFIXES))


def test_every_suffix_predict_accepts_is_accepted_by_the_web_app(server, fake):
    """Issue 10: the web app kept its own, shorter suffix list (no .aac, no .avi)."""
    assert {".aac", ".avi", ".webm"} <= set(PREDICT_SUFFIXES)
    _, _, body = server.get("/")
    page = body.decode()
    accept = re.search(r'accept="([^"]*)"', page).group(1).split(",")
    assert sorted(accept) == sorted(PREDICT_SUFFIXES)
    for suffix in PREDICT_SUFFIXES:
        assert input_kind(f"clip{suffix}") in ("conversation", "media")     # predict reads it
        assert f"<code>{suffix}</code>" in page
        status, headers, _ = server.upload(f"My Clip{suffix.upper()}", conversation("hi"))
        assert status == 303, (suffix, status)
        job = headers["location"].rsplit("/", 1)[1]
        assert fake.calls[-1]["input"] == server.jobs_dir / job / f"input{suffix}"
    assert len(fake.calls) == len(PREDICT_SUFFIXES)


def test_predict_engine_makes_safe_settings_and_shares_one_llm(tmp_path):
    """What the real engine hands lantern.predict for an upload (fake predict and make_llm)."""
    opened, runs = [], []

    class FakeLLM:
        closed = False

        def close(self):
            self.closed = True

    def make_llm(settings):
        opened.append(settings)
        return FakeLLM()

    def predict(input_path, out_dir, settings=None, llm=None):
        runs.append({"input": input_path, "out": out_dir, "settings": settings, "llm": llm})
        return "done"

    settings = ServeSettings(jobs_dir=tmp_path, llm="embedded", max_duration_s=60,
                             predict_options={"window": 4, "media_paths": True, "progress": True})
    eng = PredictEngine(settings, predict=predict, make_llm=make_llm)
    assert eng.run(tmp_path / "input.jsonl", tmp_path, "off", "talk.jsonl") == "done"
    eng.run(tmp_path / "input.wav", tmp_path, "embedded", "clip.wav")
    eng.run(tmp_path / "input.wav", tmp_path, "embedded")
    first, second, third = runs
    assert first["llm"] is None and first["settings"].llm == "off"        # "off": no LLM at all
    assert first["settings"].display_name == "talk.jsonl"
    assert first["input"] == tmp_path / "input.jsonl" and first["out"] == tmp_path
    for run in runs:
        s = run["settings"]
        # media_paths=False whatever the options say: a path in an upload names a server file.
        assert s.media_paths is False and s.report and not s.progress
        assert s.max_duration_s == 60 and s.window == 4
    assert len(opened) == 1 and opened[0].llm == "embedded"                # opened once, shared
    assert second["llm"] is third["llm"] and second["llm"] is not None
    assert second["settings"].llm == "embedded" and second["settings"].display_name == "clip.wav"
    llm = second["llm"]
    eng.close()
    assert llm.closed
    with pytest.raises(LanternError, match="base_url"):                   # checked at start-up
        PredictEngine(ServeSettings(jobs_dir=tmp_path, llm="openai"), predict=predict,
                      make_llm=make_llm)
    # The app closes the engine it was given when it shuts down.
    engine = FakeEngine()
    s = Server(create_app(ServeSettings(jobs_dir=tmp_path / "jobs", llm="off"), engine=engine))
    s.stop()
    assert engine.closed == 1


# --- limits and bad uploads ------------------------------------------------------------------------
def _raw(server: Server, head: bytes, body_chunks=(), timeout: float = 20) -> bytes:
    """Send a request by hand (headers, then chunks), then read whatever comes back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):
            for chunk in body_chunks:
                sock.sendall(chunk)
        out = b""
        with contextlib.suppress(OSError):
            while b"</html>" not in out:
                data = sock.recv(65536)
                if not data:
                    break
                out += data
        return out


def test_oversized_uploads_get_413_and_leave_nothing(server, fake):
    before = job_dirs(server.jobs_dir)
    limit = LIMIT_MB << 20
    # 1.5x the limit with an honest Content-Length: refused up front, then drained so the
    # client (here http.client, which sends all of it first) can read the page.
    status, _, body = server.upload("big.jsonl", b"x" * (limit * 3 // 2))
    assert status == 413 and b"File too large" in body and b"1 MB" in body
    # Just over the limit: the Content-Length passes, the streamed file part trips the bound.
    status, _, body = server.upload("big.jsonl", b"x" * (limit + 1))
    assert status == 413 and b"larger than the limit" in body
    # A huge Content-Length is answered before any byte of the body is sent.
    _, ctype = multipart("huge.wav", b"")
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nOrigin: {server.url}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {100 * limit}\r\n\r\n").encode()
    reply = _raw(server, head)
    assert reply.startswith(b"HTTP/1.1 413") and b"100 MB" in reply
    # Chunked (no Content-Length) and never finished: the answer still comes, i.e. the body is
    # parsed and bounded as it streams, not read whole first. (Just over the bound, so that
    # nothing unread is left when the server closes, which would reset the connection.)
    body, ctype = multipart("stream.jsonl", b"y" * (limit + 1000))
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nOrigin: {server.url}\r\n"
            f"Content-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunks = [b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
              for i in range(0, len(body), 65536)]          # no terminating 0-chunk: never ends
    reply = _raw(server, head, chunks)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert fake.calls == [] and job_dirs(server.jobs_dir) == before


@pytest.mark.parametrize("name", ["virus.exe", "noext", "talk.jsonl.exe", "..", "report.html",
                                  "a.JSONL\\..\\x.sh"])
def test_unsupported_suffix_is_415(server, fake, name):
    status, _, body = server.upload(name, b"MZ\x90\x00")
    assert status == 415 and b"Unsupported file type" in body and b".jsonl" in body
    assert fake.calls == []


def test_not_a_form_is_415_and_no_file_is_400(server, fake):
    status, _, _ = server.request("POST", "/predict", b'{"a": 1}', {"Content-Type": "application/json"})
    assert status == 415
    body, ctype = multipart(None, b"", {"llm": "on"})
    status, _, page = server.request("POST", "/predict", body, {"Content-Type": ctype})
    assert status == 400 and b"choose a file" in page
    status, _, page = server.upload("", b"")          # a browser form with no file chosen
    assert status == 400 and b"choose a file" in page
    status, _, page = server.request("POST", "/predict", b"--x\r\ngarbage",
                                     {"Content-Type": "multipart/form-data"})
    assert status == 400
    assert fake.calls == []


def test_empty_file_is_400(server, fake):
    before = job_dirs(server.jobs_dir)
    status, _, body = server.upload("talk.jsonl", b"")
    assert status == 400 and b"Empty file" in body and b"talk.jsonl is empty" in body
    assert fake.calls == [] and job_dirs(server.jobs_dir) == before


EVIL = '<img src=x onerror=alert(1)>.jsonl'


def test_bad_input_is_422_with_escaped_message_and_no_server_paths(server, fake):
    before = job_dirs(server.jobs_dir)
    status, headers, body = server.upload(EVIL, conversation("CORRUPT"))
    page = body.decode()
    assert status == 422 and headers["content-type"].startswith("text/html")
    assert html.escape(EVIL) in page and "<img src=x" not in page       # the user's name, escaped
    assert "line 1, field &#x27;text&#x27;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page and "<script>alert" not in page
    assert str(server.jobs_dir) not in page and "input.jsonl" not in page
    status, _, body = server.upload("long.wav", b"LANTERNERR")
    assert status == 422 and b"&lt;b&gt;bold&lt;/b&gt;" in body and b"long.wav" in body
    assert str(server.jobs_dir).encode() not in body
    assert job_dirs(server.jobs_dir) == before               # failed jobs are removed


def test_unexpected_error_is_a_generic_500_and_logged(server, fake, caplog):
    caplog.set_level("ERROR", logger="lantern.serve")
    status, _, body = server.upload("talk.jsonl", conversation("BOOM"))
    assert status == 500 and b"Internal error" in body
    assert b"internal detail" not in body and b"Traceback" not in body
    logged = [r for r in caplog.records if r.name == "lantern.serve" and r.exc_info]
    assert logged and "internal detail" in str(logged[-1].exc_info[1])


# --- path safety ----------------------------------------------------------------------------------
def test_path_traversal_never_reaches_files(server, fake, tmp_path):
    secret = f"SECRET-{secrets.token_hex(4)}"
    status, headers, _ = server.upload("talk.jsonl", conversation(secret))
    job = headers["location"].rsplit("/", 1)[1]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text(secret)
    link = "f" * 32
    (server.jobs_dir / link).symlink_to(outside, target_is_directory=True)
    probes = [
        "/reports/..%2F..%2Fetc%2Fpasswd", "/reports/../../etc/passwd", "/reports/%2e%2e/%2e%2e/etc/passwd",
        "/reports/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/reports/..", "/reports/%2e%2e", "/reports//etc/passwd",
        "/reports/" + "0" * 32, f"/reports/{'0' * 32}/report.html", f"/reports/{job.upper()}",
        f"/reports/{job}%00", f"/reports/{job}/input.jsonl", f"/reports/{job}/..%2Finput.jsonl",
        f"/reports/{job}/../{job}/input.jsonl", f"/reports/{job}/predictions.json%2F..%2Finput.jsonl",
        f"/reports/{job}/.", "/reports/%2Fetc%2Fpasswd", "/reports/%2Fetc/passwd",
        f"/reports/{link}", f"/reports/{link}/report.html", f"/reports/{job[:31]}", f"/reports/{job}0",
        "/etc/passwd", "/..%2F..%2Fetc%2Fpasswd", f"/reports/{job}/predictions.json/..",
    ]
    for path in probes:
        status, _, body = server.get(path)
        assert status in (400, 404), (path, status)
        assert secret.encode() not in body and b"root:" not in body, path
    status, _, body = server.get(f"/reports/{job}")               # the real one still works
    assert status == 200 and secret.encode() in body
    (server.jobs_dir / link).unlink()


def test_foreign_host_and_cross_site_post_are_refused(server, fake):
    status, _, _ = server.get("/", headers={"Host": "evil.example"})
    assert status == 400
    status, _, _ = server.upload("talk.jsonl", conversation("hi"), headers={"Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = server.upload("talk.jsonl", conversation("hi"), headers={"Origin": "null"})
    assert status == 403
    status, _, _ = server.upload("talk.jsonl", conversation("hi"),
                                 headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 303
    assert len(fake.calls) == 1


def test_cross_site_check_compares_scheme_host_and_port(server, real_server, fake):
    """Issue 9.11: the port was ignored (another local service could post) and a POST without
    Origin was accepted."""
    own = f"http://127.0.0.1:{server.port}"
    for origin in (f"http://localhost:{server.port + 1}", f"http://127.0.0.1:{server.port + 1}",
                   f"https://127.0.0.1:{server.port}", f"http://localhost:{server.port}",
                   "http://127.0.0.1", own + "/predict", "file://", "null", None):
        status, _, body = server.upload("talk.jsonl", conversation("hi"), headers={"Origin": origin})
        assert status == 403, (origin, status)
    assert b"Origin header naming this server" in body        # no Origin: what to send instead
    assert fake.calls == []
    # A browser that hides the origin still says "same-origin" (pages cannot forge Sec-Fetch-*).
    status, _, _ = server.upload("talk.jsonl", conversation("hi"),
                                 headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert status == 303
    status, _, _ = server.upload("talk.jsonl", conversation("hi"),
                                 headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _, _ = server.upload("talk.jsonl", conversation("hi"), headers={"Origin": own.upper()})
    assert status == 303 and len(fake.calls) == 2
    # Also without a Host allow-list (a server on 0.0.0.0): the check still holds.
    status, _, _ = real_server.upload("talk.jsonl", conversation("hi"), headers={"Origin": None})
    assert status == 403
    # Our own pages send the referrer policy that lets browsers name the origin on posts.
    _, headers, _ = server.get("/")
    assert headers["referrer-policy"] == "same-origin"


def _post_head(server: Server, ctype: str, length: int | None = None) -> bytes:
    return (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nOrigin: {server.url}\r\n"
            f"Content-Type: {ctype}\r\n" + (f"Content-Length: {length}\r\n" if length is not None
                                             else "Transfer-Encoding: chunked\r\n") + "\r\n").encode()


def test_truncated_multipart_body_is_refused(server, fake):
    """Issue 9.6: a body cut before its final boundary gave a report of 6 of 12 utterances."""
    before = job_dirs(server.jobs_dir)
    data = conversation(*[f"utterance {i}" for i in range(12)])
    body, ctype = multipart("talk.jsonl", data)
    cut = body[: body.index(b"utterance 6")]
    status, _, page = server.request("POST", "/predict", cut, {"Content-Type": ctype})
    assert status == 400 and b"Incomplete upload" in page and b"nothing was analysed" in page
    # Cut within the closing boundary itself.
    status, _, _ = server.request("POST", "/predict", body[:-5], {"Content-Type": ctype})
    assert status == 400
    # Shorter than its Content-Length: the client stops sending and closes its side.
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(_post_head(server, ctype, len(body)) + cut)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert not reply.startswith(b"HTTP/1.1 303"), reply[:200]   # uvicorn: the client is gone
    deadline = time.monotonic() + 10
    while job_dirs(server.jobs_dir) != before:                # its job folder is removed
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert fake.calls == []
    status, _, _ = server.request("POST", "/predict", body, {"Content-Type": ctype})
    assert status == 303                                       # the whole body still works


def test_stalled_uploads_time_out_and_count_in_the_queue(tmp_path, fake):
    """Issue 9.10: an upload that stalls held its job folder for ever, counted nowhere."""
    s = Server(create_app(ServeSettings(jobs_dir=tmp_path / "jobs", llm="off", max_queue=1,
                                        upload_idle_s=1.5, upload_timeout_s=30), engine=fake))
    try:
        body, ctype = multipart("talk.jsonl", conversation("hello", "there"))
        with socket.create_connection(("127.0.0.1", s.port), timeout=20) as sock:
            sock.sendall(_post_head(s, ctype, len(body)) + body[:40])     # ... and nothing more
            deadline = time.monotonic() + 10
            while json.loads(s.get("/healthz")[2])["uploading"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert len(job_dirs(s.jobs_dir)) == 1
            # The stalled upload fills the queue (max_queue=1): the next one is told to wait.
            status, headers, page = s.upload("other.jsonl", conversation("hi"))
            assert status == 503 and headers["retry-after"] == "60" and b"in progress" in page
            t0 = time.monotonic()
            reply = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    reply += chunk
        assert reply.startswith(b"HTTP/1.1 408") and b"no data for 1.5 s" in reply
        assert time.monotonic() - t0 < 10
        assert json.loads(s.get("/healthz")[2])["uploading"] == 0 and job_dirs(s.jobs_dir) == []
        status, _, _ = s.upload("talk.jsonl", conversation("hello"))
        assert status == 303 and len(fake.calls) == 1
    finally:
        s.stop()
    # A client that trickles bytes to stay under the idle limit meets the total limit.
    s = Server(create_app(ServeSettings(jobs_dir=tmp_path / "jobs2", llm="off", upload_idle_s=5,
                                        upload_timeout_s=1.5), engine=fake))
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=20) as sock:
            sock.sendall(_post_head(s, ctype, len(body)))
            reply = b""
            with contextlib.suppress(OSError):
                for byte in body[:30]:
                    sock.sendall(bytes([byte]))
                    if select.select([sock], [], [], 0.2)[0]:     # the answer came: stop sending
                        break
                while chunk := sock.recv(65536):
                    reply += chunk
        assert reply.startswith(b"HTTP/1.1 408") and b"longer than 1.5 s" in reply
    finally:
        s.stop()


def test_nul_in_the_uploaded_file_name_never_reaches_the_report(server, fake):
    """Issue 9.13: a NUL (or a right-to-left override) in the client's file name went into the
    report raw."""
    status, headers, _ = server.upload("ta\x00lk\u202e.jsonl", conversation("hi"))
    assert status == 303
    assert fake.calls[-1]["display_name"] == "talk.jsonl"


def test_jobs_are_pruned_but_running_ones_kept(tmp_path):
    jobs = JobStore(tmp_path, keep=2)
    made = []
    for i in range(4):
        job = jobs.new()
        assert JOB_ID_RE.fullmatch(job.id) and job.dir == tmp_path / job.id
        (job.dir / "report.html").write_text("r")
        os.utime(job.dir, (1000 + i, 1000 + i))
        made.append(job)
        if i < 3:
            jobs.finish(job, ok=True)
    # made[3] is still running: it is never removed and not counted.
    assert sorted(job_dirs(tmp_path)) == sorted([made[1].id, made[2].id, made[3].id])
    assert jobs.path(made[3].id) is None                  # not served while running
    jobs.finish(made[3], ok=False)                        # a failed job is removed
    assert sorted(job_dirs(tmp_path)) == sorted([made[1].id, made[2].id])
    broken = tmp_path / ("a" * 32)
    broken.mkdir()                                        # a crash left it without a report
    (tmp_path / "notes.txt").write_text("not a job")
    JobStore(tmp_path, keep=5).prune(incomplete=True)
    assert not broken.exists() and (tmp_path / "notes.txt").exists()


def test_settings_are_checked_and_the_extra_is_named(monkeypatch, tmp_path):
    for bad in ({"llm": "gpt"}, {"max_upload_mb": 0}, {"workers": 0}):
        with pytest.raises(LanternError):
            ServeSettings(**bad)
    with pytest.raises(LanternError, match="base_url"):
        create_app(ServeSettings(jobs_dir=tmp_path, llm="openai"))
    monkeypatch.setitem(__import__("sys").modules, "starlette", None)
    with pytest.raises(LanternError, match=r"pip install 'lantern-emotion\[serve\]'"):
        serve(port=0, jobs_dir=tmp_path)


# --- load -------------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def test_concurrent_uploads_have_no_cross_talk_and_healthz_stays_responsive(server, fake):
    fake.delay = 0.1
    n_uploads, n_threads = 20, 8
    markers = [f"MARK{i:02d}x{secrets.token_hex(6)}" for i in range(n_uploads)]
    done = threading.Event()
    health: list[tuple[float, int]] = []

    def poll_health():
        while not done.is_set():
            t0 = time.perf_counter()
            status, _, body = server.get("/healthz", timeout=30)
            assert status == 200
            health.append((time.perf_counter() - t0, json.loads(body)["running"]))
            time.sleep(0.02)

    def one(i: int):
        t0 = time.perf_counter()
        data = conversation(*[f"utterance {j} of upload {markers[i]}" for j in range(i + 1)])
        status, headers, _ = server.upload(f"talk{i}.jsonl", data)
        assert status == 303, status
        status, _, page = server.get(headers["location"])
        assert status == 200
        seen = [m for m in markers if m.encode() in page]
        assert seen == [markers[i]], (i, seen)                    # its own marker, no other
        status, _, doc = server.get(headers["location"] + "/predictions.json")
        assert status == 200 and json.loads(doc)["input"].count(markers[i]) == i + 1
        return time.perf_counter() - t0

    poller = threading.Thread(target=poll_health, daemon=True)
    t_start = time.perf_counter()
    poller.start()
    try:
        with ThreadPoolExecutor(n_threads) as pool:
            futures = [pool.submit(one, i) for i in range(n_uploads)]
            latencies = [f.result(timeout=60) for f in futures]
    finally:
        done.set()
        poller.join(30)
    wall = time.perf_counter() - t_start
    health_s = [h for h, _ in health]
    print(f"\n{n_uploads} uploads from {n_threads} threads in {wall:.2f} s (workers=1, fake predict "
          f"{fake.delay:.2f} s): upload->report latency p50 {_pct(latencies, 50):.3f} s, "
          f"p90 {_pct(latencies, 90):.3f} s, p99 {_pct(latencies, 99):.3f} s, max {max(latencies):.3f} s; "
          f"/healthz x{len(health)}: p50 {_pct(health_s, 50) * 1000:.1f} ms, "
          f"p99 {_pct(health_s, 99) * 1000:.1f} ms, max {max(health_s) * 1000:.1f} ms")
    assert len(fake.calls) == n_uploads and fake.max_active == 1      # predictions never overlap
    assert len({c["out"] for c in fake.calls}) == n_uploads            # one directory per job
    assert all(c["thread"] != server.thread.name for c in fake.calls)
    # /healthz answered while a prediction was running: the event loop was never blocked.
    assert any(running >= 1 for _, running in health)
    assert max(health_s) < 10                                          # generous, not a benchmark


# --- the real engine --------------------------------------------------------------------------------
def test_real_predict_end_to_end(real_server):
    status, _, page = real_server.get("/")
    assert status == 200 and 'name="llm"' not in page.decode()        # --llm off: no checkbox
    data = conversation("I am so happy today!", "This is terrible, I hate it.", "Okay <b>fine</b>.")
    status, headers, _ = real_server.upload("talk.jsonl", data)
    assert status == 303
    status, _, body = real_server.get(headers["location"])
    page = body.decode()
    assert status == 200 and "<title>Emotion report" in page and "I am so happy today!" in page
    assert "Okay &lt;b&gt;fine&lt;/b&gt;." in page
    status, _, body = real_server.get(headers["location"] + "/predictions.json")
    doc = json.loads(body)
    assert status == 200 and len(doc["utterances"]) == 3 and doc["llm"] is None
    assert all(u["final"] in doc["classes"] for u in doc["utterances"])
    status, _, body = real_server.get(headers["location"] + "/predictions.csv")
    assert status == 200 and body.decode().startswith("dialogue_id,utterance_id")
    # A corrupted conversation file: a 422 page that names the line, not the server's path.
    status, _, body = real_server.upload("broken.jsonl", b'{"speaker": "A", "text": "hi"}\n{"speaker": \n')
    page = body.decode()
    assert status == 422 and "line 2" in page and "broken.jsonl" in page
    assert str(real_server.jobs_dir) not in page


def test_media_paths_in_an_uploaded_file_are_refused(real_server, tmp_path):
    """Issue 9.1 (high): an uploaded conversation naming audio/video paths made the server
    transcribe its own files (absolute paths, ../), put their real paths in the report, and
    told by its error whether a file existed. Every such path is refused alike, unresolved."""
    from conftest import require_data

    existing = require_data("RAVDESS_speech_audio/Actor_01/03-01-05-02-02-01-01.wav")
    cases = [{"speaker": "A", "text": "", "audio": str(existing)},           # exists: was transcribed
             {"speaker": "A", "text": "", "video": "../../../../../../etc/hostname"},
             {"speaker": "A", "text": "", "audio": "/no/such/file.wav"},
             {"speaker": "A", "text": "hello", "image": "/etc/passwd"}]         # text given: was kept
    before = job_dirs(real_server.jobs_dir)
    pages = []
    for case in cases:
        data = conversation("fine") + (json.dumps(case) + "\n").encode()
        status, _, body = real_server.upload("talk.jsonl", data)
        page = html.unescape(body.decode())
        kind = next(k for k in ("audio", "video", "image") if k in case)
        assert status == 422, (case, status)
        assert f"line 2, field '{kind}': {kind} paths are not accepted here" in page
        assert case[kind] not in page and "etc" not in page and str(existing.parent) not in page
        pages.append(page.replace(kind, "KIND"))
    assert len(set(pages)) == 1          # the same answer whether the file exists or not
    assert job_dirs(real_server.jobs_dir) == before


def test_deeply_nested_upload_is_a_422_naming_the_line(real_server):
    """Issue 9.2: 100,000 nested arrays on one line were a 500 (RecursionError)."""
    data = conversation("hi") + b"[" * 100_000 + b"]" * 100_000 + b"\n"
    status, _, body = real_server.upload("deep.jsonl", data)
    assert status == 422 and b"deep.jsonl, line 2: JSON nested too deeply" in body


def test_real_recording_upload(real_server):
    """A real RAVDESS speech clip, uploaded as a recording: Whisper transcribes it, the report
    shows the transcript and names the user's file, not the server's."""
    from conftest import require_data

    clip = require_data("RAVDESS_speech_audio/Actor_01/03-01-05-02-02-01-01.wav")   # "Dogs are sitting..."
    status, headers, _ = real_server.upload("my clip.wav", clip.read_bytes())
    assert status == 303, status
    status, _, body = real_server.get(headers["location"] + "/predictions.json")
    doc = json.loads(body)
    assert status == 200 and doc["input"]["kind"] == "recording" and doc["input"]["path"] == "my clip.wav"
    assert "door" in " ".join(u["text"] for u in doc["utterances"]).lower()
    assert doc["transcription"]["language"] == "en"


# --- a real browser -------------------------------------------------------------------------------
def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = f"headless browser test needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; it is mandatory in CI")
        pytest.skip(reason)


def test_browser_upload_form(real_server, tmp_path):
    _browser_or_skip()
    from PIL import Image, ImageStat
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    talk = tmp_path / "browser talk.jsonl"
    talk.write_bytes(conversation("We won the match, I can't believe it!", "I'm so proud of you.",
                                  "Why didn't anyone call me?"))
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(real_server.url + "/")
        assert "Upload" in driver.title
        driver.find_element(By.CSS_SELECTOR, 'input[type="file"]').send_keys(str(talk))
        driver.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
        WebDriverWait(driver, 60).until(EC.title_contains("Emotion report"))
        assert re.search(r"/reports/[0-9a-f]{32}$", driver.current_url)
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "We won the match" in text and "predictions.csv" in text
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    img = Image.open(shot).convert("L")
    stat = ImageStat.Stat(img)
    print(f"\nscreenshot {shot} {img.size}, grey mean {stat.mean[0]:.0f} sd {stat.stddev[0]:.0f}")
    assert img.size[0] >= 800 and stat.stddev[0] > 10     # not a blank page
    lo, hi = img.getextrema()
    assert hi - lo > 100


def test_serve_runs_uvicorn_and_guards_the_host(tmp_path):
    """``serve()`` as the CLI calls it, in a subprocess: it answers on loopback names only."""
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from lantern.web import serve; "
            f"serve(port={port}, jobs_dir={str(tmp_path / 'jobs')!r}, llm='off', max_upload_mb=2)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert json.loads(r.read())["llm"] == "off"
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve() did not start"
                time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/", headers={"Host": "attacker.example"})
        assert conn.getresponse().status == 400                     # DNS rebinding is refused
        conn.close()
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=10) as r:
            assert r.status == 200 and b"at most 2 MB" in r.read()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert f"lantern serve: http://127.0.0.1:{port}/" in out, out
