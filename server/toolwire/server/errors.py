"""Domain errors. Each class names one way a chat can fail; `status.py` maps them to gRPC codes.

Messages are written for the person who has to fix the problem: they say what was wrong and what
to do instead, and never contain a secret.
"""

from __future__ import annotations


class ToolwireError(Exception):
    """Base of every error toolwire reports to a client on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ToolwireError):
    """The client's request is malformed or breaks the protocol; resending it unchanged will fail."""


class ModelNotFound(ToolwireError):
    """The requested provider or model is not configured on this server."""


class LimitExceeded(ToolwireError):
    """A size or count limit of this server was exceeded."""


class FailedPrecondition(ToolwireError):
    """The chat cannot go on in its current state (e.g. a scripted model ran out of turns)."""


class ModelError(ToolwireError):
    """A model call failed. `code` is the canonical status name (e.g. "UNAVAILABLE")."""

    def __init__(self, message: str, code: str = "UNAVAILABLE") -> None:
        super().__init__(message)
        self.code = code


class ModelProtocolError(ToolwireError):
    """The model's stream broke its own protocol in a way the server cannot repair."""
