"""voice-relay's media and model bridge: WebRTC peers on one side, realtime models on the other."""

from .backends import BackendConfig, RealtimeClient
from .errors import BackendError, PolicyViolation, RelayError, SessionNotFound, SignallingError
from .peer import IceServerConfig, parse_offer, use_host_addresses
from .playout import PlayoutTrack
from .registry import SessionRegistry
from .session import Session, SessionOptions

__all__ = [
    "BackendConfig",
    "BackendError",
    "IceServerConfig",
    "PlayoutTrack",
    "PolicyViolation",
    "RealtimeClient",
    "RelayError",
    "Session",
    "SessionNotFound",
    "SessionOptions",
    "SessionRegistry",
    "SignallingError",
    "parse_offer",
    "use_host_addresses",
]
