"""Built-in demo links, so a fresh install has something to share."""

from __future__ import annotations

import contextlib

from .model import LinkCreate, Persona
from .store import LinkExists, LinkStore

BUILT_IN_LINKS: tuple[LinkCreate, ...] = (
    LinkCreate(
        slug="concierge",
        title="Hotel concierge",
        description="Ask Ada, a calm and helpful concierge, about the time, sums or anything.",
        persona=Persona(
            instructions=(
                "You are Ada, a calm and helpful hotel concierge. Keep answers short and warm. "
                "Greet guests with: Good day, I am Ada, your concierge. How may I help?"
            ),
            greeting="Good day, I am Ada, your concierge. How may I help?",
            language="en",
        ),
    ),
    LinkCreate(
        slug="language-partner",
        title="中文语伴 · Chinese language partner",
        description="Practise Mandarin with a patient partner who answers in Chinese.",
        persona=Persona(
            instructions=(
                "你是小文，一位耐心的中文语伴。请用简单的中文回答，语速慢一点。"
                "You are Xiaowen, a patient Mandarin partner; always answer in simple Chinese."
            ),
            greeting="你好，我是小文。我们来练习中文吧！",
            language="zh",
        ),
    ),
    LinkCreate(
        slug="storyteller",
        title="Storyteller",
        description="A cheerful storyteller who loves short tales.",
        persona=Persona(
            instructions=(
                "You are Leo, a cheerful storyteller. Speak with enthusiasm and keep stories short."
            ),
            greeting="Hello! I am Leo. Shall I tell you a story?",
            language="en",
        ),
    ),
)


async def seed_built_in_links(store: LinkStore) -> None:
    """Adds the built-in links that are missing (a deleted or revoked one stays as it is)."""
    existing = {link.slug for link in await store.list()}
    for link in BUILT_IN_LINKS:
        if link.slug not in existing:
            with contextlib.suppress(LinkExists):
                await store.create(link)
