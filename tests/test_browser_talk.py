"""The talk page in headless Chromium, talking to the embedded `echo` model over loopback WebRTC.

Pins down:
- speech from the fake microphone reaches the model and its echo comes back as audio that the
  page plays (inbound-rtp energy rises, the output meter moves), with the states in between, a
  spoken-turn bubble, the `(echo)` transcript and the reply latency;
- a typed message is shown, confirmed by the server and answered (`echo` replies to text with
  the transcript `(echo) <text>` and no audio);
- ending the conversation releases the microphone and the server session;
- a denied microphone (Chromium's own permission denial) and a busy server (429 + Retry-After)
  are explained in plain words, and no microphone track stays live;
- a session the server ends abnormally, or whose peer vanishes, is reconnected once and the page
  says so; a failed reconnect, or the time limit, ends the call in words and frees the microphone;
- server `error` events are shown in words; `tone` events show whatever numeric fields they carry;
- the interrupt button stops the assistant and marks its bubble;
- the interface follows navigator.language (Chinese) and remembers a switch.
Screenshots for review go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from .browser import (
    ARTIFACTS_DIR,
    UI_TIMEOUT_MS,
    TalkPage,
    chromium,
    inbound_audio,
    poll_until,
    talk_page,
)
from .conftest import LiveServer, wait_until
from .speech import silence_wav, speech_wav

pytestmark = pytest.mark.browser

UTTERANCE = "Hello there, this is a test of the voice relay."
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
TURN_TIMEOUT_MS = 40_000  # one loop of the fake microphone file plus the echo, on a slow machine


@asynccontextmanager
async def open_talk_page(
    live_server: LiveServer,
    audio_file: Path | None = None,
    *,
    allow_microphone: bool = True,
    locale: str = "en-US",
    **context_options: Any,
) -> AsyncIterator[TalkPage]:
    """The live server's talk page in a fresh Chromium whose fake microphone plays `audio_file`."""
    async with (
        chromium(audio_file=audio_file, allow_microphone=allow_microphone) as browser,
        talk_page(browser, live_server.url, locale=locale, **context_options) as talk,
    ):
        yield talk


@pytest.fixture
async def silent_talk(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[TalkPage]:
    """The talk page in English, with a microphone that hears only silence."""
    async with open_talk_page(live_server, silence_wav(tmp_path / "silence.wav")) as talk:
        yield talk


async def start(page: Page) -> None:
    await page.get_by_role("button", name="Start conversation").click()


async def start_listening(page: Page) -> None:
    """Start a conversation and wait until the server listens."""
    await start(page)
    await wait_for_state(page, "listening", UI_TIMEOUT_MS)


async def wait_for_state(page: Page, state: str, timeout_ms: int = TURN_TIMEOUT_MS) -> None:
    """Wait until the UI has been in `state` (recorded, so short-lived states count too)."""
    await page.wait_for_function(
        "(state) => window.stateLog.includes(state)", arg=state, timeout=timeout_ms
    )


async def live_tracks(page: Page) -> list[dict[str, object]]:
    tracks: list[dict[str, object]] = await page.evaluate("voiceRelay.microphoneTracks()")
    return tracks


async def assert_microphone_released(page: Page) -> None:
    tracks = await live_tracks(page)
    assert tracks and all(t["readyState"] == "ended" for t in tracks)


def assert_no_page_errors(talk: TalkPage) -> None:
    assert talk.errors == [], talk.errors


async def test_browser_talk_speech_round_trip(live_server: LiveServer, tmp_path: Path) -> None:
    wav = speech_wav(tmp_path / "speech.wav", UTTERANCE)
    async with open_talk_page(live_server, wav, viewport=DESKTOP) as talk:
        page = talk.page
        status = page.get_by_role("status")
        await expect(status).to_have_text("Ready")
        await start(page)
        await expect(page.get_by_role("button", name="End conversation")).to_be_visible(
            timeout=UI_TIMEOUT_MS
        )
        await wait_for_state(page, "listening")
        await wait_for_state(page, "user_speaking")
        await expect(page.locator(".msg--user").first).to_contain_text("You", timeout=5_000)
        await wait_for_state(page, "assistant_speaking")

        # The assistant's voice arrives and is played: decoded energy grows, the meter moves.
        first = await inbound_audio(page)
        await page.wait_for_function(
            "() => voiceRelay.levels().outputPeak > 0.2", timeout=UI_TIMEOUT_MS
        )
        await poll_until(
            lambda: inbound_audio(page), lambda now: now["energy"] > first["energy"] + 0.001
        )
        stats = await inbound_audio(page)
        assert stats["samples"] > first["samples"]
        assert (await page.evaluate("voiceRelay.levels()"))["inputPeak"] > 0.2

        # `echo` sends the assistant transcript "(echo)" and no user transcript: the spoken
        # turn keeps its placeholder bubble, before the reply.
        assistant = page.locator(".msg--assistant").first
        await expect(assistant.locator(".msg__text")).to_have_text("(echo)")
        await expect(assistant).to_have_attribute("data-final", "true", timeout=UI_TIMEOUT_MS)
        user = page.locator(".msg--user").first
        await expect(user.locator(".msg__text")).to_have_text(
            re.compile(r"Spoken message \(\d+\.\d s\)"), timeout=UI_TIMEOUT_MS
        )
        roles = await page.locator(".log > li").evaluate_all("els => els.map(e => e.dataset.role)")
        assert roles[:2] == ["user", "assistant"]
        await expect(page.locator(".latency")).to_have_text(re.compile(r"Last reply \d+ ms"))
        await expect(assistant.locator(".msg__meta")).to_have_text(re.compile(r"replied in \d+ ms"))

        await screenshots(page)

        # Mute disables the microphone track without ending the call.
        mute = page.get_by_role("button", name="Mute")
        await mute.click()
        await expect(page.get_by_role("button", name="Unmute")).to_have_attribute(
            "aria-pressed", "true"
        )
        assert [t["enabled"] for t in await live_tracks(page)] == [False]
        await expect(status).to_contain_text("microphone muted")

        # Ending releases the microphone and hangs up the server session.
        assert len(live_server.registry) == 1
        await page.get_by_role("button", name="End conversation").click()
        await expect(status).to_have_text("Conversation ended")
        await assert_microphone_released(page)
        assert await page.evaluate("voiceRelay.client === null")
        await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)
        await expect(page.get_by_role("button", name="Start conversation")).to_be_enabled()
        assert_no_page_errors(talk)


async def screenshots(page: Page) -> None:
    """The page mid-conversation, for review: desktop light and dark, and a phone."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS_DIR / "talk-page.png", animations="disabled")
    await page.emulate_media(color_scheme="dark")
    await page.screenshot(path=ARTIFACTS_DIR / "talk-page-dark.png", animations="disabled")
    await page.emulate_media(color_scheme="light")
    await page.set_viewport_size(PHONE)
    await page.screenshot(
        path=ARTIFACTS_DIR / "talk-page-phone.png", full_page=True, animations="disabled"
    )
    await page.set_viewport_size(DESKTOP)


async def test_browser_talk_typed_message(silent_talk: TalkPage) -> None:
    page = silent_talk.page
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_disabled()
    await start_listening(page)
    await expect(box).to_be_enabled()
    await box.fill("What is the weather like?")
    await box.press("Enter")
    await expect(box).to_have_value("")

    user = page.locator(".msg--user").first
    await expect(user.locator(".msg__text")).to_have_text("What is the weather like?")
    # Confirmed by the server's user transcript: no longer "sending…".
    await expect(user.locator(".msg__meta")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    assistant = page.locator(".msg--assistant").first
    await expect(assistant.locator(".msg__text")).to_have_text(
        "(echo) What is the weather like?", timeout=UI_TIMEOUT_MS
    )
    await expect(assistant).to_have_attribute("data-final", "true", timeout=UI_TIMEOUT_MS)
    assert await page.locator(".msg").count() == 2

    exported = await page.evaluate("voiceRelay.log.toJSON().entries")
    assert [(e["role"], e["text"]) for e in exported] == [
        ("user", "What is the weather like?"),
        ("assistant", "(echo) What is the weather like?"),
    ]
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download text").click()
    download = await download_info.value
    assert re.fullmatch(r"conversation-[\d-]+\.txt", download.suggested_filename)
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    assert "You: What is the weather like?" in text
    assert "Assistant: (echo) What is the weather like?" in text

    # A server error event (here: an event type pages may not send) is shown in words.
    assert await page.evaluate("voiceRelay.client.send({ type: 'bogus' })")
    await expect(page.get_by_role("alert")).to_contain_text(
        "That message could not be sent: event type 'bogus' is not allowed"
    )
    assert_no_page_errors(silent_talk)


async def test_browser_talk_tone_cues(silent_talk: TalkPage) -> None:
    """Tone events render whatever numeric fields they carry (the relay does not send them yet)."""
    page = silent_talk.page
    await start_listening(page)
    await page.get_by_role("textbox", name="Message").fill("Hi")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg--user .msg__meta")).to_have_count(0)
    tone = {"type": "tone", "role": "user", "pitch_hz": 182.4, "loudness_db": -21.3}
    tone |= {"rate_sps": 4.25, "jitter_pct": 1.5, "energy_ratio": 0.1234, "label": "calm"}
    await page.evaluate(
        "(tone) => voiceRelay.client.dispatchEvent(new CustomEvent('tone', { detail: tone }))",
        tone,
    )
    panel = page.get_by_role("region", name="Tone of voice")
    cues = await panel.locator(".cue").all_inner_texts()
    assert [" ".join(c.split()) for c in cues] == [
        "Pitch 182 Hz",
        "Loudness -21 dB",
        "Speaking rate 4.3 syll/s",
        "Jitter 1.5 %",
        "Energy ratio 0.12",
    ]
    await expect(page.locator(".msg--user .msg__tone li")).to_have_count(5)
    await page.get_by_label("Language").select_option("zh")
    first_cue = page.get_by_role("region", name="语气").locator(".cue").first
    await expect(first_cue).to_have_text("音高182 Hz")
    assert_no_page_errors(silent_talk)


@pytest.mark.settings(max_session_s=4)
async def test_browser_talk_time_limit(live_server: LiveServer, silent_talk: TalkPage) -> None:
    page = silent_talk.page
    await start(page)
    await expect(page.get_by_role("alert")).to_contain_text(
        "The conversation reached its time limit", timeout=UI_TIMEOUT_MS
    )
    await expect(page.get_by_role("status")).to_have_text("Conversation ended")
    log = await page.evaluate("window.stateLog")
    assert "listening" in log and "reconnecting" not in log
    await assert_microphone_released(page)
    await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)
    assert_no_page_errors(silent_talk)


async def test_browser_talk_denied_microphone(live_server: LiveServer) -> None:
    async with open_talk_page(live_server, allow_microphone=False, permissions=[]) as talk:
        page = talk.page
        await start(page)
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("Microphone access is blocked")
        await expect(page.get_by_role("status")).to_have_text("Ready")
        await expect(page.get_by_role("button", name="Start conversation")).to_be_enabled()
        assert await live_tracks(page) == []
        assert len(live_server.registry) == 0
        ARTIFACTS_DIR.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS_DIR / "talk-page-denied.png", animations="disabled")
        await alert.get_by_role("button", name="Dismiss").click()
        await expect(alert).to_be_hidden()
        assert_no_page_errors(talk)


async def test_browser_talk_insecure_page_says_https_is_needed(live_server: LiveServer) -> None:
    # 127.0.0.1 counts as secure; a plain-HTTP host name does not (as a real deployment would).
    host = "voice-relay.test"
    rule = f"--host-resolver-rules=MAP {host} 127.0.0.1"
    url = live_server.url.replace("127.0.0.1", host)
    async with (
        chromium(extra_args=(rule,)) as browser,
        talk_page(browser, url, locale="en-US") as talk,
    ):
        page = talk.page
        assert await page.evaluate("window.isSecureContext") is False
        await expect(page.get_by_role("alert")).to_contain_text("only works on secure pages")
        await expect(page.get_by_role("button", name="Start conversation")).to_be_disabled()
        assert len(live_server.registry) == 0
        assert_no_page_errors(talk)


async def test_browser_talk_without_webrtc_says_so(live_server: LiveServer) -> None:
    async with chromium() as browser:
        context = await browser.new_context(locale="en-US")
        await context.add_init_script("delete window.RTCPeerConnection;")
        page = await context.new_page()
        try:
            await page.goto(live_server.url)
            await expect(page.get_by_role("alert")).to_contain_text("WebRTC is missing")
            await expect(page.get_by_role("button", name="Start conversation")).to_be_disabled()
        finally:
            await context.close()


async def test_browser_talk_busy_server(silent_talk: TalkPage) -> None:
    async def busy(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        await route.fulfill(
            status=429,
            headers={"Retry-After": "7"},
            json={"error": {"code": "too_many_sessions", "message": "Too many sessions."}},
        )

    page = silent_talk.page
    await page.route("**/api/sessions", busy)
    await start(page)
    await expect(page.get_by_role("alert")).to_have_text(
        re.compile("Too many conversations right now. Please try again in 7 seconds.")
    )
    await expect(page.get_by_role("status")).to_have_text("Ready")
    await assert_microphone_released(page)
    # The failed POST is the browser's own console error; nothing else went wrong.
    assert all("429" in e for e in silent_talk.errors), silent_talk.errors


async def test_browser_talk_reconnects_once(live_server: LiveServer, silent_talk: TalkPage) -> None:
    page = silent_talk.page
    await start_listening(page)
    first = await page.evaluate("voiceRelay.client.sessionId")
    await live_server.registry.close(first, "internal_error")

    await expect(page.locator(".msg--note")).to_have_text(
        "Reconnected after the connection dropped.", timeout=UI_TIMEOUT_MS
    )
    await page.wait_for_function(
        "(first) => voiceRelay.state === 'listening' && voiceRelay.client.sessionId !== first",
        arg=first,
    )
    log = await page.evaluate("window.stateLog")
    assert log.index("reconnecting") < len(log) - 1 and log[-1] == "listening"
    assert len(live_server.registry) == 1
    assert [t["readyState"] for t in await live_tracks(page)] == ["live"]

    await page.get_by_role("button", name="End conversation").click()
    await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)
    assert_no_page_errors(silent_talk)


async def test_browser_talk_reconnects_when_the_peer_vanishes(
    live_server: LiveServer, silent_talk: TalkPage
) -> None:
    page = silent_talk.page
    await start_listening(page)
    first = await page.evaluate("voiceRelay.client.sessionId")
    # The server's peer disappears without a word (no `ended` event reaches the page).
    await live_server.registry.get(first).pc.close()

    await page.wait_for_function(
        "(first) => voiceRelay.state === 'listening' && voiceRelay.client.sessionId !== first",
        arg=first,
        timeout=UI_TIMEOUT_MS,
    )
    assert "reconnecting" in await page.evaluate("window.stateLog")
    await expect(page.locator(".msg--note")).to_have_count(1)
    await page.get_by_role("button", name="End conversation").click()
    await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)
    # The page hangs up the dropped session too, which the server may have ended already.
    gone = f"http 404 DELETE {live_server.url}/api/sessions/{first}"
    assert all(e == gone or "404" in e for e in silent_talk.errors), silent_talk.errors


async def test_browser_talk_reconnect_failure(
    live_server: LiveServer, silent_talk: TalkPage
) -> None:
    async def unavailable(route: Route) -> None:
        await route.fulfill(status=503, json={"error": {"code": "unavailable", "message": "-"}})

    page = silent_talk.page
    await start_listening(page)
    await page.route("**/api/sessions", unavailable)
    first = await page.evaluate("voiceRelay.client.sessionId")
    await live_server.registry.close(first, "backend_error")

    await expect(page.get_by_role("alert")).to_have_text(
        "The connection was lost and could not be restored. Press Start to try again.",
        timeout=UI_TIMEOUT_MS,
    )
    await expect(page.get_by_role("status")).to_have_text("Conversation ended")
    assert (await page.evaluate("window.stateLog"))[-2:] == ["reconnecting", "ended"]
    await assert_microphone_released(page)
    assert all("503" in e for e in silent_talk.errors), silent_talk.errors


async def test_browser_talk_interrupt(live_server: LiveServer, tmp_path: Path) -> None:
    wav = speech_wav(tmp_path / "speech.wav", UTTERANCE)
    async with open_talk_page(live_server, wav) as talk:
        page = talk.page
        await start(page)
        await page.wait_for_function(
            "voiceRelay.state === 'assistant_speaking'", timeout=TURN_TIMEOUT_MS
        )
        seen = await page.evaluate("stateLog.length")
        await page.get_by_role("button", name="Interrupt").click()
        await expect(page.locator(".msg--assistant.msg--interrupted")).to_have_count(1)
        await expect(page.locator(".msg--interrupted .msg__meta")).to_contain_text("interrupted")
        # The assistant stops at once; the looping fake microphone may start the next turn, so
        # any state after the interrupt other than assistant_speaking shows it.
        await page.wait_for_function(
            "(seen) => stateLog.slice(seen).some((s) => s !== 'assistant_speaking')",
            arg=seen,
            timeout=TURN_TIMEOUT_MS,
        )
        await page.get_by_role("button", name="End conversation").click()
        assert_no_page_errors(talk)


async def test_browser_talk_language(live_server: LiveServer) -> None:
    async with open_talk_page(live_server, locale="zh-CN") as talk:
        page = talk.page
        await expect(page.get_by_role("heading", level=1)).to_have_text("与助手对话")
        await expect(page.get_by_role("button", name="开始对话")).to_be_visible()
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"

        await page.get_by_label("语言").select_option("en")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Talk to the assistant")
        await expect(page.get_by_role("button", name="Start conversation")).to_be_visible()
        await page.reload()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Talk to the assistant")
        assert await page.evaluate("document.documentElement.lang") == "en"
        assert_no_page_errors(talk)
