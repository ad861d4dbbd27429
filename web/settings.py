"""Settings: one object, from the environment (prefix VOICE_RELAY_) and an optional .env file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from relay.backends import dialect_for
from relay.public_address import PublicAddresses
from relay.tools import BUILT_IN_KINDS, ServerTool, Tool, check_tools
from relay.udp_ports import PortRange
from relay.webhook import literal_address_refused

from .links.model import EnergyThreshold, MaxOutputTokens, Temperature

BackendName = Literal["local", "stepfun", "openai"]

# Sessions one process serves before it answers 503 (docs/performance.md, "Capacity"): what one
# relay process carries on one core with headroom, and far fewer when the offline assistant
# model runs in the server: one conversation per two cores keeps its replies within 1.2 s
# median and 2.5 s at worst (Whisper, the language model and the voice; a second conversation
# on 2 cores took 2.1 s median, 5 s at worst: docs/offline-model.md, "Measured").
DEFAULT_MAX_SESSIONS = 15
DEFAULT_MAX_EMBEDDED_ASSISTANT_SESSIONS = max(1, (os.cpu_count() or 2) // 2)


class IceServer(BaseModel):
    """One STUN/TURN server, shaped like the browser's RTCIceServer."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VOICE_RELAY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    backend: BackendName | None = None
    model: str | None = None
    voice: str | None = None
    instructions: str | None = None
    tools: list[Tool] = []  # the default persona's tools (JSON); links declare their own
    # The default persona's backend knobs (docs/backends.md); a link sets its own.
    temperature: Temperature | None = None
    max_output_tokens: MaxOutputTokens | None = None
    energy_awakeness_threshold: EnergyThreshold | None = None
    stepfun_region: Literal["cn", "intl"] = "cn"  # which StepFun platform issued the key
    # Server tools (webhooks): the HMAC secret that signs each call, private addresses, CAs.
    webhook_secret: SecretStr | None = None
    webhook_allow_private: bool = False
    webhook_ca_file: Path | None = None
    backend_url: str | None = None
    stepfun_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("STEPFUN_API_KEY", "VOICE_RELAY_STEPFUN_API_KEY")
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "VOICE_RELAY_OPENAI_API_KEY")
    )
    ice_servers: list[IceServer] = []
    ice_addresses: Annotated[list[str], NoDecode] = []
    # TURN for pages (GET /api/ice-servers): REST API credentials minted per call (docs/deploy.md)
    turn_secret: SecretStr | None = None
    turn_urls: Annotated[list[str], NoDecode] = []
    turn_ttl_s: int = Field(600, ge=60, le=86400)
    udp_ports: Annotated[PortRange | None, NoDecode] = None  # host candidates bind only these
    public_ip: Annotated[PublicAddresses, NoDecode] = PublicAddresses()  # advertised (1:1 NAT)
    max_session_s: float = Field(1800.0, gt=0)
    connect_timeout_s: float = Field(15.0, gt=0)  # an offer not connected by then ends
    # After SIGTERM, running conversations go on this long before ending with `server_draining`.
    drain_s: float = Field(300.0, ge=0)
    log_level: str = "info"
    data_dir: Path = Path("data")
    public_url: str | None = Field(None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
    # Host names the server answers to (DNS rebinding); default: allowed_hosts_or_default.
    allowed_hosts: Annotated[list[str], NoDecode] = []
    # Addresses/networks whose X-Forwarded-For/-Proto are believed (a reverse proxy).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    admin_token: SecretStr | None = None
    # Bearer token for /v1/realtime; without one it is open only while listening on loopback.
    realtime_token: SecretStr | None = None
    # Bearer token for /metrics; without one it answers only clients on loopback.
    metrics_token: SecretStr | None = None
    secret_key: SecretStr | None = None
    sessions_per_ip_per_minute: int = Field(10, ge=1)
    # redis:// or rediss:// (may hold a password): links and limits shared by every instance.
    redis_url: SecretStr | None = None
    # With Redis: how long a link's concurrency place and a session's directory entry outlive
    # the last renewal (each instance renews every third of it), and this instance's name.
    lease_ttl_s: float = Field(15.0, ge=1.0, le=300.0)
    instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    max_sessions: int | None = Field(None, ge=1)  # default: resolved_max_sessions
    # Media worker processes of `voice-relay serve` (docs/architecture.md, "Every core"):
    # default one per core this process may run on; 1 serves everything in this process.
    workers: int | None = Field(None, ge=1, le=256)
    # What the relay presents to this process's own /v1/realtime: its sessions are counted
    # already, so the endpoint must know them from outside clients. Never leaves the process.
    _relay_credential: str = PrivateAttr(default_factory=lambda: secrets.token_urlsafe(32))

    @field_validator("ice_addresses", "allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("turn_urls", mode="before")
    @classmethod
    def _split_turn_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for url in value if isinstance(value, list) else []:
            if not str(url).startswith(("turn:", "turns:")):
                raise ValueError(f"{url!r} is not a TURN URL (turn:HOST:PORT or turns:HOST:PORT)")
        return value

    @field_validator("udp_ports", mode="before")
    @classmethod
    def _parse_port_range(cls, value: object) -> object:
        if isinstance(value, str):
            return PortRange.parse(value) if value.strip() else None
        return value

    @field_validator("public_ip", mode="before")
    @classmethod
    def _parse_public_ip(cls, value: object) -> object:
        return PublicAddresses.parse(value) if isinstance(value, str) else value

    @field_validator("redis_url", mode="after")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://")):
            raise ValueError("VOICE_RELAY_REDIS_URL must start with redis:// or rediss://")
        return value

    @field_validator(
        "stepfun_api_key",
        "openai_api_key",
        "admin_token",
        "realtime_token",
        "metrics_token",
        "turn_secret",
        "webhook_secret",
        mode="after",
    )
    @classmethod
    def _reject_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().strip() in {"", "changeme", "sk-..."}:
            return None
        return value

    @model_validator(mode="after")
    def _check_shared_secret(self) -> Settings:
        # A key generated into each instance's data directory would make every instance refuse
        # the private-link tokens the others (and the CLI) sign.
        if self.redis_url is not None and len(secret_value(self.secret_key) or "") < 16:
            raise ValueError(
                "VOICE_RELAY_REDIS_URL needs VOICE_RELAY_SECRET_KEY (at least 16 characters, the "
                "same on every instance and for the CLI), e.g. from `openssl rand -hex 32`"
            )
        return self

    @model_validator(mode="after")
    def _check_turn(self) -> Settings:
        if bool(self.turn_urls) != (self.turn_secret is not None):
            raise ValueError("VOICE_RELAY_TURN_URLS and VOICE_RELAY_TURN_SECRET go together")
        return self

    @model_validator(mode="after")
    def _check_tools(self) -> Settings:
        check_tools(self.tools)
        problem = tools_problem(self, self.tools, self.resolved_backend)
        if problem is not None:
            raise ValueError(f"VOICE_RELAY_TOOLS: {problem}")
        return self

    @model_validator(mode="after")
    def _check_key(self) -> Settings:
        if (
            self.backend in ("stepfun", "openai")
            and self.api_key() is None
            and not self.backend_url
        ):
            env = "STEPFUN_API_KEY" if self.backend == "stepfun" else "OPENAI_API_KEY"
            raise ValueError(f"backend {self.backend!r} needs {env} (or VOICE_RELAY_BACKEND_URL)")
        return self

    @property
    def resolved_backend(self) -> BackendName:
        """The configured backend; without one, the cloud whose key is set, else `local`."""
        if self.backend is not None:
            return self.backend
        if self.stepfun_api_key is not None:
            return "stepfun"
        if self.openai_api_key is not None:
            return "openai"
        return "local"

    @property
    def resolved_model(self) -> str:
        """The configured model, else the default of the backend's dialect."""
        return self.model or dialect_for(self.resolved_backend).default_model

    @property
    def resolved_max_sessions(self) -> int:
        """The configured maximum, else the measured capacity of what this process runs."""
        if self.max_sessions is not None:
            return self.max_sessions
        embedded = self.resolved_backend == "local" and not self.backend_url
        if embedded and self.resolved_model == "assistant":
            return DEFAULT_MAX_EMBEDDED_ASSISTANT_SESSIONS
        return DEFAULT_MAX_SESSIONS

    @property
    def resolved_workers(self) -> int:
        """The configured workers, else one per core this process may run on."""
        return self.workers or len(os.sched_getaffinity(0)) or 1

    def api_key(self) -> SecretStr | None:
        return self.key_for(self.resolved_backend)

    def key_for(self, backend: BackendName) -> SecretStr | None:
        if backend == "local":
            return self.local_backend_key()
        return {"stepfun": self.stepfun_api_key, "openai": self.openai_api_key}.get(backend)

    def local_backend_key(self) -> SecretStr | None:
        """The bearer the relay sends a local backend: the realtime token to a separate one
        (VOICE_RELAY_BACKEND_URL), else this process's own credential."""
        if self.backend_url and self.resolved_backend == "local":
            return self.realtime_token
        return SecretStr(self._relay_credential)

    @property
    def relay_credential(self) -> str:
        return self._relay_credential

    def base_url(self) -> str:
        """Where people reach this server: `public_url`, else the listening address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}"

    def allowed_hosts_or_default(self) -> list[str]:
        """`allowed_hosts`, else the public URL's host, the listening host and, when listening
        on loopback or every interface, the loopback names."""
        if self.allowed_hosts:
            return [host.lower() for host in self.allowed_hosts]
        hosts = {self.host.lower().strip("[]")}
        if self.public_url:
            hosts.add((urlsplit(self.public_url).hostname or "").lower())
        if hosts & {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""}:
            hosts |= {"127.0.0.1", "localhost", "::1"}
        return sorted(hosts - {"0.0.0.0", "::", ""})

    def local_backend_url(self) -> str:
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}/v1/realtime"


def secret_value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def tools_problem(settings: Settings, tools: list[Tool], backend: BackendName) -> str | None:
    """Why `tools` cannot be declared for `backend` on this server, if they cannot."""
    if backend != "stepfun" and any(tool.kind in BUILT_IN_KINDS for tool in tools):
        return "web_search and retrieval are StepFun's built-in tools: they need backend stepfun"
    servers = [tool for tool in tools if isinstance(tool, ServerTool)]
    if servers and settings.webhook_secret is None:
        return "server tools need VOICE_RELAY_WEBHOOK_SECRET (it signs every webhook call)"
    for tool in servers:
        refused = literal_address_refused(tool.url, settings.webhook_allow_private)
        if refused is not None:
            return f"{tool.name}: {refused} (VOICE_RELAY_WEBHOOK_ALLOW_PRIVATE allows it)"
    return None
