"""Who may talk to the server, and the headers every answer carries.

* :class:`HostGuard` (ASGI middleware) refuses other ``Host`` names (DNS rebinding; only with
  an allow-list, which :func:`lantern.web.serve` sets on a loopback address) and any request
  that changes something (every method but GET and HEAD) whose ``Origin`` is not this
  server's own origin: same scheme, host and port (cross-site request forgery). A browser
  that hides the origin still says ``Sec-Fetch-Site: same-origin``, which pages cannot forge.
* :data:`SECURITY_HEADERS` and the Content-Security-Policies: our pages have no scripts; the
  report may run only its own inline script and reach no network.

>>> origin_tuple("http://LocalHost:8000"), origin_tuple("https://example.org"), origin_tuple("null")
(('http', 'localhost', 8000), ('https', 'example.org', 443), None)
>>> host_name("[::1]:8000"), host_name("Example.org:80"), join_host("::1", 8000)
('::1', 'example.org', '[::1]:8000')
"""

from __future__ import annotations

import urllib.parse

from lantern.web.pages import render_error

#: Our own pages have no scripts at all; the report is predict's self-contained page.
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
              "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; "
              "base-uri 'none'; frame-ancestors 'none'")
DOWNLOAD_CSP = "default-src 'none'; sandbox"
# "same-origin", not "no-referrer": with no-referrer a browser sends "Origin: null" even on a
# same-origin form post, which the cross-site check must refuse. Other sites still get nothing.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "X-Frame-Options": "DENY", "Cache-Control": "no-store"}

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}
SAFE_METHODS = ("GET", "HEAD")


def page_headers(extra: dict | None = None) -> dict[str, str]:
    """The headers of one of our own pages (form, error), plus ``extra``."""
    return {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP, **(extra or {})}


def served_file_headers(name: str) -> dict[str, str]:
    """The headers of a job's report (its own script may run) or of a download (sandboxed)."""
    csp = REPORT_CSP if name == "report.html" else DOWNLOAD_CSP
    return {**SECURITY_HEADERS, "Content-Security-Policy": csp}


def host_name(host: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def origin_tuple(origin: str) -> tuple[str, str, int | None] | None:
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


def own_origin(scope, host_header: str | None) -> tuple[str, str, int | None]:
    """The origin this request was sent to: the scheme uvicorn saw (``https`` behind a proxy
    that says so) and the Host header the browser wrote (which the host check vouches for)."""
    scheme = scope.get("scheme", "http").lower()
    if host_header:
        own = origin_tuple(f"{scheme}://{host_header.strip()}")
        if own is not None:
            return own
    server = scope.get("server") or ("", None)
    return scheme, str(server[0]).lower(), server[1]


def join_host(host: str, port: int | None) -> str:
    """``host:port`` as a URL writes it (IPv6 in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def refusal(scope, headers: dict[str, str], allowed: frozenset[str] | set[str] | None):
    """(status, title, message) when the request must be refused, else None. ``headers``
    are the request's, names in lower case."""
    if allowed is not None and host_name(headers.get("host", "")) not in allowed:
        return 400, "Bad host", "this server answers only to " + ", ".join(sorted(allowed))
    if scope.get("method") in SAFE_METHODS:
        return None
    own = own_origin(scope, headers.get("host"))
    origin = headers.get("origin")
    if origin in (None, "null") and headers.get("sec-fetch-site") == "same-origin":
        # A browser that hides the origin ("null" under some referrer policies) still says
        # where the post comes from; pages cannot set Sec-Fetch-*.
        return None
    if origin is None:
        shown = f"{own[0]}://{join_host(own[1], own[2])}"
        return 403, "Forbidden", ("a post needs an Origin header naming this server (browsers "
                                  f"send one; scripts add it, e.g. Origin: {shown})")
    if origin_tuple(origin) != own:
        return 403, "Forbidden", "cross-site requests are not accepted"
    return None


class HostGuard:
    """ASGI middleware: answer :func:`refusal`'s error page before the app sees the request."""

    def __init__(self, app, allowed: frozenset[str] | set[str] | None):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope.get("headers", [])}
            bad = refusal(scope, headers, self.allowed)
            if bad is not None:
                from starlette.responses import HTMLResponse

                resp = HTMLResponse(render_error(*bad), status_code=bad[0], headers=page_headers())
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)
