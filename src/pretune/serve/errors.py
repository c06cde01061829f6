"""ServeError: a refused request, with the HTTP status it gets and one line for its JSON body."""

from __future__ import annotations


class ServeError(Exception):
    """A refused request: its HTTP status and a one-line message for the JSON body."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
