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
