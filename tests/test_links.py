"""Demo links: SQLite store, signed tokens for private links, and session limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from web.links import (
    DemoLink,
    Limits,
    LinkCreate,
    LinkExists,
    LinkNotFound,
    LinkSigner,
    LinkUpdate,
    Persona,
    RateLimited,
    SessionLimiter,
    SqliteLinkStore,
    TokenError,
    load_or_create_secret,
)
from web.links.model import utcnow

pytestmark = pytest.mark.unit


def sample(slug: str = "demo", **limits: object) -> LinkCreate:
    return LinkCreate(
        slug=slug,
        title="Demo",
        persona=Persona(instructions="You are Ada.", voice="v1"),
        limits=Limits.model_validate(limits),
        allowed_origins=["http://localhost:9000"],
    )


async def test_link_store_create_get_list_update_revoke(tmp_path: Path) -> None:
    store = SqliteLinkStore(tmp_path / "links.sqlite3")
    created = await store.create(sample())
    assert (await store.get("demo")) == created
    with pytest.raises(LinkExists):
        await store.create(sample())
    await store.create(sample("other"))
    assert [link.slug for link in await store.list()] == ["demo", "other"]
    updated = await store.update("demo", LinkUpdate(title="New title"))
    assert updated.title == "New title" and updated.persona.instructions == "You are Ada."
    revoked = await store.revoke("demo")
    assert revoked.revoked and not revoked.usable
    # A second store on the same file sees the same links (CLI and server share it).
    again = SqliteLinkStore(tmp_path / "links.sqlite3")
    assert (await again.get("demo")).revoked
    with pytest.raises(LinkNotFound):
        await again.get("missing")


def test_link_fields_are_validated() -> None:
    with pytest.raises(ValidationError, match="slug"):
        sample("Not A Slug")
    with pytest.raises(ValidationError, match="origin"):
        LinkCreate(slug="x", title="t", allowed_origins=["javascript:alert(1)"])
    expired = DemoLink.model_validate(
        sample(expires_at=utcnow() - timedelta(seconds=1)).model_dump()
    )
    assert expired.expired() and not expired.usable


def test_link_token_round_trip_and_tampering() -> None:
    signer = LinkSigner(b"s" * 32)
    token = signer.issue("demo", ttl_s=60, now=1000)
    assert signer.verify("demo", token, now=1030) == 1060
    with pytest.raises(TokenError, match="expired"):
        signer.verify("demo", token, now=1060)
    with pytest.raises(TokenError, match="not valid"):
        signer.verify("other", token, now=1030)
    version, expires, mac = token.split(".")
    with pytest.raises(TokenError, match="not valid"):
        signer.verify("demo", f"{version}.{int(expires) + 3600}.{mac}", now=1030)
    with pytest.raises(TokenError, match="not valid"):
        signer.verify("demo", f"{version}.{expires}.{mac[:-2]}AA", now=1030)
    with pytest.raises(TokenError, match="malformed"):
        signer.verify("demo", "garbage", now=1030)
    with pytest.raises(TokenError, match="needs its token"):
        signer.verify("demo", None)
    with pytest.raises(TokenError, match="not valid"):
        LinkSigner(b"t" * 32).verify("demo", token, now=1030)


def test_link_secret_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first and len(first) == 32
    assert path.stat().st_mode & 0o077 == 0


def test_limiter_concurrency_hourly_quota_and_per_ip() -> None:
    now = [0.0]
    limiter = SessionLimiter(per_ip_per_minute=100, clock=lambda: now[0])
    link = DemoLink.model_validate(sample(max_concurrent=2, sessions_per_hour=3).model_dump())
    first = limiter.acquire(link, "1.1.1.1")
    limiter.acquire(link, "1.1.1.2")
    with pytest.raises(RateLimited, match="busy") as busy:
        limiter.acquire(link, "1.1.1.3")
    assert busy.value.retry_after_s > 0
    first.release()
    first.release()  # idempotent
    assert limiter.active(link.slug) == 1
    limiter.acquire(link, "1.1.1.3").release()
    now[0] = 100.0
    with pytest.raises(RateLimited, match="hour") as hourly:
        limiter.acquire(link, "1.1.1.4")
    assert hourly.value.retry_after_s == 3500
    now[0] = 3601.0
    assert limiter.acquire(link, "1.1.1.4")


def test_limiter_refund_gives_back_the_rate_and_the_quota() -> None:
    now = [0.0]
    limiter = SessionLimiter(per_ip_per_minute=1, clock=lambda: now[0])
    link = DemoLink.model_validate(sample(max_concurrent=1, sessions_per_hour=1).model_dump())
    refused_by_a_full_server = limiter.acquire(link, "7.7.7.7")
    refused_by_a_full_server.refund()
    refused_by_a_full_server.refund()  # idempotent
    assert limiter.active(link.slug) == 0
    admitted = limiter.acquire(link, "7.7.7.7")  # neither the per-IP rate nor the hour is used up
    admitted.release()
    with pytest.raises(RateLimited, match="address"):
        limiter.acquire(link, "7.7.7.7")  # a session that ran still counts


def test_limiter_per_ip_rate() -> None:
    now = [0.0]
    limiter = SessionLimiter(per_ip_per_minute=2, clock=lambda: now[0])
    limiter.acquire(None, "9.9.9.9")
    now[0] = 10.0
    limiter.acquire(None, "9.9.9.9")
    with pytest.raises(RateLimited, match="address") as refused:
        limiter.acquire(None, "9.9.9.9")
    assert refused.value.retry_after_s == 50
    limiter.acquire(None, "8.8.8.8")
    now[0] = 61.0
    limiter.acquire(None, "9.9.9.9")
