"""``lantern serve``: a small local web app to upload a conversation or a recording and read its
emotion report.

The app is a thin layer over :func:`lantern.predict.predict`. What it adds is what a web front
end needs so that it is safe to leave running (``docs/web-app.md`` has the user's view):

* uploads are streamed to disk in chunks and cut off with 413 as soon as they pass the bound
  (an oversized ``Content-Length`` is refused before any byte is parsed or stored; what the
  client is still sending is read and dropped, up to one more bound's worth, only so that it
  can read the error page instead of a connection reset). A body that ends before the form's
  final boundary, or before its ``Content-Length``, is refused (400), never analysed in part.
  A body that stalls (no byte for ``upload_idle_s``) or takes longer than ``upload_timeout_s``
  is answered 408; uploads in progress count towards ``max_queue`` and show in ``/healthz``
  (:mod:`.uploads`);
* media paths inside an uploaded conversation file (``audio``/``video``/``image``) are refused
  (422) before they reach the file system: they would name files on the server. Media is
  accepted only as the uploaded file itself (:mod:`.engine` sets ``media_paths=False``);
* a POST is accepted only with an ``Origin`` equal to the server's own (scheme, host and
  port; or, from a browser that hides it, ``Sec-Fetch-Site: same-origin``): browsers send it
  with every form post, so a page elsewhere cannot post here (cross-site request forgery),
  and scripts add it (``curl -H "Origin: http://127.0.0.1:8000"``); on a loopback address
  only loopback Host names are answered (DNS rebinding) (:mod:`.security`);
* every upload gets a fresh job folder named by a random id (``secrets.token_hex(16)``) and
  is stored as ``input<suffix>``; only the suffix of the client's file name is used, and only
  from the allow-list, which is exactly what ``lantern predict`` accepts
  (:data:`lantern.predict.media.INPUT_SUFFIXES`). Job ids are checked against a strict pattern
  before any file-system use and only three known file names are ever served, so no request
  can reach other files (:mod:`.jobs`);
* predictions run in worker threads behind a capacity limiter (``workers``, default 1: the
  embedded LLM is not thread-safe), so the event loop and ``/healthz`` stay responsive
  (:mod:`.routes`);
* errors become small HTML pages with the (escaped) message and the right status; unexpected
  ones are logged and answered with a generic 500, never a stack trace (:mod:`.pages`);
* old jobs are pruned (the newest ``keep_jobs`` are kept).

Modules: :mod:`.settings` (:class:`ServeSettings`), :mod:`.uploads`, :mod:`.jobs`,
:mod:`.pages` (with ``templates/`` and ``static/``), :mod:`.security`, :mod:`.engine`
(what runs predict; :func:`create_app` takes one), :mod:`.routes` and :mod:`.app`
(:func:`create_app`, :func:`serve`).

The app is plain Starlette (it comes with FastAPI) on uvicorn, an optional extra
(``pip install 'lantern-emotion[serve]'``) imported only when an app is created or served.
"""

from lantern.web.app import create_app, serve
from lantern.web.engine import Engine, PredictEngine
from lantern.web.settings import ServeSettings

__all__ = ["create_app", "serve", "Engine", "PredictEngine", "ServeSettings"]
