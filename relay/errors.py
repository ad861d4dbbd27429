"""Errors raised by the relay; `web` maps them to HTTP responses."""

from __future__ import annotations


class RelayError(Exception):
    """Base of every error the relay raises on purpose."""


class SignallingError(RelayError):
    """The offer could not be negotiated (bad SDP, no audio, ...)."""


class SessionNotFound(RelayError):
    """No live session has this id."""


class BackendError(RelayError):
    """The model backend refused, failed or went away."""


class PolicyViolation(RelayError):
    """A page sent something it is not allowed to send."""


class AtCapacity(RelayError):
    """The process already runs as many sessions as it can serve well; retry later."""

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
