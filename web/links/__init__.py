"""Demo links: stored personas with limits, shared as /d/<slug> and embedded as a widget."""

from .limits import Lease, RateLimited, SessionLimiter
from .model import DemoLink, Limits, LinkCreate, LinkFields, LinkPublic, LinkUpdate, Persona
from .personas import BUILT_IN_LINKS, seed_built_in_links
from .store import LINKS_FILE, LinkExists, LinkNotFound, LinkStore, SqliteLinkStore
from .tokens import LinkSigner, TokenError, load_or_create_secret

__all__ = [
    "BUILT_IN_LINKS",
    "LINKS_FILE",
    "DemoLink",
    "Lease",
    "Limits",
    "LinkCreate",
    "LinkExists",
    "LinkFields",
    "LinkNotFound",
    "LinkPublic",
    "LinkSigner",
    "LinkStore",
    "LinkUpdate",
    "Persona",
    "RateLimited",
    "SessionLimiter",
    "SqliteLinkStore",
    "TokenError",
    "load_or_create_secret",
    "seed_built_in_links",
]
