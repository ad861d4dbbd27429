"""Where demo links live: a small interface, and SQLite as the default store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from .model import DemoLink, LinkCreate, LinkUpdate, utcnow

T = TypeVar("T")


class LinkExists(ValueError):
    """A link with this slug already exists."""


class LinkNotFound(KeyError):
    """No link has this slug."""


class LinkStore(Protocol):
    async def create(self, link: LinkCreate) -> DemoLink: ...

    async def get(self, slug: str) -> DemoLink: ...

    async def list(self) -> list[DemoLink]: ...

    async def update(self, slug: str, change: LinkUpdate) -> DemoLink: ...

    async def revoke(self, slug: str) -> DemoLink: ...


LINKS_FILE = "links.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    slug TEXT PRIMARY KEY,
    body TEXT NOT NULL
)
"""


class SqliteLinkStore:
    """Links as JSON documents in one SQLite table; calls run in a thread, off the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = asyncio.Lock()
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=5.0)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            db = self._connect()
            try:
                with db:
                    return work(db)
            finally:
                db.close()

        async with self._lock:
            return await asyncio.to_thread(run)

    async def create(self, link: LinkCreate) -> DemoLink:
        stored = DemoLink.model_validate(link.model_dump())

        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO links (slug, body) VALUES (?, ?)",
                    (stored.slug, stored.model_dump_json()),
                )
            except sqlite3.IntegrityError:
                raise LinkExists(f"a link named {stored.slug!r} already exists") from None

        await self._run(insert)
        return stored

    async def get(self, slug: str) -> DemoLink:
        def select(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT body FROM links WHERE slug = ?", (slug,)).fetchone()
            return row[0] if row else None

        body = await self._run(select)
        if body is None:
            raise LinkNotFound(slug)
        return DemoLink.model_validate_json(body)

    async def list(self) -> list[DemoLink]:
        def select(db: sqlite3.Connection) -> list[str]:
            return [row[0] for row in db.execute("SELECT body FROM links ORDER BY slug")]

        return [DemoLink.model_validate_json(body) for body in await self._run(select)]

    async def _replace(self, link: DemoLink) -> DemoLink:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE links SET body = ? WHERE slug = ?", (link.model_dump_json(), link.slug)
            )

        await self._run(write)
        return link

    async def update(self, slug: str, change: LinkUpdate) -> DemoLink:
        return await self._replace((await self.get(slug)).updated(change))

    async def revoke(self, slug: str) -> DemoLink:
        link = await self.get(slug)
        if link.revoked_at is None:
            link = link.model_copy(update={"revoked_at": utcnow()})
        return await self._replace(link)
