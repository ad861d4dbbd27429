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
- server `error` events are shown in the page's own words (in both languages) with the server's
  raw text as a detail, and a code the page does not know in generic words naming it; `tone`
  events show whatever numeric fields they carry;
- the interrupt button stops the assistant and marks its bubble;
- the interface follows navigator.language (Chinese) and remembers a switch.
Screenshots for review go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from .browser import (
    TURN_TIMEOUT_MS,
    TalkPage,
    artifact,
    inbound_audio,
    open_talk,
    poll_until,
)
from .conftest import LiveServer, wait_until
from .speech import silence_wav, speech_wav

pytestmark = pytest.mark.browser

UTTERANCE = "Hello there, this is a test of the voice relay."
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def silent_talk(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[TalkPage]:
    """The talk page in English, with a microphone that hears only silence."""
    async with open_talk(live_server.url, silence_wav(tmp_path / "silence.wav")) as talk:
        yield talk


@pytest.fixture
async def speaking_talk(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[TalkPage]:
    """The talk page in English, with a microphone that keeps saying UTTERANCE."""
    wav = speech_wav(tmp_path / "speech.wav", UTTERANCE)
    async with open_talk(live_server.url, wav, viewport=DESKTOP) as talk:
        yield talk


async def wait_for_new_session(page: Page, first: str) -> None:
    """Wait until the page listens again, on a session other than `first`."""
    await page.wait_for_function(
        "(first) => voiceRelay.state === 'listening' && voiceRelay.client.sessionId !== first",
        arg=first,
    )


async def test_browser_talk_speech_round_trip(
    live_server: LiveServer, speaking_talk: TalkPage
) -> None:
    talk, page = speaking_talk, speaking_talk.page
    status = page.get_by_role("status")
    await expect(status).to_have_text("Ready")
    await talk.start()
    await expect(page.get_by_role("button", name="End conversation")).to_be_visible()
    await talk.wait_for_state("listening")
    await talk.wait_for_state("user_speaking")
    await expect(page.locator(".msg--user").first).to_contain_text("You", timeout=5_000)
    await talk.wait_for_state("assistant_speaking")

    # The assistant's voice arrives and is played: decoded energy grows, the meter moves.
    first = await inbound_audio(page)
    await page.wait_for_function("() => voiceRelay.levels().outputPeak > 0.2")
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
    await expect(assistant).to_have_attribute("data-final", "true")
    user = page.locator(".msg--user").first
    await expect(user.locator(".msg__text")).to_have_text(
        re.compile(r"Spoken message \(\d+\.\d s\)")
    )
    roles = await page.locator(".log > li").evaluate_all("els => els.map(e => e.dataset.role)")
    assert roles[:2] == ["user", "assistant"]
    await expect(page.locator(".latency")).to_have_text(re.compile(r"Last reply \d+ ms"))
    await expect(assistant.locator(".msg__meta")).to_have_text(re.compile(r"replied in \d+ ms"))

    await screenshots(page)

    # Mute disables the microphone track without ending the call.
    await page.get_by_role("button", name="Mute").click()
    await expect(page.get_by_role("button", name="Unmute")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert [t["enabled"] for t in await talk.microphone_tracks()] == [False]
    await expect(status).to_contain_text("microphone muted")

    # Ending releases the microphone and hangs up the server session.
    assert len(live_server.registry) == 1
    await talk.hang_up(live_server)
    await expect(status).to_have_text("Conversation ended")
    await talk.assert_microphone_released()
    assert await page.evaluate("voiceRelay.client === null")
    await expect(page.get_by_role("button", name="Start conversation")).to_be_enabled()
    talk.assert_no_errors()


async def screenshots(page: Page) -> None:
    """The page mid-conversation, for review: desktop light and dark, and a phone."""
    await page.screenshot(path=artifact("talk-page.png"), animations="disabled")
    await page.emulate_media(color_scheme="dark")
    await page.screenshot(path=artifact("talk-page-dark.png"), animations="disabled")
    await page.emulate_media(color_scheme="light")
    await page.set_viewport_size(PHONE)
    await page.screenshot(
        path=artifact("talk-page-phone.png"), full_page=True, animations="disabled"
    )
    await page.set_viewport_size(DESKTOP)


async def test_browser_talk_typed_message(silent_talk: TalkPage) -> None:
    page = silent_talk.page
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_disabled()
    await silent_talk.start_listening()
    await expect(box).to_be_enabled()
    await box.fill("What is the weather like?")
    await box.press("Enter")
    await expect(box).to_have_value("")

    user = page.locator(".msg--user").first
    await expect(user.locator(".msg__text")).to_have_text("What is the weather like?")
    # Confirmed by the server's user transcript: no longer "sending…".
    await expect(user.locator(".msg__meta")).to_have_count(0)
    assistant = page.locator(".msg--assistant").first
    await expect(assistant.locator(".msg__text")).to_have_text("(echo) What is the weather like?")
    await expect(assistant).to_have_attribute("data-final", "true")
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
    silent_talk.assert_no_errors()


async def test_browser_talk_error_events(silent_talk: TalkPage) -> None:
    page = silent_talk.page
    alert = page.get_by_role("alert")
    words, detail = alert.locator(".alert__text"), alert.locator(".alert__detail")
    await silent_talk.start_listening()
    # The server's own answer to an event type pages may not send, in the page's words.
    assert await page.evaluate("voiceRelay.client.send({ type: 'bogus' })")
    await expect(words).to_have_text("That message could not be sent.")
    await expect(detail).to_contain_text("event type 'bogus' is not allowed")
    await expect(alert).to_have_attribute("data-code", "invalid_client_event")

    # The model's own text is the detail under the page's words, in either language.
    await silent_talk.deliver(
        {"type": "error", "code": "backend_error", "detail": "Upstream timeout (504)"}
    )
    await expect(words).to_have_text("The voice model reported a problem.")
    await expect(detail).to_have_text("Upstream timeout (504)")
    await page.screenshot(path=artifact("talk-page-error.png"), animations="disabled")
    await page.get_by_label("Language").select_option("zh")
    await expect(words).to_have_text("语音模型报告了一个问题。")
    await expect(detail).to_have_text("Upstream timeout (504)")
    await page.get_by_label("语言").select_option("en")

    # A code this page does not know still says something, naming the code.
    await silent_talk.deliver({"type": "error", "code": "quota_exhausted", "detail": ""})
    await expect(words).to_have_text("Something went wrong (quota_exhausted).")
    await expect(detail).to_be_hidden()
    await expect(page.get_by_role("status")).to_have_text("Listening")
    silent_talk.assert_no_errors()


async def test_browser_talk_tone_cues(silent_talk: TalkPage) -> None:
    """Tone events render whatever numeric fields they carry, not only the relay's own."""
    page = silent_talk.page
    await silent_talk.start_listening()
    await page.get_by_role("textbox", name="Message").fill("Hi")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".msg--user .msg__meta")).to_have_count(0)
    tone = {"type": "tone", "role": "user", "pitch_hz": 182.4, "loudness_db": -21.3}
    tone |= {"rate_sps": 4.25, "jitter_pct": 1.5, "energy_ratio": 0.1234, "label": "calm"}
    await silent_talk.deliver(tone)
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
    silent_talk.assert_no_errors()


@pytest.mark.settings(max_session_s=4)
async def test_browser_talk_time_limit(live_server: LiveServer, silent_talk: TalkPage) -> None:
    page = silent_talk.page
    await silent_talk.start()
    await expect(page.get_by_role("alert")).to_contain_text(
        "The conversation reached its time limit"
    )
    await expect(page.get_by_role("status")).to_have_text("Conversation ended")
    log = await page.evaluate("window.stateLog")
    assert "listening" in log and "reconnecting" not in log
    await silent_talk.assert_microphone_released()
    await wait_until(lambda: len(live_server.registry) == 0, timeout_s=10)
    silent_talk.assert_no_errors()


async def test_browser_talk_denied_microphone(live_server: LiveServer) -> None:
    async with open_talk(live_server.url, allow_microphone=False, permissions=[]) as talk:
        page = talk.page
        await talk.start()
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("Microphone access is blocked")
        await expect(alert).to_have_attribute("data-code", "mic_denied")
        await expect(page.get_by_role("status")).to_have_text("Ready")
        await expect(page.get_by_role("button", name="Start conversation")).to_be_enabled()
        assert await talk.microphone_tracks() == []
        assert len(live_server.registry) == 0
        await page.screenshot(path=artifact("talk-page-denied.png"), animations="disabled")
        await alert.get_by_role("button", name="Dismiss").click()
        await expect(alert).to_be_hidden()
        talk.assert_no_errors()


@pytest.mark.settings(allowed_hosts=["127.0.0.1", "voice-relay.test"])
async def test_browser_talk_insecure_page_says_https_is_needed(live_server: LiveServer) -> None:
    # 127.0.0.1 counts as secure; a plain-HTTP host name does not (as a real deployment would).
    host = "voice-relay.test"
    rule = f"--host-resolver-rules=MAP {host} 127.0.0.1"
    url = live_server.url.replace("127.0.0.1", host)
    async with open_talk(url, extra_args=(rule,)) as talk:
        page = talk.page
        assert await page.evaluate("window.isSecureContext") is False
        await expect(page.get_by_role("alert")).to_contain_text("only works on secure pages")
        await expect(page.get_by_role("button", name="Start conversation")).to_be_disabled()
        assert len(live_server.registry) == 0
        talk.assert_no_errors()


async def test_browser_talk_without_webrtc_says_so(live_server: LiveServer) -> None:
    async with open_talk(live_server.url, init_script="delete window.RTCPeerConnection;") as talk:
        page = talk.page
        await expect(page.get_by_role("alert")).to_contain_text("WebRTC is missing")
        await expect(page.get_by_role("button", name="Start conversation")).to_be_disabled()
        talk.assert_no_errors()


async def test_browser_talk_busy_server(silent_talk: TalkPage) -> None:
    page = silent_talk.page
    await silent_talk.refuse_sessions(429, "rate_limited", {"Retry-After": "7"})
    await silent_talk.start()
    alert = page.get_by_role("alert")
    await expect(alert.locator(".alert__text")).to_have_text(
        "Too many conversations right now. Please try again in 7 seconds."
    )
    # The server's English is for API clients: these words say it all.
    await expect(alert.locator(".alert__detail")).to_be_hidden()
    await expect(page.get_by_role("status")).to_have_text("Ready")
    await silent_talk.assert_microphone_released()
    # The failed POST is the browser's own console error; nothing else went wrong.
    silent_talk.assert_no_errors(allowing="429")


async def test_browser_talk_reconnects_once(live_server: LiveServer, silent_talk: TalkPage) -> None:
    page = silent_talk.page
    await silent_talk.start_listening()
    first = await page.evaluate("voiceRelay.client.sessionId")
    await live_server.registry.close(first, "internal_error")

    await expect(page.locator(".msg--note")).to_have_text(
        "Reconnected after the connection dropped."
    )
    await wait_for_new_session(page, first)
    log = await page.evaluate("window.stateLog")
    assert log.index("reconnecting") < len(log) - 1 and log[-1] == "listening"
    assert len(live_server.registry) == 1
    assert [t["readyState"] for t in await silent_talk.microphone_tracks()] == ["live"]
    await silent_talk.hang_up(live_server)
    silent_talk.assert_no_errors()


async def test_browser_talk_reconnects_when_the_peer_vanishes(
    live_server: LiveServer, silent_talk: TalkPage
) -> None:
    page = silent_talk.page
    await silent_talk.start_listening()
    first = await page.evaluate("voiceRelay.client.sessionId")
    # The server's peer disappears without a word (no `ended` event reaches the page).
    await live_server.registry.get(first).pc.close()

    await wait_for_new_session(page, first)
    assert "reconnecting" in await page.evaluate("window.stateLog")
    await expect(page.locator(".msg--note")).to_have_count(1)
    await silent_talk.hang_up(live_server)
    # The page hangs up the dropped session too, which the server may have ended already.
    silent_talk.assert_no_errors(allowing="404")


async def test_browser_talk_reconnect_failure(
    live_server: LiveServer, silent_talk: TalkPage
) -> None:
    page = silent_talk.page
    await silent_talk.start_listening()
    await silent_talk.refuse_sessions(503, "at_capacity")
    first = await page.evaluate("voiceRelay.client.sessionId")
    await live_server.registry.close(first, "backend_error")

    await expect(page.get_by_role("alert")).to_have_text(
        "The connection was lost and could not be restored. Press Start to try again."
    )
    await expect(page.get_by_role("status")).to_have_text("Conversation ended")
    assert (await page.evaluate("window.stateLog"))[-2:] == ["reconnecting", "ended"]
    await silent_talk.assert_microphone_released()
    silent_talk.assert_no_errors(allowing="503")


async def test_browser_talk_interrupt(speaking_talk: TalkPage) -> None:
    page = speaking_talk.page
    await speaking_talk.start()
    await page.wait_for_function(
        "() => voiceRelay.state === 'assistant_speaking'", timeout=TURN_TIMEOUT_MS
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
    speaking_talk.assert_no_errors()


async def test_browser_talk_language(live_server: LiveServer) -> None:
    async with open_talk(live_server.url, locale="zh-CN") as talk:
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
        talk.assert_no_errors()
