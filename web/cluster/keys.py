"""The Redis keys and channels instances share (one prefix with the links and limits)."""

from __future__ import annotations

PREFIX = "voice-relay"
INSTANCES = f"{PREFIX}:instances"  # sorted set: instance id -> heartbeat expiry (ms)
SESSIONS = f"{PREFIX}:sessions"  # sorted set: session id -> directory entry expiry (ms)


def lease_key(slug: str) -> str:
    return f"{PREFIX}:leases:{slug}"


def instance_key(instance_id: str) -> str:
    return f"{PREFIX}:instance:{instance_id}"


def session_key(session_id: str) -> str:
    return f"{PREFIX}:session:{session_id}"


def control_channel(instance_id: str) -> str:
    """Where other instances ask this one to end a session it runs."""
    return f"{PREFIX}:control:{instance_id}"
