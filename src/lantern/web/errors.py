"""The two ways a request ends early: an answer for the user, or a client that left."""

from __future__ import annotations


class HTTPError(Exception):
    """An answer for the user: status code, a title and a plain-text message (escaped when the
    error page is rendered), and any extra response headers."""

    def __init__(self, status: int, title: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.title, self.message, self.headers = status, title, message, headers or {}


class ClientGone(Exception):
    """The client disconnected before the upload was complete."""
