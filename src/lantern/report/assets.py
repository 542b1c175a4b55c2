"""The page's fixed parts, shipped as package data in ``templates/`` (pyproject.toml lists
them): the page skeleton ``page.html``, the stylesheet ``report.css`` and the filter bar's
script ``filter.js``, plus the Content-Security-Policy built around that script.

The skeleton is a :class:`string.Template` (``${csp}``, ``${title}``, ``${css}``, ``${body}``,
``${script}``). The script is inserted verbatim and the policy allows exactly its SHA-256,
so any edit to ``filter.js`` changes the hash by itself; it is one minified line because the
bytes the browser hashes are the bytes of the file (less its final newline).
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib.resources import files
from string import Template


def _read(name: str) -> str:
    return files(__package__).joinpath("templates").joinpath(name).read_text(encoding="utf-8")


@cache
def page_template() -> Template:
    return Template(_read("page.html"))


@cache
def base_css() -> str:
    """The stylesheet shared by every page (each page adds one rule per class colour)."""
    return _read("report.css")


@cache
def filter_script() -> str:
    """The transcript filter bar's script: progressive enhancement, the page never needs it."""
    return _read("filter.js").removesuffix("\n")


@cache
def content_security_policy() -> str:
    """No fetch of any kind; inline styles; only the page's own script, by its hash."""
    digest = base64.b64encode(hashlib.sha256(filter_script().encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
