"""Uploads: the multipart body streamed to disk under its bounds, and what of the client's
file name is ever used.

The single file part goes straight to ``input<suffix>`` in the job folder in chunks; every
bound (file size, whole body, form parts, header and field length, idle and total time) is
checked as bytes arrive, also for chunked bodies without a ``Content-Length``. Only the suffix
of the client's file name is used for a path, and only from :data:`UPLOAD_SUFFIXES`: every
suffix ``lantern predict`` reads (the table in :mod:`lantern.predict.media`). The rest of the
name is only shown to the user, cleaned of control and format characters.

>>> client_suffix("C:\\\\fakepath\\\\Talk.JSONL"), client_suffix("../../etc/passwd"), client_suffix("a.exe")
('.jsonl', None, None)
>>> client_suffix("clip.AAC"), client_suffix("film.avi")
('.aac', '.avi')
>>> client_name("talk\\x00<b>.jsonl")
'talk<b>.jsonl'
>>> format_mb(1536 * 1024), format_mb(100 << 20)
('1.5 MB', '100 MB')
"""

from __future__ import annotations

import os
import time
import unicodedata
from pathlib import Path, PurePosixPath

from lantern.predict.media import (AUDIO_SUFFIXES, CONVERSATION_SUFFIXES, INPUT_SUFFIXES,
                                   VIDEO_SUFFIXES)
from lantern.web.errors import ClientGone, HTTPError

#: The allow-list of upload suffixes: exactly what ``lantern predict`` accepts.
UPLOAD_SUFFIXES = frozenset(INPUT_SUFFIXES)

FORM_OVERHEAD = 64 * 1024   # multipart boundaries, part headers and the small form fields
MAX_FIELD_BYTES = 1024      # a non-file form field (the LLM checkbox) is tiny
MAX_HEADER_BYTES = 4096     # one part header value
MAX_PARTS = 8
MAX_SHOWN_NAME = 120        # characters of the client's file name kept for messages


def client_name(filename: str) -> str:
    """The last path component of what the client calls its file (for messages and the
    report only), without control and format characters: a NUL or a right-to-left override
    in a name would reach the report raw or disguise the suffix."""
    name = "".join(c for c in filename if unicodedata.category(c) not in ("Cc", "Cf"))
    name = PurePosixPath(name.replace("\\", "/")).name
    return name[:MAX_SHOWN_NAME]


def client_suffix(filename: str) -> str | None:
    """The allow-listed suffix of the client's file name, else None. Nothing else of the
    client's name is ever used for a path."""
    suffix = PurePosixPath(client_name(filename)).suffix.lower()
    return suffix if suffix in UPLOAD_SUFFIXES else None


def format_mb(n_bytes: int | float) -> str:
    """A byte count as the limits are stated: ``1 MB``, ``1.5 MB``, ``100 MB``."""
    mb = n_bytes / (1024 * 1024)
    return f"{mb:.0f} MB" if mb >= 10 or mb == int(mb) else f"{mb:.1f} MB"


def check_upload_headers(headers, max_bytes: int) -> None:
    """Refuse, before any byte of the body is read, what is not a form or is declared too
    large by its ``Content-Length``."""
    ctype = headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise HTTPError(415, "Unsupported upload", "send the file as multipart/form-data "
                        "(the form on the start page does)")
    length = headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise HTTPError(400, "Bad upload", "invalid Content-Length") from None
        if n > max_bytes + FORM_OVERHEAD:
            raise HTTPError(413, "File too large",
                            f"the upload ({format_mb(n)}) is larger than the limit of "
                            f"{format_mb(max_bytes)}")


def _unsupported_type(filename: str) -> HTTPError:
    shown = PurePosixPath(filename).suffix or "(no suffix)"
    return HTTPError(415, "Unsupported file type",
                     f"{filename}: files of type {shown} are not accepted; upload a "
                     f"conversation file ({', '.join(CONVERSATION_SUFFIXES)}), audio "
                     f"({', '.join(AUDIO_SUFFIXES)}) or video ({', '.join(VIDEO_SUFFIXES)})")


class StreamedUpload:
    """Streams one multipart body: the single file part goes straight to ``input<suffix>`` in
    ``job_dir`` in chunks, small fields are kept, and every bound is checked as bytes arrive.

    ``job_dir`` may be set after construction: an upload refused from its headers alone never
    gets a job folder.
    """

    def __init__(self, max_bytes: int, idle_s: float = 30.0, timeout_s: float = 600.0,
                 job_dir: Path | None = None):
        self.job_dir, self.max_bytes = job_dir, max_bytes
        self.idle_s, self.timeout_s = idle_s, timeout_s
        self.complete = False      # the final multipart boundary was read
        self.fields: dict[str, str] = {}
        self.filename: str | None = None     # the client's name, for messages only
        self.path: Path | None = None
        self.size = 0
        self.received = 0          # body bytes read so far
        self.body_done = False
        self._parts = 0
        self._name = ""
        self._disposition = b""
        self._header_name = b""
        self._header_value = b""
        self._value = bytearray()
        self._fh = None
        self._in_file = False

    # --- python-multipart callbacks -------------------------------------------------------------
    def on_part_begin(self):
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise HTTPError(400, "Bad upload", f"too many form fields (at most {MAX_PARTS})")
        self._name, self._disposition, self._value, self._in_file = "", b"", bytearray(), False

    def on_header_field(self, data, start, end):
        self._header_name += data[start:end]

    def on_header_value(self, data, start, end):
        self._header_value += data[start:end]
        if len(self._header_value) > MAX_HEADER_BYTES:
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
        self.filename = client_name(options[b"filename"].decode("utf-8", "replace"))
        if not self.filename:
            raise HTTPError(400, "No file chosen", "choose a file to upload")
        suffix = client_suffix(self.filename)
        if suffix is None:
            raise _unsupported_type(self.filename)
        self.path = self.job_dir / f"input{suffix}"
        self._fh = open(self.path, "xb")   # noqa: SIM115 - closed in on_part_end / close()
        self._in_file = True

    def on_part_data(self, data, start, end):
        n = end - start
        if self._in_file:
            self.size += n
            if self.size > self.max_bytes:
                raise HTTPError(413, "File too large", f"{self.filename} is larger than the "
                                f"limit of {format_mb(self.max_bytes)}")
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

    # --- reading the body ------------------------------------------------------------------------
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
                    raise HTTPError(413, "File too large", "the upload is larger than the limit "
                                    f"of {format_mb(self.max_bytes)}")
                if chunk:
                    parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise HTTPError(400, "Bad upload", f"the form data could not be read ({exc})") from None
        finally:
            self.close()
        self._check_complete(request.headers.get("content-length", ""))

    def _check_complete(self, length: str) -> None:
        # python-multipart's finalize() does not check that the form ended: without this a
        # body cut short would be analysed in part, and data lost without a word.
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

    async def settle_before_refusal(self, err: HTTPError, request) -> None:
        """Before ``err`` is answered: if the client is still sending and the rest is not much
        (known from Content-Length), read and drop it first; otherwise closing the socket with
        unread data resets the connection and the browser never shows our page."""
        length = request.headers.get("content-length", "")
        expects = request.headers.get("expect", "").lower() == "100-continue"
        if expects and self.received == 0:
            return   # the client waits for our go-ahead: it sent nothing yet
        if err.status == 408:
            return   # it is not sending: waiting for the rest is pointless
        if not self.body_done and length.isdigit():
            rest = int(length) - self.received
            if rest <= self.max_bytes + FORM_OVERHEAD:
                await self.drain(request, rest)

    def user_message(self, exc: Exception, limit: int = 2000) -> str:
        """``exc``'s message as the user may see it: messages name the server's file
        (``…/<job>/input.jsonl``); the user's own file name replaces it."""
        text = str(exc)
        if self.path is not None:
            text = text.replace(str(self.path), self.filename or self.path.name)
        if self.job_dir is not None:
            text = text.replace(str(self.job_dir) + os.sep, "").replace(str(self.job_dir), "")
        return text if len(text) <= limit else text[:limit] + " …"
