"""The app and the server: :func:`create_app` wires settings, job store, engine, routes and the
host guard into a Starlette app; :func:`serve` runs it with uvicorn (``lantern serve``)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from lantern.errors import LanternError
from lantern.web.engine import Engine, PredictEngine
from lantern.web.jobs import JobStore
from lantern.web.routes import Handlers
from lantern.web.security import LOOPBACK_NAMES, HostGuard, join_host
from lantern.web.settings import ServeSettings

log = logging.getLogger("lantern.serve")

INSTALL_HINT = "lantern serve needs the web extra: pip install 'lantern-emotion[serve]'"


def require_web_stack() -> None:
    """LanternError naming the extra to install when Starlette or python-multipart is missing."""
    try:
        import python_multipart  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        raise LanternError(f"{INSTALL_HINT} ({exc})") from exc


def create_app(settings: ServeSettings | None = None, engine: Engine | None = None):
    """The web app (a Starlette ASGI app) for ``settings``; run it with uvicorn, one worker.

    ``engine`` runs the predictions (default: :class:`PredictEngine`, the real one); the app
    closes it when it shuts down.
    """
    require_web_stack()
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware

    settings = settings or ServeSettings()
    jobs = JobStore(settings.resolved_jobs_dir(), settings.keep_jobs)
    jobs.prune(incomplete=True)
    if engine is None:
        engine = PredictEngine(settings)
    handlers = Handlers(settings, jobs, engine)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(engine.close)

    app = Starlette(routes=handlers.routes(),
                    middleware=[Middleware(HostGuard, allowed=settings.host_allow_list())],
                    lifespan=lifespan,
                    exception_handlers={HTTPException: handlers.http_error,
                                        Exception: handlers.server_error})
    app.state.jobs = jobs
    app.state.settings = settings
    app.state.handlers = handlers
    return app


def _log_to_stderr() -> None:
    """Show the app's log lines when nothing else (the caller, pytest) has set up logging."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def serve(host: str = "127.0.0.1", port: int = 8000, **settings: Any) -> None:
    """Run the app with uvicorn (one process: jobs share the limiter and the LLM lock).

    Bound to a loopback address, the app answers only to loopback Host names, so a web page
    elsewhere cannot reach it through DNS rebinding. Keyword arguments are
    :class:`ServeSettings` fields.
    """
    require_web_stack()
    try:
        import uvicorn
    except ImportError as exc:
        raise LanternError(f"{INSTALL_HINT} ({exc})") from exc
    if settings.get("allowed_hosts") is None and host in LOOPBACK_NAMES:
        settings["allowed_hosts"] = LOOPBACK_NAMES
    elif host not in LOOPBACK_NAMES:
        log.warning("listening on %s: anyone who can reach it can upload files and read reports", host)
    _log_to_stderr()
    app = create_app(ServeSettings(**settings))
    print(f"lantern serve: http://{join_host(host, port)}/  (jobs in {app.state.jobs.root})",
          flush=True)
    uvicorn.run(app, host=host, port=port, workers=1, log_level="info",
                timeout_graceful_shutdown=5)
