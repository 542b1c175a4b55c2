"""``lantern serve``: a small local web app to upload a conversation or a recording and read its
emotion report.

The app is a thin layer over :func:`lantern.predict.predict`. What it adds is what a web front
end needs so that it is safe to leave running:

* uploads are streamed to disk in chunks and cut off with 413 as soon as they pass the bound
  (an oversized ``Content-Length`` is refused before any byte is parsed or stored; what the
  client is still sending is read and dropped, up to one more bound's worth, only so that it
  can read the error page instead of a connection reset). A body that ends before the form's
  final boundary, or before its ``Content-Length``, is refused (400), never analysed in part.
  A body that stalls (no byte for ``upload_idle_s``) or takes longer than ``upload_timeout_s``
  is answered 408; uploads in progress count towards ``max_queue`` and show in ``/healthz``;
* media paths inside an uploaded conversation file (``audio``/``video``/``image``) are refused
  (422) before they reach the file system: they would name files on the server. Media is
  accepted only as the uploaded file itself;
* a POST is accepted only with an ``Origin`` equal to the server's own (scheme, host and
  port; or, from a browser that hides it, ``Sec-Fetch-Site: same-origin``): browsers send it
  with every form post, so a page elsewhere cannot post here (cross-site request forgery),
  and scripts add it (``curl -H "Origin: http://127.0.0.1:8000"``);
* every upload gets a fresh job directory named by a random id (``secrets.token_hex(16)``) and
  is stored as ``input<suffix>``; only the suffix of the client's file name is used, and only
  from an allow-list. Job ids are checked against a strict pattern before any file-system use
  and only three known file names are ever served, so no request can reach other files;
* predictions run in worker threads behind a capacity limiter (``workers``, default 1: the
  embedded LLM is not thread-safe), so the event loop and ``/healthz`` stay responsive;
* errors become small HTML pages with the (escaped) message and the right status; unexpected
  ones are logged and answered with a generic 500, never a stack trace;
* old jobs are pruned (the newest ``keep_jobs`` are kept).

The app is plain Starlette (it comes with FastAPI) on uvicorn, an optional extra
(``pip install 'lantern-emotion[serve]'``) imported only when an app is created or served.

>>> ServeSettings(max_upload_mb=1).max_upload_bytes
1048576
>>> _client_suffix("C:\\\\fakepath\\\\Talk.JSONL"), _client_suffix("../../etc/passwd"), _client_suffix("a.exe")
('.jsonl', None, None)
>>> _client_name("talk\\x00<b>.jsonl"), _origin_tuple("http://LocalHost:8000")
('talk<b>.jsonl', ('http', 'localhost', 8000))
>>> bool(JOB_ID_RE.fullmatch("0" * 32)), bool(JOB_ID_RE.fullmatch("../../etc/passwd"))
(True, False)
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import os
import re
import secrets
import shutil
import threading
import time
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from lantern.errors import DataError, LanternError
from lantern.predict.outputs import MANIFEST

log = logging.getLogger("lantern.serve")

INSTALL_HINT = "lantern serve needs the web extra: pip install 'lantern-emotion[serve]'"

#: The allow-list of upload suffixes, by kind (the upload page lists them).
CONVERSATION_SUFFIXES = (".jsonl", ".json", ".csv")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm")
ALLOWED_SUFFIXES = frozenset(CONVERSATION_SUFFIXES + AUDIO_SUFFIXES + VIDEO_SUFFIXES)

#: Job ids are exactly what ``secrets.token_hex(16)`` makes; nothing else touches the disk.
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")

#: The only files served from a job directory, with their media types.
SERVED_FILES = {
    "report.html": "text/html; charset=utf-8",
    "predictions.json": "application/json",
    "predictions.csv": "text/csv; charset=utf-8",
}

CHUNK = 64 * 1024
FORM_OVERHEAD = 64 * 1024   # multipart boundaries, part headers and the small form fields
MAX_FIELD_BYTES = 1024      # a non-file form field (the LLM checkbox) is tiny
MAX_PARTS = 8


@dataclass
class ServeSettings:
    """What the server allows. ``llm`` is the backend that the upload form may switch on
    ("embedded" | "openai" | "off": with "off" the form offers no refinement)."""

    jobs_dir: str | Path | None = None      # default: <cache dir>/serve-jobs
    max_upload_mb: float = 50.0
    llm: str = "embedded"
    workers: int = 1
    keep_jobs: int = 100
    max_duration_s: float = 1800.0
    max_queue: int = 32                     # uploads in progress + jobs waiting, before 503
    upload_idle_s: float = 30.0             # an upload that sends no byte this long gets 408 ...
    upload_timeout_s: float = 600.0         # ... and so does one that takes longer than this
    allowed_hosts: tuple[str, ...] | None = None   # Host header names accepted; None = any
    predict_options: dict[str, Any] = field(default_factory=dict)   # more PredictSettings fields

    def __post_init__(self):
        if self.llm not in ("embedded", "openai", "off"):
            raise LanternError(f"--llm must be embedded, openai or off, not {self.llm!r}")
        if not (self.max_upload_mb > 0 and math.isfinite(self.max_upload_mb)):
            raise LanternError(f"--max-upload-mb must be positive, not {self.max_upload_mb}")
        if int(self.workers) < 1:
            raise LanternError(f"--workers must be at least 1, not {self.workers}")
        if int(self.keep_jobs) < 1:
            raise LanternError(f"keep_jobs must be at least 1, not {self.keep_jobs}")
        for name in ("upload_idle_s", "upload_timeout_s"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise LanternError(f"{name} must be positive, not {getattr(self, name)}")
        self.workers = int(self.workers)
        self.keep_jobs = int(self.keep_jobs)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def resolved_jobs_dir(self) -> Path:
        if self.jobs_dir is not None:
            root = Path(self.jobs_dir)
        else:
            from lantern.paths import cache_dir
            root = cache_dir() / "serve-jobs"
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return root.resolve()


# --- small helpers (no web framework needed) ------------------------------------------------------
class HTTPError(Exception):
    """An answer for the user: status code, a title and a plain-text message (escaped later)."""

    def __init__(self, status: int, title: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.title, self.message, self.headers = status, title, message, headers or {}


def _client_name(filename: str) -> str:
    """The last path component of what the client calls its file (for messages and the
    report only), without control and format characters: a NUL or a right-to-left override
    in a name would reach the report raw or disguise the suffix."""
    name = "".join(c for c in filename if unicodedata.category(c) not in ("Cc", "Cf"))
    name = PurePosixPath(name.replace("\\", "/")).name
    return name[:120]


def _client_suffix(filename: str) -> str | None:
    """The allow-listed suffix of the client's file name, else None. Nothing else of the
    client's name is ever used for a path."""
    suffix = PurePosixPath(_client_name(filename)).suffix.lower()
    return suffix if suffix in ALLOWED_SUFFIXES else None


def _mb(n_bytes: int | float) -> str:
    mb = n_bytes / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 10 or mb == int(mb) else f"{mb:.1f} MB"


CSS = """
:root{--bg:#f3f4f6;--card:#fff;--fg:#111827;--muted:#4b5563;--line:#e5e7eb;--accent:#2563eb;
--err:#b91c1c;--errbg:#fef2f2}
@media (prefers-color-scheme:dark){:root{--bg:#111827;--card:#1f2937;--fg:#f9fafb;--muted:#d1d5db;
--line:#374151;--accent:#60a5fa;--err:#fca5a5;--errbg:#3b1d1d}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
background:var(--bg);color:var(--fg);line-height:1.5;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{background:var(--card);width:min(38rem,calc(100% - 2rem));margin:2rem auto;padding:2rem;
border-radius:14px;box-shadow:0 1px 3px rgba(0,0,0,.08),0 10px 30px rgba(0,0,0,.08)}
h1{font-size:1.45rem;margin:0 0 .25rem}
p{margin:.5rem 0}.muted{color:var(--muted);font-size:.92rem}
form{margin:1.25rem 0 .5rem;display:grid;gap:.9rem}
input[type=file]{width:100%;padding:.9rem;border:2px dashed var(--line);border-radius:10px;
background:transparent;color:var(--fg)}
label.check{display:flex;gap:.5rem;align-items:center}
button,a.button{justify-self:start;background:var(--accent);color:#fff;border:0;border-radius:8px;
padding:.6rem 1.3rem;font-size:1rem;cursor:pointer;text-decoration:none}
ul{padding-left:1.2rem;margin:.25rem 0}
code{background:var(--bg);padding:0 .3rem;border-radius:4px;font-size:.9em}
.error{background:var(--errbg);border-left:4px solid var(--err);padding:.75rem 1rem;border-radius:6px;
white-space:pre-wrap;overflow-wrap:anywhere;margin:1rem 0 1.25rem}
"""

#: Our own pages have no scripts at all; the report is predict's self-contained page.
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
              "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; "
              "base-uri 'none'; frame-ancestors 'none'")
# "same-origin", not "no-referrer": with no-referrer a browser sends "Origin: null" even on a
# same-origin form post, which the cross-site check must refuse. Other sites still get nothing.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def render_page(title: str, body_html: str) -> str:
    """A whole page around ``body_html`` (which must already be escaped)."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{html.escape(title)} · lantern</title><style>{CSS}</style></head>"
            f"<body><main>{body_html}</main></body></html>\n")


def render_index(settings: ServeSettings) -> str:
    """The upload form, with what files are accepted and the limits."""
    e = html.escape
    accept = ",".join(CONVERSATION_SUFFIXES + AUDIO_SUFFIXES + VIDEO_SUFFIXES)
    llm_box = ""
    if settings.llm != "off":
        llm_box = ("<label class=\"check\"><input type=\"checkbox\" name=\"llm\" value=\"on\">"
                   f"<span>Refine with the LLM (<code>{e(settings.llm)}</code> backend; slower: "
                   "minutes on a laptop)</span></label>")
    codes = lambda suffixes: " ".join(f"<code>{e(s)}</code>" for s in suffixes)  # noqa: E731
    minutes = settings.max_duration_s / 60
    body = f"""<h1>Lantern emotion report</h1>
<p class="muted">Upload a conversation or a recording; lantern predicts the emotion of every
utterance and shows a report. Everything runs on this machine; nothing is sent elsewhere.</p>
<form method="post" action="predict" enctype="multipart/form-data">
<input type="file" name="file" required accept="{e(accept)}" aria-label="conversation or recording">
{llm_box}
<button type="submit">Analyse</button>
</form>
<p class="muted">The page waits until the report is ready: seconds for a conversation file,
longer for a recording (it is transcribed first).</p>
<p><strong>Accepted files</strong></p>
<ul>
<li>Conversation files {codes(CONVERSATION_SUFFIXES)}: one utterance per line/row with
<code>speaker</code> and <code>text</code> (see <code>docs/conversation-format.md</code>); text
only: paths to media files inside are refused (they would name files on this server), upload a
recording itself instead</li>
<li>Audio {codes(AUDIO_SUFFIXES)}</li>
<li>Video {codes(VIDEO_SUFFIXES)}</li>
</ul>
<p class="muted">Limits: at most {e(_mb(settings.max_upload_bytes))} per file and
{e(f"{minutes:g}")} minutes of recording.</p>"""
    return render_page("Upload", body)


def render_error(status: int, title: str, message: str) -> str:
    body = (f"<h1>{html.escape(title)}</h1><p class=\"muted\">HTTP {int(status)}</p>"
            f"<p class=\"error\">{html.escape(message)}</p>"
            "<p><a class=\"button\" href=\"/\">Upload another file</a></p>")
    return render_page(title, body)


# --- jobs ------------------------------------------------------------------------------------------
class Jobs:
    """The job directories under one root, which of them are running, and pruning.

    Only :meth:`new` creates a directory and only :meth:`path` maps an id to one, after checking
    it against :data:`JOB_ID_RE`: no client string ever becomes part of a path.
    """

    def __init__(self, root: Path, keep: int):
        self.root, self.keep = root, keep
        self._lock = threading.Lock()
        self._active: set[str] = set()

    def new(self) -> tuple[str, Path]:
        while True:
            job_id = secrets.token_hex(16)
            path = self.root / job_id
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:   # pragma: no cover - 128 random bits
                continue
            with self._lock:
                self._active.add(job_id)
            return job_id, path

    def path(self, job_id: str) -> Path | None:
        """The directory of a finished job (its outputs complete: a manifest), or None."""
        if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
            return None
        with self._lock:
            if job_id in self._active:
                return None
        path = self.root / job_id
        if path.parent != self.root or path.is_symlink() or not path.is_dir() \
                or not (path / MANIFEST).is_file():
            return None
        return path

    def file(self, job_id: str, name: str) -> Path | None:
        """One of the :data:`SERVED_FILES` of a finished job, or None."""
        if name not in SERVED_FILES:
            return None
        job = self.path(job_id)
        if job is None:
            return None
        path = job / name
        if path.is_symlink() or not path.is_file():
            return None
        return path

    def finish(self, job_id: str, path: Path, ok: bool) -> None:
        """A job is done: keep it (ok) or remove it, then prune old ones."""
        if not ok:
            shutil.rmtree(path, ignore_errors=True)
        with self._lock:
            self._active.discard(job_id)
        self.prune()

    def prune(self, *, incomplete: bool = False) -> list[str]:
        """Remove all but the newest ``keep`` finished jobs (and, at start-up, jobs a crash left
        without a complete set of outputs). Running jobs are never touched."""
        with self._lock:
            active = set(self._active)
        done = []
        for p in self.root.iterdir():
            if not (JOB_ID_RE.fullmatch(p.name) and p.name not in active) or p.is_symlink() \
                    or not p.is_dir():
                continue
            if incomplete and not (p / MANIFEST).is_file():
                shutil.rmtree(p, ignore_errors=True)
                continue
            try:
                done.append((p.stat().st_mtime, p))
            except FileNotFoundError:   # pragma: no cover - removed meanwhile
                pass
        done.sort(reverse=True)
        removed = []
        for _, p in done[self.keep:]:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
        return removed


# --- multipart streaming ---------------------------------------------------------------------------
class _Upload:
    """Streams one multipart body: the single file part goes straight to ``input<suffix>`` in the
    job directory in chunks, small fields are kept, and every bound is checked as bytes arrive."""

    def __init__(self, job_dir: Path | None, max_bytes: int, idle_s: float = 30.0,
                 timeout_s: float = 600.0):
        self.job_dir, self.max_bytes = job_dir, max_bytes
        self.idle_s, self.timeout_s = idle_s, timeout_s
        self.complete = False      # the final multipart boundary was read
        self.fields: dict[str, str] = {}
        self.filename: str | None = None     # the client's name, for messages only
        self.path: Path | None = None
        self.size = 0
        self._parts = 0
        self._name = ""
        self._disposition = b""
        self._header_name = b""
        self._header_value = b""
        self._value = bytearray()
        self._fh = None
        self._in_file = False
        self.received = 0          # body bytes read so far
        self.body_done = False

    # python-multipart callbacks
    def on_part_begin(self):
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise HTTPError(400, "Bad upload", f"too many form fields (at most {MAX_PARTS})")
        self._name, self._disposition, self._value, self._in_file = "", b"", bytearray(), False

    def on_header_field(self, data, start, end):
        self._header_name += data[start:end]

    def on_header_value(self, data, start, end):
        self._header_value += data[start:end]
        if len(self._header_value) > 4096:
            raise HTTPError(400, "Bad upload", "a form header is too long")

    def on_header_end(self):
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self):
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self._name != "file" or self.filename is not None:
            raise HTTPError(400, "Bad upload", "send exactly one file, in the form field 'file'")
        self.filename = _client_name(options[b"filename"].decode("utf-8", "replace"))
        if not self.filename:
            raise HTTPError(400, "No file chosen", "choose a file to upload")
        suffix = _client_suffix(self.filename)
        if suffix is None:
            shown = PurePosixPath(self.filename).suffix or "(no suffix)"
            raise HTTPError(415, "Unsupported file type",
                            f"{self.filename}: files of type {shown} are not accepted; upload a "
                            f"conversation file ({', '.join(CONVERSATION_SUFFIXES)}), audio "
                            f"({', '.join(AUDIO_SUFFIXES)}) or video ({', '.join(VIDEO_SUFFIXES)})")
        self.path = self.job_dir / f"input{suffix}"
        self._fh = open(self.path, "xb")   # noqa: SIM115 - closed in on_part_end / close()
        self._in_file = True

    def on_part_data(self, data, start, end):
        n = end - start
        if self._in_file:
            self.size += n
            if self.size > self.max_bytes:
                raise HTTPError(413, "File too large",
                                f"{self.filename} is larger than the limit of {_mb(self.max_bytes)}")
            self._fh.write(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise HTTPError(400, "Bad upload", f"form field {self._name!r} is too long")

    def on_end(self):
        self.complete = True

    def on_part_end(self):
        if self._in_file:
            self._fh.close()
            self._fh = None
            self._in_file = False
        elif self._name:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    async def read(self, request) -> None:
        """Feed the request body to the parser chunk by chunk as it arrives, so the bounds hold
        while streaming (also for chunked bodies without a Content-Length)."""
        from python_multipart.exceptions import MultipartParseError
        from python_multipart.multipart import MultipartParser, parse_options_header

        _, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            raise HTTPError(400, "Bad upload", "the form data has no multipart boundary")
        callbacks = {name: getattr(self, name) for name in (
            "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value",
            "on_header_end", "on_headers_finished", "on_end")}
        parser = MultipartParser(boundary, callbacks)
        limit = self.max_bytes + FORM_OVERHEAD
        deadline = time.monotonic() + self.timeout_s
        try:
            while not self.body_done:
                chunk = await self._receive(request, deadline)
                if self.received > limit:
                    raise HTTPError(413, "File too large",
                                    f"the upload is larger than the limit of {_mb(self.max_bytes)}")
                if chunk:
                    parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise HTTPError(400, "Bad upload", f"the form data could not be read ({exc})") from None
        finally:
            self.close()
        # python-multipart's finalize() does not check that the form ended: without this a
        # body cut short would be analysed in part, and data lost without a word.
        length = request.headers.get("content-length", "")
        if not self.complete or (length.isdigit() and self.received != int(length)):
            raise HTTPError(400, "Incomplete upload",
                            "the upload ended before the end of the form data "
                            f"({self.received:,} bytes arrived"
                            + (f" of {int(length):,}" if length.isdigit() else "")
                            + "); nothing was analysed, please send the file again")

    async def _receive(self, request, deadline: float | None = None) -> bytes:
        import anyio

        wait = self.idle_s if deadline is None else min(self.idle_s, deadline - time.monotonic())
        with anyio.move_on_after(max(wait, 0.0)) as scope:
            message = await request.receive()
        if scope.cancelled_caught:
            slow = deadline is not None and time.monotonic() >= deadline
            raise HTTPError(408, "Upload timed out",
                            f"the upload took longer than {self.timeout_s:g} s" if slow else
                            f"the upload stalled: no data for {self.idle_s:g} s",
                            {"Connection": "close"})
        if message["type"] == "http.disconnect":
            raise ClientGone()
        body = message.get("body", b"")
        self.received += len(body)
        if not message.get("more_body", False):
            self.body_done = True
        return body

    async def drain(self, request, budget: int, seconds: float = 10.0) -> None:
        """Read and discard what is left of the body (at most ``budget`` bytes, ``seconds``), so
        a client that is still sending can read our error page instead of a connection reset."""
        import anyio

        with anyio.move_on_after(seconds):
            start = self.received
            while not self.body_done and self.received - start <= budget:
                try:
                    await self._receive(request)
                except (ClientGone, HTTPError):   # gone or stalled: nothing more to read
                    return


class ClientGone(Exception):
    """The client disconnected before the upload was complete."""


# --- the app ----------------------------------------------------------------------------------------
def _require_web_stack():
    try:
        import python_multipart  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise LanternError(f"{INSTALL_HINT} ({exc})") from exc


class _Engine:
    """Calls :func:`lantern.predict.predict` from worker threads, keeping one LLM open across
    requests (opening the embedded model costs seconds; llama.cpp serialises its own calls).

    ``lantern.predict`` is looked up at call time: that is the hook tests use to replace
    ``predict`` (and ``make_llm``) with fakes; by default the real engine runs.
    """

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self._llm = None
        self._lock = threading.Lock()

    def predict_settings(self, llm: str, display_name: str | None = None):
        import lantern.predict as engine

        options = dict(self.settings.predict_options)
        # media_paths=False: a path inside an uploaded file names a file on this server.
        options.update(llm=llm, display_name=display_name, max_duration_s=self.settings.max_duration_s, progress=False,
                       report=True, media_paths=False)
        return engine.PredictSettings(**options)

    def open_llm(self):
        import lantern.predict as engine

        with self._lock:
            if self._llm is None:
                self._llm = engine.make_llm(self.predict_settings(self.settings.llm))
            return self._llm

    def run(self, input_path: Path, job_dir: Path, llm: str, display_name: str | None = None):
        import lantern.predict as engine

        settings = self.predict_settings(llm, display_name)
        shared = self.open_llm() if llm != "off" else None
        return engine.predict(input_path, job_dir, settings=settings, llm=shared)

    def close(self) -> None:
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None and hasattr(llm, "close"):
            llm.close()


def _report_with_nav(page: str, base: str) -> str:
    """The report with a small bar on top linking the downloads and the upload form (the
    report itself is written for a folder on disk and knows nothing of the server)."""
    nav = (f'<div style="font:14px system-ui,sans-serif;padding:.5rem 1rem;background:#1f2937;'
           f'color:#f9fafb;display:flex;gap:1.25rem;flex-wrap:wrap" id="lantern-serve-nav">'
           f'<a style="color:inherit" href="{html.escape(base)}/predictions.json" download>'
           f'predictions.json</a>'
           f'<a style="color:inherit" href="{html.escape(base)}/predictions.csv" download>'
           f'predictions.csv</a>'
           f'<a style="color:inherit;margin-left:auto" href="/">Upload another file</a></div>')
    match = re.search(r"<body[^>]*>", page, flags=re.IGNORECASE)
    if match is None:
        return page
    return page[:match.end()] + nav + page[match.end():]


def create_app(settings: ServeSettings | None = None):
    """The web app (a Starlette ASGI app) for ``settings``; run it with uvicorn, one worker."""
    _require_web_stack()
    import anyio
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
    from starlette.routing import Route

    settings = settings or ServeSettings()
    engine = _Engine(settings)
    jobs = Jobs(settings.resolved_jobs_dir(), settings.keep_jobs)
    jobs.prune(incomplete=True)
    engine.predict_settings(settings.llm)   # a misconfiguration (openai without base_url) fails now
    state = {"limiter": None, "uploading": 0, "waiting": 0, "running": 0, "done": 0, "failed": 0}
    allowed_hosts = None
    if settings.allowed_hosts is not None:
        allowed_hosts = {h.lower().strip("[]") for h in settings.allowed_hosts}

    def html_response(status: int, content: str, headers: dict | None = None):
        return HTMLResponse(content, status_code=status,
                            headers={**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP,
                                     **(headers or {})})

    def error_response(err: HTTPError):
        return html_response(err.status, render_error(err.status, err.title, err.message), err.headers)

    def limiter():
        # Created on first use so it belongs to the running event loop.
        if state["limiter"] is None:
            state["limiter"] = anyio.CapacityLimiter(settings.workers)
        return state["limiter"]

    async def index(request: Request):
        return html_response(200, render_index(settings))

    async def healthz(request: Request):
        return JSONResponse({"status": "ok", "uploading": state["uploading"],
                             "running": state["running"], "waiting": state["waiting"],
                             "done": state["done"], "failed": state["failed"],
                             "workers": settings.workers, "llm": settings.llm},
                            headers={"Cache-Control": "no-store"})

    def check_request(request: Request) -> None:
        ctype = request.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise HTTPError(415, "Unsupported upload", "send the file as multipart/form-data "
                            "(the form on the start page does)")
        length = request.headers.get("content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                raise HTTPError(400, "Bad upload", "invalid Content-Length") from None
            if n > settings.max_upload_bytes + FORM_OVERHEAD:
                raise HTTPError(413, "File too large",
                                f"the upload ({_mb(n)}) is larger than the limit of "
                                f"{_mb(settings.max_upload_bytes)}")

    def shown_message(exc: Exception, upload: _Upload, job_dir: Path) -> str:
        # Messages name the server's file (…/<job>/input.jsonl): show the user's name instead.
        text = str(exc)
        if upload.path is not None:
            text = text.replace(str(upload.path), upload.filename or upload.path.name)
        text = text.replace(str(job_dir) + os.sep, "").replace(str(job_dir), "")
        return text if len(text) <= 2000 else text[:2000] + " …"

    async def refuse(err: HTTPError, request: Request, upload: _Upload):
        """The answer to a refused upload. If the client is still sending and the rest is not
        much (known from Content-Length), read and drop it first: otherwise closing the socket
        with unread data resets the connection and the browser never shows our page."""
        length = request.headers.get("content-length", "")
        expects = request.headers.get("expect", "").lower() == "100-continue"
        if expects and upload.received == 0:
            return error_response(err)   # the client waits for our go-ahead: it sent nothing yet
        if err.status == 408:
            return error_response(err)   # it is not sending: waiting for the rest is pointless
        if not upload.body_done and length.isdigit():
            rest = int(length) - upload.received
            if rest <= settings.max_upload_bytes + FORM_OVERHEAD:
                await upload.drain(request, rest)
        return error_response(err)

    async def predict_endpoint(request: Request):
        upload = _Upload(None, settings.max_upload_bytes, settings.upload_idle_s,
                         settings.upload_timeout_s)
        try:
            check_request(request)
            # Uploads still arriving hold a job folder too: they count like waiting jobs.
            if state["uploading"] + state["waiting"] >= settings.max_queue:
                raise HTTPError(503, "Busy", "too many uploads are in progress or waiting; try "
                                "again in a minute", {"Retry-After": "60"})
        except HTTPError as err:
            state["failed"] += 1
            log.info("upload refused %d: %s", err.status, err.message)
            return await refuse(err, request, upload)
        job_id, job_dir = jobs.new()
        upload.job_dir = job_dir
        ok = False
        t0 = time.perf_counter()
        try:
            state["uploading"] += 1
            try:
                await upload.read(request)
            finally:
                state["uploading"] -= 1
            if upload.path is None:
                raise HTTPError(400, "No file chosen", "choose a file to upload (form field 'file')")
            if upload.size == 0:
                raise HTTPError(400, "Empty file", f"{upload.filename} is empty")
            wants_llm = upload.fields.get("llm", "").strip().lower() in ("on", "1", "true", "yes")
            llm = settings.llm if wants_llm else "off"   # "off" servers never refine
            state["waiting"] += 1
            acquired = False
            try:
                async with limiter():
                    state["waiting"] -= 1
                    acquired = True
                    state["running"] += 1
                    try:
                        await anyio.to_thread.run_sync(engine.run, upload.path, job_dir, llm,
                                                  upload.filename)
                    finally:
                        state["running"] -= 1
            finally:
                if not acquired:
                    state["waiting"] -= 1
            if not (job_dir / "report.html").is_file() or not (job_dir / MANIFEST).is_file():
                raise RuntimeError(f"predict wrote no complete set of outputs in {job_dir}")
            ok = True
            state["done"] += 1
            log.info("job %s: %s (%d bytes, llm=%s) done in %.1f s", job_id, upload.path.suffix,
                     upload.size, llm, time.perf_counter() - t0)
            root = request.scope.get("root_path", "")
            return RedirectResponse(f"{root}/reports/{job_id}", status_code=303)
        except ClientGone:
            state["failed"] += 1
            log.info("job %s: the client left during the upload", job_id)
            return error_response(HTTPError(400, "Upload interrupted", "the upload was interrupted"))
        except HTTPError as err:
            state["failed"] += 1
            log.info("job %s: refused %d: %s", job_id, err.status, err.message)
            return await refuse(err, request, upload)
        except DataError as exc:
            state["failed"] += 1
            log.info("job %s: bad input: %s", job_id, exc)
            return error_response(HTTPError(422, "The file could not be read",
                                            shown_message(exc, upload, job_dir)))
        except LanternError as exc:
            state["failed"] += 1
            log.warning("job %s: prediction failed: %s", job_id, exc)
            return error_response(HTTPError(422, "The prediction failed",
                                            shown_message(exc, upload, job_dir)))
        except Exception:
            state["failed"] += 1
            log.exception("job %s: unexpected error", job_id)
            return error_response(HTTPError(500, "Internal error",
                                            "something went wrong on the server; the error is in "
                                            "the server log"))
        finally:
            upload.close()
            with anyio.CancelScope(shield=True):   # clean up even when the request is cancelled
                await anyio.to_thread.run_sync(jobs.finish, job_id, job_dir, ok)

    def file_response(job_id: str, name: str, download: bool):
        path = jobs.file(job_id, name)
        if path is None:
            raise HTTPException(404)
        headers = dict(SECURITY_HEADERS)
        if name == "report.html":
            headers["Content-Security-Policy"] = REPORT_CSP
        else:
            headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return FileResponse(path, media_type=SERVED_FILES[name], headers=headers)

    async def report(request: Request):
        job_id = request.path_params["job_id"]
        path = jobs.file(job_id, "report.html")
        if path is None:
            raise HTTPException(404)
        try:
            page = await anyio.to_thread.run_sync(path.read_text, "utf-8")
        except FileNotFoundError:   # pruned a moment ago
            raise HTTPException(404) from None
        base = f"{request.scope.get('root_path', '')}/reports/{job_id}"
        return HTMLResponse(_report_with_nav(page, base),
                            headers={**SECURITY_HEADERS, "Content-Security-Policy": REPORT_CSP})

    async def job_file(request: Request):
        name = request.path_params["name"]
        return file_response(request.path_params["job_id"], name, download=name != "report.html")

    async def http_error(request: Request, exc: HTTPException):
        titles = {404: "Not found", 405: "Method not allowed"}
        messages = {404: "there is no such page or report (reports are kept for the last "
                         f"{settings.keep_jobs} uploads)"}
        title = titles.get(exc.status_code, "Error")
        message = messages.get(exc.status_code, str(exc.detail))
        return html_response(exc.status_code, render_error(exc.status_code, title, message),
                             dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return html_response(500, render_error(500, "Internal error", "something went wrong on "
                                                "the server; the error is in the server log"))

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/predict", predict_endpoint, methods=["POST"]),
        Route("/reports/{job_id}", report, methods=["GET"]),
        Route("/reports/{job_id}/{name}", job_file, methods=["GET"]),
    ]
    middleware = [Middleware(_HostGuard, allowed=allowed_hosts)]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(engine.close)

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.jobs = jobs
    app.state.settings = settings
    return app


class _HostGuard:
    """ASGI middleware: refuse other Host names (DNS rebinding; only with ``allowed``) and any
    request that changes something (every method but GET and HEAD) whose ``Origin`` is not
    this server's own origin: same scheme, host and port (cross-site request forgery)."""

    def __init__(self, app, allowed: set[str] | None):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            from starlette.responses import HTMLResponse

            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope.get("headers", [])}
            bad = None
            if self.allowed is not None and _host_name(headers.get("host", "")) not in self.allowed:
                bad = (400, "Bad host", "this server answers only to " + ", ".join(sorted(self.allowed)))
            elif scope.get("method") not in ("GET", "HEAD"):
                own = _own_origin(scope, headers.get("host"))
                origin = headers.get("origin")
                if origin in (None, "null") and headers.get("sec-fetch-site") == "same-origin":
                    # A browser that hides the origin ("null" under some referrer policies)
                    # still says where the post comes from; pages cannot set Sec-Fetch-*.
                    pass
                elif origin is None:
                    shown = f"{own[0]}://{_join_host(own[1], own[2])}"
                    bad = (403, "Forbidden", "a post needs an Origin header naming this server "
                           f"(browsers send one; scripts add it, e.g. Origin: {shown})")
                elif _origin_tuple(origin) != own:
                    bad = (403, "Forbidden", "cross-site requests are not accepted")
            if bad is not None:
                resp = HTMLResponse(render_error(*bad), status_code=bad[0],
                                    headers={**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(host: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(origin: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an ``Origin`` header, the default port filled in; None when it
    is not one (``null``, a path, junk)."""
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or parts.path not in ("", "/") or parts.username \
            or parts.query or parts.fragment:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def _own_origin(scope, host_header: str | None) -> tuple[str, str, int | None]:
    """The origin this request was sent to: the scheme uvicorn saw (``https`` behind a proxy
    that says so) and the Host header the browser wrote (which the host check vouches for)."""
    scheme = scope.get("scheme", "http").lower()
    if host_header:
        own = _origin_tuple(f"{scheme}://{host_header.strip()}")
        if own is not None:
            return own
    server = scope.get("server") or ("", None)
    return scheme, str(server[0]).lower(), server[1]


def _join_host(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def serve(host: str = "127.0.0.1", port: int = 8000, **settings: Any) -> None:
    """Run the app with uvicorn (one process: jobs share the limiter and the LLM lock).

    Bound to a loopback address, the app answers only to loopback Host names, so a web page
    elsewhere cannot reach it through DNS rebinding. Keyword arguments are
    :class:`ServeSettings` fields.
    """
    _require_web_stack()
    try:
        import uvicorn
    except ImportError as exc:
        raise LanternError(f"{INSTALL_HINT} ({exc})") from exc
    if settings.get("allowed_hosts") is None and host in LOOPBACK_NAMES:
        settings["allowed_hosts"] = LOOPBACK_NAMES
    elif host not in LOOPBACK_NAMES:
        log.warning("listening on %s: anyone who can reach it can upload files and read reports", host)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    app = create_app(ServeSettings(**settings))
    shown = f"[{host}]" if ":" in host else host
    print(f"lantern serve: http://{shown}:{port}/  (jobs in {app.state.jobs.root})", flush=True)
    uvicorn.run(app, host=host, port=port, workers=1, log_level="info",
                timeout_graceful_shutdown=5)
