"""Demo links: SQLite store, signed tokens for private links, and session limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import limits.aio.storage.memory
import pytest
from limits.aio.storage import MemoryStorage
from pydantic import ValidationError

import web.links.limits
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
    assert signer.verify("demo", token, now=1059.9) == 1060
    with pytest.raises(TokenError, match="expired"):
        signer.verify("demo", token, now=1060)
    with pytest.raises(TokenError, match="expired"):
        signer.verify("demo", token, now=999)  # issued in the future: not from this clock
    with pytest.raises(TokenError, match="not valid"):
        signer.verify("other", token, now=1030)
    version, ttl, issued, mac = token.split(".")
    later = LinkSigner(b"s" * 32).issue("demo", ttl_s=60, now=5000).split(".")[2]
    for forged in [
        f"{version}.{int(ttl) + 3600}.{issued}.{mac}",
        f"{version}.{ttl}.{later}.{mac}",
        f"{version}.{ttl}.{issued}.{mac[:-2]}AA",
    ]:
        with pytest.raises(TokenError, match="not valid"):
            signer.verify("demo", forged, now=1030)
    with pytest.raises(TokenError, match="needs its token"):
        signer.verify("demo", None)
    with pytest.raises(TokenError, match="not valid"):
        LinkSigner(b"t" * 32).verify("demo", token, now=1030)
    with pytest.raises(ValueError, match="lifetime"):
        signer.issue("demo", ttl_s=0)


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "v1.1060.c2lnbmF0dXJl",  # the earlier format
        "v2.\u0661\u0660.AAAA." + "A" * 43,  # digits, but not ASCII ones
        "v2." + "9" * 400 + ".AAAA." + "A" * 43,  # a huge lifetime
        "v2.60." + "A" * 400 + "." + "A" * 43,  # a huge issue time
        "v2.60.!!!!." + "A" * 43,  # not base64
        "v2.60.AAAA." + "A" * 42 + "=",
        "v2.60.\u00c4\u00c4." + "\u00c4" * 43,
        "v2.60.AAAA." + "A" * 43 + "\n",
        "v2..AAAA." + "A" * 43,
        "." * 3,
    ],
)
def test_link_token_malformed_tokens_are_refused_plainly(token: str) -> None:
    with pytest.raises(TokenError, match="malformed"):
        LinkSigner(b"s" * 32).verify("demo", token, now=1030)


def test_link_token_with_a_forged_issue_time_is_refused_plainly() -> None:
    # Right shape, so it reaches itsdangerous: an issue time far past year 9999 is not an error.
    mac = LinkSigner(b"s" * 32).issue("demo", ttl_s=60, now=1000).split(".")[3]
    with pytest.raises(TokenError, match="not valid"):
        LinkSigner(b"s" * 32).verify("demo", f"v2.60.__________.{mac}", now=1030)


def test_link_secret_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first and len(first) == 32
    assert path.stat().st_mode & 0o077 == 0


class Clock:
    """Wall-clock time as `limits`' memory storage and the limiter read it, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


T0 = 1_700_000_000.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(T0)
    monkeypatch.setattr(limits.aio.storage.memory, "time", clock)
    monkeypatch.setattr(web.links.limits, "time", clock)
    return clock


def link_with(**limits: object) -> DemoLink:
    return DemoLink.model_validate(sample("demo", **limits).model_dump())


async def test_limiter_concurrency_hourly_quota_and_per_ip(clock: Clock) -> None:
    limiter = SessionLimiter(per_ip_per_minute=100)
    link = link_with(max_concurrent=2, sessions_per_hour=3)
    first = await limiter.acquire(link, "1.1.1.1")
    await limiter.acquire(link, "1.1.1.2")
    with pytest.raises(RateLimited, match="busy") as busy:
        await limiter.acquire(link, "1.1.1.3")
    assert busy.value.retry_after_s > 0
    first.release()
    first.release()  # idempotent
    assert limiter.active(link.slug) == 1
    (await limiter.acquire(link, "1.1.1.3")).release()
    clock.now = T0 + 100
    with pytest.raises(RateLimited, match="hour") as hourly:
        await limiter.acquire(link, "1.1.1.4")
    assert hourly.value.retry_after_s == 3500
    assert limiter.active(link.slug) == 1  # a refusal holds no place
    clock.now = T0 + 3601
    assert await limiter.acquire(link, "1.1.1.4")


async def test_limiter_refund_gives_back_the_rate_and_the_quota(clock: Clock) -> None:
    limiter = SessionLimiter(per_ip_per_minute=1)
    link = link_with(max_concurrent=1, sessions_per_hour=1)
    refused_by_a_full_server = await limiter.acquire(link, "7.7.7.7")
    await refused_by_a_full_server.refund()
    await refused_by_a_full_server.refund()  # idempotent
    assert limiter.active(link.slug) == 0
    admitted = await limiter.acquire(link, "7.7.7.7")  # neither the rate nor the hour is used up
    admitted.release()
    with pytest.raises(RateLimited, match="address"):
        await limiter.acquire(link, "7.7.7.7")  # a session that ran still counts
    with pytest.raises(RateLimited, match="hour"):
        await limiter.acquire(link, "7.7.7.8")
    clock.now = T0 + 61  # the refund lasts as long as the hit it gave back
    with pytest.raises(RateLimited, match="hour"):
        await limiter.acquire(link, "7.7.7.7")


async def test_limiter_per_ip_rate(clock: Clock) -> None:
    limiter = SessionLimiter(per_ip_per_minute=2)
    await limiter.acquire(None, "9.9.9.9")
    clock.now = T0 + 10
    await limiter.acquire(None, "9.9.9.9")
    with pytest.raises(RateLimited, match="address") as refused:
        await limiter.acquire(None, "9.9.9.9")
    assert refused.value.retry_after_s == 50
    await limiter.acquire(None, "8.8.8.8")
    clock.now = T0 + 61
    await limiter.acquire(None, "9.9.9.9")


async def test_limiter_refusals_for_the_link_do_not_use_up_the_address(clock: Clock) -> None:
    limiter = SessionLimiter(per_ip_per_minute=2)
    link = link_with(max_concurrent=1, sessions_per_hour=10)
    held = await limiter.acquire(link, "5.5.5.5")
    for _ in range(3):
        with pytest.raises(RateLimited, match="busy"):
            await limiter.acquire(link, "5.5.5.5")
    held.release()
    await limiter.acquire(link, "5.5.5.5")  # the address's second session


async def test_limiters_sharing_a_storage_count_together(clock: Clock) -> None:
    # As relay processes sharing one storage (Redis) would; concurrency stays per process.
    storage = MemoryStorage()
    first, second = SessionLimiter(1, storage=storage), SessionLimiter(1, storage=storage)
    link = link_with(max_concurrent=1, sessions_per_hour=2)
    await first.acquire(link, "1.1.1.1")
    await second.acquire(link, "2.2.2.2")
    with pytest.raises(RateLimited, match="address"):
        await second.acquire(None, "1.1.1.1")
    with pytest.raises(RateLimited, match="hour"):
        await SessionLimiter(1, storage=storage).acquire(link, "3.3.3.3")
    with pytest.raises(RateLimited, match="busy"):
        await first.acquire(link, "4.4.4.4")
