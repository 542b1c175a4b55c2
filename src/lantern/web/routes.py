"""The app's endpoints: the form, ``/healthz``, the upload, and a finished job's report and
files; plus the pages for Starlette's own errors.

:class:`Handlers` holds what the endpoints share: the settings, the job store, the engine,
the counters and the capacity limiter that keeps at most ``workers`` predictions running (in
worker threads, so the event loop and ``/healthz`` stay responsive). Starlette and anyio are
imported inside the handlers: they come with the optional web extra.
"""

from __future__ import annotations

import logging
import time

from lantern.errors import DataError, LanternError
from lantern.llm.base import LLM_OFF
from lantern.predict.outputs import MANIFEST
from lantern.web.engine import Engine
from lantern.web.errors import ClientGone, HTTPError
from lantern.web.jobs import SERVED_FILES, Job, JobCounters, JobStore
from lantern.web.pages import render_error, render_index, report_with_nav
from lantern.web.security import page_headers, served_file_headers
from lantern.web.settings import ServeSettings
from lantern.web.uploads import StreamedUpload, check_upload_headers

# The logger keeps the name the server log has always shown (and operators filter on).
log = logging.getLogger("lantern.serve")

TRUE_WORDS = ("on", "1", "true", "yes")
INTERNAL_ERROR = "something went wrong on the server; the error is in the server log"


def html_response(status: int, content: str, headers: dict | None = None):
    from starlette.responses import HTMLResponse

    return HTMLResponse(content, status_code=status, headers=page_headers(headers))


def error_response(err: HTTPError):
    return html_response(err.status, render_error(err.status, err.title, err.message), err.headers)


class Handlers:
    """The endpoints of one app, and the state they share."""

    def __init__(self, settings: ServeSettings, jobs: JobStore, engine: Engine):
        self.settings, self.jobs, self.engine = settings, jobs, engine
        self.counters = JobCounters()
        self._limiter = None

    def routes(self) -> list:
        from starlette.routing import Route

        return [
            Route("/", self.index, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/predict", self.predict, methods=["POST"]),
            Route("/reports/{job_id}", self.report, methods=["GET"]),
            Route("/reports/{job_id}/{name}", self.job_file, methods=["GET"]),
        ]

    def limiter(self):
        # Created on first use so it belongs to the running event loop.
        if self._limiter is None:
            import anyio

            self._limiter = anyio.CapacityLimiter(self.settings.workers)
        return self._limiter

    # --- pages ------------------------------------------------------------------------------------
    async def index(self, request):
        return html_response(200, render_index(self.settings))

    async def healthz(self, request):
        from starlette.responses import JSONResponse

        c = self.counters
        return JSONResponse({"status": "ok", "uploading": c.uploading, "running": c.running,
                             "waiting": c.waiting, "done": c.done, "failed": c.failed,
                             "workers": self.settings.workers, "llm": self.settings.llm},
                            headers={"Cache-Control": "no-store"})

    # --- the upload -------------------------------------------------------------------------------
    async def predict(self, request):
        """Receive one upload into a fresh job, run the engine on it, and redirect to its
        report; every failure becomes an error page and removes the job."""
        import anyio
        import anyio.to_thread

        s = self.settings
        upload = StreamedUpload(s.max_upload_bytes, s.upload_idle_s, s.upload_timeout_s)
        try:
            check_upload_headers(request.headers, s.max_upload_bytes)
            if self.counters.queued() >= s.max_queue:
                raise HTTPError(503, "Busy", "too many uploads are in progress or waiting; try "
                                "again in a minute", {"Retry-After": "60"})
        except HTTPError as err:
            self.counters.failed += 1
            log.info("upload refused %d: %s", err.status, err.message)
            return await self._refuse(err, request, upload)
        job = self.jobs.new()
        upload.job_dir = job.dir
        ok = False
        try:
            response = await self._analyse(request, upload, job)
            ok = True
            return response
        except Exception as exc:   # every failure is answered with a page, never a trace
            self.counters.failed += 1
            return await self._failure(exc, request, upload, job)
        finally:
            upload.close()
            with anyio.CancelScope(shield=True):   # clean up even when the request is cancelled
                await anyio.to_thread.run_sync(self.jobs.finish, job, ok)

    async def _analyse(self, request, upload: StreamedUpload, job: Job):
        from starlette.responses import RedirectResponse

        t0 = time.perf_counter()
        with self.counters.counting("uploading"):
            await upload.read(request)
        if upload.path is None:
            raise HTTPError(400, "No file chosen", "choose a file to upload (form field 'file')")
        if upload.size == 0:
            raise HTTPError(400, "Empty file", f"{upload.filename} is empty")
        wants_llm = upload.fields.get("llm", "").strip().lower() in TRUE_WORDS
        llm = self.settings.llm if wants_llm else LLM_OFF   # "off" servers never refine
        await self._run_engine(upload, job, llm)
        if not (job.dir / "report.html").is_file() or not (job.dir / MANIFEST).is_file():
            raise RuntimeError(f"predict wrote no complete set of outputs in {job.dir}")
        self.counters.done += 1
        log.info("job %s: %s (%d bytes, llm=%s) done in %.1f s", job.id, upload.path.suffix,
                 upload.size, llm, time.perf_counter() - t0)
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/reports/{job.id}", status_code=303)

    async def _run_engine(self, upload: StreamedUpload, job: Job, llm: str) -> None:
        """Wait for a worker (counted as waiting), then run the engine in a worker thread."""
        import anyio.to_thread

        self.counters.waiting += 1
        acquired = False
        try:
            async with self.limiter():
                self.counters.waiting -= 1
                acquired = True
                with self.counters.counting("running"):
                    await anyio.to_thread.run_sync(self.engine.run, upload.path, job.dir, llm,
                                                   upload.filename)
        finally:
            if not acquired:
                self.counters.waiting -= 1

    async def _failure(self, exc: Exception, request, upload: StreamedUpload, job: Job):
        """The page for an upload that failed with ``exc``; the details of a bug go to the log."""
        if isinstance(exc, ClientGone):
            log.info("job %s: the client left during the upload", job.id)
            return error_response(HTTPError(400, "Upload interrupted", "the upload was interrupted"))
        if isinstance(exc, HTTPError):
            log.info("job %s: refused %d: %s", job.id, exc.status, exc.message)
            return await self._refuse(exc, request, upload)
        if isinstance(exc, DataError):
            log.info("job %s: bad input: %s", job.id, exc)
            return error_response(HTTPError(422, "The file could not be read",
                                            upload.user_message(exc)))
        if isinstance(exc, LanternError):
            log.warning("job %s: prediction failed: %s", job.id, exc)
            return error_response(HTTPError(422, "The prediction failed", upload.user_message(exc)))
        log.error("job %s: unexpected error", job.id, exc_info=exc)
        return error_response(HTTPError(500, "Internal error", INTERNAL_ERROR))

    async def _refuse(self, err: HTTPError, request, upload: StreamedUpload):
        await upload.settle_before_refusal(err, request)
        return error_response(err)

    # --- a finished job ---------------------------------------------------------------------------
    async def report(self, request):
        import anyio.to_thread
        from starlette.exceptions import HTTPException
        from starlette.responses import HTMLResponse

        job_id = request.path_params["job_id"]
        path = self.jobs.file(job_id, "report.html")
        if path is None:
            raise HTTPException(404)
        try:
            page = await anyio.to_thread.run_sync(path.read_text, "utf-8")
        except FileNotFoundError:   # pruned a moment ago
            raise HTTPException(404) from None
        base = f"{request.scope.get('root_path', '')}/reports/{job_id}"
        return HTMLResponse(report_with_nav(page, base), headers=served_file_headers("report.html"))

    async def job_file(self, request):
        from starlette.exceptions import HTTPException
        from starlette.responses import FileResponse

        name = request.path_params["name"]
        path = self.jobs.file(request.path_params["job_id"], name)
        if path is None:
            raise HTTPException(404)
        headers = served_file_headers(name)
        if name != "report.html":
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return FileResponse(path, media_type=SERVED_FILES[name], headers=headers)

    # --- Starlette's own errors -------------------------------------------------------------------
    async def http_error(self, request, exc):
        titles = {404: "Not found", 405: "Method not allowed"}
        messages = {404: "there is no such page or report (reports are kept for the last "
                         f"{self.settings.keep_jobs} uploads)"}
        title = titles.get(exc.status_code, "Error")
        message = messages.get(exc.status_code, str(exc.detail))
        return html_response(exc.status_code, render_error(exc.status_code, title, message),
                             dict(exc.headers or {}))

    async def server_error(self, request, exc: Exception):
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
        return html_response(500, render_error(500, "Internal error", INTERNAL_ERROR))
