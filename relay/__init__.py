"""voice-relay's media and model bridge: WebRTC peers on one side, realtime models on the other."""

from .backends import BackendConfig, RealtimeClient
from .errors import BackendError, PolicyViolation, RelayError, SessionNotFound, SignallingError
from .events import EndReason
from .media import MediaOptions
from .peer import IceServerConfig, parse_offer
from .playout import PlayoutTrack
from .registry import SessionRegistry
from .session import Session, SessionOptions

__all__ = [
    "BackendConfig",
    "BackendError",
    "EndReason",
    "IceServerConfig",
    "MediaOptions",
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
]
