"""The app's own pages (upload form, error page) and the bar it puts on top of a report.

The HTML lives in ``templates/`` and the style sheet in ``static/`` (package data, read with
:mod:`importlib.resources`); values are escaped here before they are substituted. The pages
have no scripts at all; the report is predict's self-contained page.

>>> page = render_error(404, "Not <found>", "no such <b>page</b>")
>>> "<h1>Not &lt;found&gt;</h1>" in page, "no such &lt;b&gt;page&lt;/b&gt;" in page, "<script" in page
(True, True, False)
>>> report_with_nav("<html><body class=x><p>r</p></body></html>", "/reports/ab").count("lantern-serve-nav")
1
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import re
from string import Template

from lantern.llm.base import LLM_OFF
from lantern.predict.media import (AUDIO_SUFFIXES, CONVERSATION_SUFFIXES, INPUT_SUFFIXES,
                                   VIDEO_SUFFIXES)
from lantern.web.settings import ServeSettings
from lantern.web.uploads import format_mb


@functools.cache
def _resource(folder: str, name: str) -> str:
    return (importlib.resources.files("lantern.web") / folder / name).read_text(encoding="utf-8")


def _template(name: str) -> Template:
    # The file's final newline ends the file, not the fragment.
    return Template(_resource("templates", name).removesuffix("\n"))


def _codes(suffixes) -> str:
    return " ".join(f"<code>{html.escape(s)}</code>" for s in suffixes)


def render_page(title: str, body_html: str) -> str:
    """A whole page around ``body_html`` (which must already be escaped)."""
    return _template("page.html").substitute(
        title=html.escape(title), css=_resource("static", "style.css"), body=body_html) + "\n"


def render_index(settings: ServeSettings) -> str:
    """The upload form, with what files are accepted and the limits."""
    e = html.escape
    llm_option = ""
    if settings.llm != LLM_OFF:
        llm_option = _template("llm_option.html").substitute(backend=e(settings.llm))
    body = _template("index.html").substitute(
        accept=e(",".join(INPUT_SUFFIXES)), llm_option=llm_option,
        conversation_codes=_codes(CONVERSATION_SUFFIXES), audio_codes=_codes(AUDIO_SUFFIXES),
        video_codes=_codes(VIDEO_SUFFIXES), max_upload=e(format_mb(settings.max_upload_bytes)),
        minutes=e(f"{settings.max_duration_s / 60:g}"))
    return render_page("Upload", body)


def render_error(status: int, title: str, message: str) -> str:
    """An error page: the title, the status and the (escaped) message."""
    body = _template("error.html").substitute(title=html.escape(title), status=int(status),
                                              message=html.escape(message))
    return render_page(title, body)


def report_with_nav(page: str, base: str) -> str:
    """The report with a small bar on top linking the downloads and the upload form (the
    report itself is written for a folder on disk and knows nothing of the server)."""
    match = re.search(r"<body[^>]*>", page, flags=re.IGNORECASE)
    if match is None:
        return page
    nav = _template("report_nav.html").substitute(base=html.escape(base))
    return page[:match.end()] + nav + page[match.end():]
