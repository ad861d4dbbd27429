"""Turns settings (and a demo link's locked fields) into the relay's configuration."""

from __future__ import annotations

from relay import BackendConfig, MediaOptions, SessionOptions
from relay.peer import PeerNetwork
from relay.tools import Tool
from relay.webhook import WebhookOptions

from .links import DemoLink, Persona
from .settings import BackendName, Settings, secret_value, tools_problem
from .turn import server_ice_servers


def backend_config(settings: Settings, link: DemoLink | None = None) -> BackendConfig:
    """The server's backend, or the one a link sets; a link never inherits another persona."""
    backend: BackendName = settings.resolved_backend
    if link is not None and link.backend is not None:
        backend = link.backend
    same_backend = backend == settings.resolved_backend
    if settings.backend_url and same_backend:
        url = settings.backend_url
    elif backend == "local":
        url = settings.local_backend_url()
    else:
        url = ""  # the dialect's own public endpoint
    key = settings.key_for(backend)
    if link is None:
        model, voice = settings.resolved_model, settings.voice
        instructions, greeting = settings.instructions, None
        tools = tuple(settings.tools)
        knobs: Settings | Persona = settings
    else:
        model = link.model or (settings.resolved_model if same_backend else "")
        voice, greeting = link.persona.voice, link.persona.greeting
        instructions = link.persona.instructions or None
        tools = tuple(link.tools)
        knobs = link.persona
    return BackendConfig(
        dialect=backend,
        url=url,
        model=model,
        api_key=key.get_secret_value() if key is not None else None,
        voice=voice,
        instructions=instructions,
        greeting=greeting,
        tools=tools,
        region=settings.stepfun_region,
        temperature=knobs.temperature,
        max_output_tokens=knobs.max_output_tokens,
        energy_awakeness_threshold=knobs.energy_awakeness_threshold,
    )


def link_tools_problem(
    settings: Settings, tools: list[Tool], backend: BackendName | None
) -> str | None:
    """Why a link with `backend` (None: the server's) may not declare `tools` here, if so."""
    return tools_problem(settings, tools, backend or settings.resolved_backend)


def session_options(
    settings: Settings, link: DemoLink | None = None, media: MediaOptions = MediaOptions()
) -> SessionOptions:
    servers = server_ice_servers(settings)  # STUN only: the server needs no TURN of its own
    max_duration_s = settings.max_session_s
    if link is not None:
        max_duration_s = min(max_duration_s, link.limits.max_session_s)
    return SessionOptions(
        ice_servers=servers,
        max_duration_s=max_duration_s,
        connect_timeout_s=settings.connect_timeout_s,
        host_addresses=tuple(settings.ice_addresses),
        network=PeerNetwork(settings.udp_ports, settings.public_ip),
        media=media,
        webhooks=WebhookOptions(
            secret=secret_value(settings.webhook_secret),
            allow_private=settings.webhook_allow_private,
            ca_file=settings.webhook_ca_file,
        ),
    )
