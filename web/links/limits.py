"""Per-link concurrency and hourly quotas, and a per-IP session rate limit."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from .model import DemoLink

HOUR_S = 3600.0
MINUTE_S = 60.0
CONCURRENCY_RETRY_S = 30
MAX_TRACKED_IPS = 10_000


class RateLimited(Exception):
    """A session was refused; `retry_after_s` says when trying again may work."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, math.ceil(retry_after_s))


@dataclass
class Lease:
    """One admitted session; `release()` when it ends (idempotent)."""

    limiter: SessionLimiter
    slug: str | None
    ip: str
    admitted_at: float
    released: bool = False
    refunded: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limiter._release(self.slug)

    def refund(self) -> None:
        """The session never started through no fault of the caller (the server was full):
        release it and take it off the per-IP rate and the link's hourly quota."""
        self.release()
        if not self.refunded:
            self.refunded = True
            self.limiter._uncount(self.slug, self.ip, self.admitted_at)


class SessionLimiter:
    """In-process counters; one relay process enforces its own share of the limits."""

    def __init__(self, per_ip_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_ip_per_minute = per_ip_per_minute
        self._clock = clock
        self._active: dict[str, int] = defaultdict(int)
        self._hourly: dict[str, deque[float]] = defaultdict(deque)
        self._per_ip: dict[str, deque[float]] = {}

    def active(self, slug: str) -> int:
        return self._active.get(slug, 0)

    def acquire(self, link: DemoLink | None, ip: str) -> Lease:
        now = self._clock()
        recent = self._window(self._per_ip.setdefault(ip, deque()), now, MINUTE_S)
        if len(recent) >= self.per_ip_per_minute:
            raise RateLimited(
                "Too many conversations started from your address; please wait a minute.",
                recent[0] + MINUTE_S - now,
            )
        if link is not None:
            limits = link.limits
            if self._active[link.slug] >= limits.max_concurrent:
                raise RateLimited(
                    "This demo is busy: all its conversations are in use. Try again shortly.",
                    CONCURRENCY_RETRY_S,
                )
            hourly = self._window(self._hourly[link.slug], now, HOUR_S)
            if len(hourly) >= limits.sessions_per_hour:
                raise RateLimited(
                    "This demo has reached its conversations for this hour. Try again later.",
                    hourly[0] + HOUR_S - now,
                )
            hourly.append(now)
            self._active[link.slug] += 1
        recent.append(now)
        self._prune_ips(now)
        return Lease(self, link.slug if link is not None else None, ip, now)

    def _release(self, slug: str | None) -> None:
        if slug is not None and self._active.get(slug, 0) > 0:
            self._active[slug] -= 1

    def _uncount(self, slug: str | None, ip: str, at: float) -> None:
        for times in (self._per_ip.get(ip), self._hourly.get(slug) if slug else None):
            if times is not None and at in times:
                times.remove(at)

    @staticmethod
    def _window(times: deque[float], now: float, span: float) -> deque[float]:
        while times and times[0] <= now - span:
            times.popleft()
        return times

    def _prune_ips(self, now: float) -> None:
        if len(self._per_ip) <= MAX_TRACKED_IPS:
            return
        for ip in [ip for ip, t in self._per_ip.items() if not self._window(t, now, MINUTE_S)]:
            del self._per_ip[ip]
