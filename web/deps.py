"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relay import SessionRegistry

from .links import LinkSigner, LinkStore, SessionLimiter
from .settings import Settings


def get_settings(request: Request) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


def get_registry(request: Request) -> SessionRegistry:
    registry = request.app.state.registry
    assert isinstance(registry, SessionRegistry)
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[SessionRegistry, Depends(get_registry)]


def get_links(request: Request) -> LinkStore:
    store: LinkStore = request.app.state.links
    return store


def get_signer(request: Request) -> LinkSigner:
    signer = request.app.state.signer
    assert isinstance(signer, LinkSigner)
    return signer


def get_limiter(request: Request) -> SessionLimiter:
    limiter = request.app.state.limiter
    assert isinstance(limiter, SessionLimiter)
    return limiter


LinksDep = Annotated[LinkStore, Depends(get_links)]
SignerDep = Annotated[LinkSigner, Depends(get_signer)]
LimiterDep = Annotated[SessionLimiter, Depends(get_limiter)]
