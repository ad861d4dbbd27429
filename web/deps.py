"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relay import SessionRegistry

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
