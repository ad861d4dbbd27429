"""DemoLink: a stored, shareable configuration of persona, backend and limits."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from relay.tools import MAX_TOOLS, Tool, check_tools

# Matched with fullmatch: `$` would let a trailing newline through into headers and paths.
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")
ORIGIN_PATTERN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def utcnow() -> datetime:
    return datetime.now(UTC)


# Backend knobs (docs/backends.md): sampling temperature, the longest answer in tokens, and
# StepFun's VAD wake-up energy (0–5000; higher ignores more room noise).
Temperature = Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]
MaxOutputTokens = Annotated[int, Field(ge=1, le=4096)]
EnergyThreshold = Annotated[int, Field(ge=0, le=5000)]


class Persona(BaseModel):
    instructions: str = Field("", max_length=8000)
    voice: str | None = Field(None, max_length=100)
    greeting: str | None = Field(None, max_length=500)
    language: str = Field("en", pattern=r"^[a-z]{2}(-[A-Za-z]{2,4})?$")
    temperature: Temperature | None = None
    max_output_tokens: MaxOutputTokens | None = None
    energy_awakeness_threshold: EnergyThreshold | None = None


class Limits(BaseModel):
    expires_at: datetime | None = None
    max_session_s: float = Field(600.0, gt=0, le=3600)
    max_concurrent: int = Field(5, ge=1, le=1000)
    sessions_per_hour: int = Field(60, ge=1, le=100_000)

    @field_validator("expires_at")
    @classmethod
    def _in_utc(cls, expires: datetime | None) -> datetime | None:
        # A time without a zone is UTC; compared with an aware `now` it would raise.
        if expires is not None and expires.tzinfo is None:
            return expires.replace(tzinfo=UTC)
        return expires


def check_origins(origins: list[str]) -> list[str]:
    for origin in origins:
        if not ORIGIN_PATTERN.fullmatch(origin):
            raise ValueError(f"{origin!r} is not an origin like https://example.org")
    return [origin.lower() for origin in origins]


class LinkFields(BaseModel):
    """What an admin sets; every field here is locked for the link's visitors."""

    title: str = Field(..., min_length=1, max_length=120)
    description: str = Field("", max_length=1000)
    persona: Persona = Persona()
    backend: Literal["local", "stepfun", "openai"] | None = None
    model: str | None = Field(None, max_length=100)
    limits: Limits = Limits()
    allowed_origins: list[str] = []
    private: bool = False
    tools: list[Tool] = Field([], max_length=MAX_TOOLS)  # relay.tools; never seen by visitors

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        return check_origins(origins)

    @field_validator("tools")
    @classmethod
    def _check_tools(cls, tools: list[Tool]) -> list[Tool]:
        check_tools(tools)
        return tools


class LinkCreate(LinkFields):
    slug: str

    @field_validator("slug")
    @classmethod
    def _check_slug(cls, slug: str) -> str:
        if not SLUG_PATTERN.fullmatch(slug):
            raise ValueError("a slug is 1–48 lowercase letters, digits and dashes")
        return slug


# What a partial update may set to null: the rest always has a value.
CLEARABLE = frozenset({"backend", "model"})


class LinkUpdate(BaseModel):
    """A partial update: only the fields given change; `backend` and `model` may be cleared."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a no-op

    title: str | None = Field(None, min_length=1, max_length=120)
    description: str | None = Field(None, max_length=1000)
    persona: Persona | None = None
    backend: Literal["local", "stepfun", "openai"] | None = None
    model: str | None = Field(None, max_length=100)
    limits: Limits | None = None
    allowed_origins: list[str] | None = None
    private: bool | None = None
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, values: object) -> object:
        if isinstance(values, dict):
            nulls = sorted(k for k, v in values.items() if v is None and k not in CLEARABLE)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} cannot be null: leave it out to keep it")
        return values

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str] | None) -> list[str] | None:
        return None if origins is None else check_origins(origins)

    @field_validator("tools")
    @classmethod
    def _check_tools(cls, tools: list[Tool] | None) -> list[Tool] | None:
        if tools is not None:
            check_tools(tools)
        return tools


class DemoLink(LinkCreate):
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime | None = None) -> bool:
        expires = self.limits.expires_at
        return expires is not None and (now or utcnow()) >= expires

    @property
    def usable(self) -> bool:
        return not self.revoked and not self.expired()

    def updated(self, change: LinkUpdate) -> DemoLink:
        values = change.model_dump(exclude_unset=True)
        merged = self.model_dump() | values
        return DemoLink.model_validate(merged)


class LinkPublic(BaseModel):
    """What a visitor's page may know of a link."""

    slug: str
    title: str
    description: str
    language: str

    @classmethod
    def of(cls, link: DemoLink) -> LinkPublic:
        return cls(
            slug=link.slug,
            title=link.title,
            description=link.description,
            language=link.persona.language,
        )
