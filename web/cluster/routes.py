"""`GET /api/admin/sessions`: every live conversation and instance, from any instance."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..routes.admin import AdminRoute
from .directory import ClusterView
from .node import cluster_of

router = APIRouter(prefix="/api/admin/sessions", tags=["admin"], route_class=AdminRoute)


@router.get("")
async def list_sessions(request: Request) -> ClusterView:
    """With Redis, the whole cluster's (the directory); else this process's."""
    return await cluster_of(request).view()
