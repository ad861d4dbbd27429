"""Calls across a test network of namespaces (tests/netns.py): hostile client networks, TURN, a
server behind a cloud NAT. Real Chromium, real coturn, real `voice-relay serve`.

Pins down:
- a client whose outbound UDP is dropped by nftables talks to `echo` through TURN/TCP and
  TURN/TLS (coturn with a self-signed certificate Chromium trusts): the echo's audio arrives, the
  selected pair is a relay with `relayProtocol` tcp/tls (shown in the connection details too),
  and the firewall's drop counter proves UDP was tried;
- "check my connection" from that client reports direct UDP and TURN/UDP blocked and the call
  going through TURN over TCP or TLS, with a round trip;
- the same client with no TURN gets the page's plain words (in English and Chinese) within the
  ICE time limit, and its session slot is free at once (one slot; the server's own connect
  timeout is set far beyond the test);
- a server behind a 1:1 NAT that forwards TCP 8080 and UDP 40000-40099 is reachable for calls
  only with VOICE_RELAY_UDP_PORTS and VOICE_RELAY_PUBLIC_IP both set;
- coturn accepts the credentials GET /api/ice-servers mints and refuses expired ones or ones
  signed with another secret;
- the wheel installed by deploy/install.sh (the Dockerfile's install) into a fresh venv serves
  the page and carries a call through TURN/TCP from the UDP-blocked client.
"""

from __future__ import annotations

import asyncio
import re
import sys
import sysconfig
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint
from playwright.async_api import expect

from . import netns
from .browser import TalkPage, artifact, inbound_audio, poll_until, talk_page
from .network_peers import chromium_in, relay_server
from .speech import speech_wav
from .test_wheel import ROOT, run, site_packages, wheel  # noqa: F401 - `wheel` is a fixture

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(netns.missing() is not None, reason=str(netns.missing())),
]

SECRET = "test-turn-secret"
UTTERANCE = "Hello there, can you hear me through the relay?"
BLOCKED_EN = "Your network blocks voice calls"
BLOCKED_ZH = "你的网络阻止了语音通话"
# The page's ICE time limit (rtc-client.js) and room for a loaded machine.
BLOCKED_WITHIN_MS = 15_000 + 8_000
NAT_PORTS = f"{netns.NAT_UDP_PORTS[0]}-{netns.NAT_UDP_PORTS[1]}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("connectivity")


@pytest.fixture(scope="module")
def net() -> Iterator[netns.Network]:
    with netns.network() as network:
        yield network


@pytest.fixture(scope="module")
def turn(net: netns.Network, workdir: Path) -> netns.Turn:
    return netns.start_coturn(net, workdir, SECRET)


@pytest.fixture(scope="module")
def speech(workdir: Path) -> Path:
    return speech_wav(workdir / "speech.wav", UTTERANCE)


@pytest.fixture
def udp_blocked(net: netns.Network) -> Iterator[None]:
    net.block_udp("client")
    yield
    net.unblock_udp("client")


@asynccontextmanager
async def client_page(
    net: netns.Network, workdir: Path, speech: Path, url: str, turn: netns.Turn | None = None
) -> AsyncIterator[TalkPage]:
    cert = turn.cert if turn else None
    async with (
        chromium_in(net, "client", workdir, speech, trusted_cert=cert) as browser,
        talk_page(browser, url, locale="en-US") as talk,
    ):
        yield talk


async def assert_echo_arrives(talk: TalkPage) -> None:
    await talk.wait_for_state("listening")
    first = await inbound_audio(talk.page)
    await poll_until(
        lambda: inbound_audio(talk.page),
        lambda now: now["energy"] > first["energy"] + 0.001,
        timeout_s=40,
    )
    assistant = talk.page.locator(".msg--assistant").first
    await expect(assistant.locator(".msg__text")).to_have_text("(echo)", timeout=40_000)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_udp_blocked_client_talks_through_turn(
    net: netns.Network, turn: netns.Turn, workdir: Path, speech: Path, udp_blocked: None,
    transport: str,
) -> None:  # fmt: skip
    settings = {"TURN_SECRET": SECRET, "TURN_URLS": turn.url(transport)}
    with relay_server(net, workdir, settings) as url:
        async with client_page(net, workdir, speech, url, turn) as talk:
            await talk.start()
            await assert_echo_arrives(talk)
            pair = await talk.page.evaluate("voiceRelay.connectionInfo()")
            assert pair["local"]["type"] == "relay", pair
            assert pair["local"]["relayProtocol"] == transport, pair
            assert pair["remote"]["address"] == netns.ADDRESS["relay"], pair
            details = talk.page.locator("details.debug")
            await details.locator("summary").click()
            await expect(details).to_contain_text(f"relayProtocol {transport}")
            await expect(details.locator("dl")).to_have_attribute("data-path", f"turn-{transport}")
            await talk.page.screenshot(path=artifact(f"connection-{transport}.png"), full_page=True)
            talk.assert_no_errors()
    assert net.dropped_udp("client") > 0


@pytest.mark.timeout(180)
async def test_connection_check_reports_the_paths_through_a_udp_block(
    net: netns.Network, turn: netns.Turn, workdir: Path, speech: Path, udp_blocked: None
) -> None:
    urls = ",".join(turn.url(transport) for transport in ("udp", "tcp", "tls"))
    with relay_server(net, workdir, {"TURN_SECRET": SECRET, "TURN_URLS": urls}) as url:
        async with client_page(net, workdir, speech, url, turn) as talk:
            await talk.page.get_by_role("button", name="Check my connection").click()
            summary = talk.page.locator(".check__summary")
            await expect(summary).to_have_attribute("data-result", "ok", timeout=30_000)
            words = r"^Calls work from this network, through TURN relay over T(CP|LS); round trip "
            await expect(summary).to_have_text(re.compile(words + r"\d+ ms\.$"))
            result = await talk.page.evaluate("voiceRelay.network.lastCheck")
            paths = result["paths"]
            assert paths["direct-udp"] == "blocked", result
            assert paths["turn-udp"] == "blocked", result
            assert result["selected"]["path"] in ("turn-tcp", "turn-tls"), result
            assert {paths["turn-tcp"], paths["turn-tls"]} <= {"selected", "works", "reachable"}
            assert result["rttMs"] is not None and result["rttMs"] >= 0
            row = talk.page.locator(".check__row[data-path='direct-udp'] dd")
            await expect(row).to_have_text("blocked")
            await talk.page.screenshot(path=artifact("connection-check.png"), full_page=True)
            talk.assert_no_errors()
    assert net.dropped_udp("client") > 0


@pytest.mark.timeout(180)
async def test_udp_blocked_client_without_turn_is_told_and_frees_its_slot(
    net: netns.Network, workdir: Path, speech: Path, udp_blocked: None
) -> None:
    settings = {"MAX_SESSIONS": "1", "CONNECT_TIMEOUT_S": "600"}
    with relay_server(net, workdir, settings) as url:
        async with client_page(net, workdir, speech, url) as talk:
            alert = talk.page.get_by_role("alert")
            await talk.start()
            await expect(alert).to_contain_text(BLOCKED_EN, timeout=BLOCKED_WITHIN_MS)
            await expect(alert).to_contain_text("TURN")
            await talk.assert_microphone_released()
            await talk.page.select_option("#language", "zh")
            await expect(alert).to_contain_text(BLOCKED_ZH)
            await talk.page.select_option("#language", "en")
            assert net.dropped_udp("client") > 0
            # The only slot is free again: with UDP open the next call connects at once.
            net.unblock_udp("client")
            await talk.page.get_by_role("button", name="Start conversation").click()
            await talk.wait_for_state("listening", 20_000)
            talk.assert_no_errors()


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("settings", "connects"),
    [
        ({}, False),
        ({"PUBLIC_IP": netns.ADDRESS["nat"]}, False),
        ({"PUBLIC_IP": netns.ADDRESS["nat"], "UDP_PORTS": NAT_PORTS}, True),
    ],
    ids=["nothing", "public-ip-only", "ports-and-public-ip"],
)
async def test_server_behind_cloud_nat_needs_port_range_and_public_address(
    net: netns.Network, workdir: Path, speech: Path, settings: dict[str, str], connects: bool
) -> None:
    public = netns.ADDRESS["nat"]
    with relay_server(net, workdir, settings, role="relaynat", public=public) as url:
        async with client_page(net, workdir, speech, url) as talk:
            await talk.start()
            if not connects:
                alert = talk.page.get_by_role("alert")
                await expect(alert).to_contain_text(BLOCKED_EN, timeout=BLOCKED_WITHIN_MS)
                return
            await assert_echo_arrives(talk)
            pair = await talk.page.evaluate("voiceRelay.connectionInfo()")
            assert pair["path"] == "direct-udp", pair
            assert pair["remote"]["address"] == public, pair
            assert netns.NAT_UDP_PORTS[0] <= pair["remote"]["port"] <= netns.NAT_UDP_PORTS[1]
            talk.assert_no_errors()


async def allocate(turn: netns.Turn, username: str, password: str) -> tuple[str, int]:
    """A TURN/TCP allocation with these credentials; the relayed address."""
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, (turn.address, 3478), username, password, transport="tcp"
    )
    try:
        address: tuple[str, int] = transport.get_extra_info("sockname")
        return address
    finally:
        transport.close()


def refused(turn: netns.Turn, username: str, password: str) -> int:
    """The STUN error code coturn answers an Allocate with (0: it allocated)."""
    try:
        asyncio.run(allocate(turn, username, password))
    except TransactionFailed as error:
        return int(error.response.attributes["ERROR-CODE"][0])
    return 0


@pytest.mark.timeout(120)
async def test_turn_accepts_minted_credentials_and_refuses_expired_ones(
    net: netns.Network, turn: netns.Turn, workdir: Path
) -> None:
    settings = {"TURN_SECRET": SECRET, "TURN_URLS": turn.url("tcp"), "TURN_TTL_S": "120"}
    with relay_server(net, workdir, settings) as url:
        answer = await net.acall("client", lambda: httpx.get(f"{url}/api/ice-servers").json())
    (server,) = answer["iceServers"]
    assert server["urls"] == [turn.url("tcp")]
    expiry = int(server["username"].split(":")[0])
    assert abs(expiry - (time.time() + 120)) < 30 and answer["ttl"] == 120
    fresh = (server["username"], server["credential"])
    expired = netns.turn_credentials(SECRET, time.time() - 60)
    forged = netns.turn_credentials("another secret", time.time() + 600)
    codes = {
        name: await net.acall("client", lambda c=creds: refused(turn, *c))  # type: ignore[misc]
        for name, creds in (("fresh", fresh), ("expired", expired), ("forged", forged))
    }
    assert codes == {"fresh": 0, "expired": 401, "forged": 401}


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """deploy/install.sh's install of the wheel; its `voice-relay`. Offline: the venv borrows this
    venv's dependencies through a .pth made before the script runs (it checks `--help` last), and
    the script's system user is made in a private copy of /etc (the machine's stays untouched)."""
    root = tmp_path_factory.mktemp("install")
    prefix = root / "opt"
    run(sys.executable, "-m", "venv", prefix, cwd=root)
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages(prefix / "bin" / "python", root) / "_voice_relay_test_deps.pth").write_text(
        "\n".join(sorted(ours)) + "\n"
    )
    private_etc = 'mount --make-rprivate / && cp -a /etc "$1" && mount --bind "$1" /etc'
    script = f'{private_etc} && shift && exec "$@"'
    env = f"PREFIX={prefix} DATA_DIR={root / 'data'} EXTRAS= PYTHON={sys.executable}"
    pip_args = "PIP_ARGS=--no-deps --no-index --ignore-installed"  # never touches this venv
    run("unshare", "-m", "sh", "-c", script, "sh", root / "etc", "env", *env.split(), pip_args,
        "sh", ROOT / "deploy" / "install.sh", wheel, cwd=root)  # fmt: skip
    return prefix / "bin" / "voice-relay"


@pytest.mark.timeout(240)
async def test_installed_wheel_serves_the_page_and_a_call_through_turn(
    net: netns.Network, turn: netns.Turn, workdir: Path, speech: Path, udp_blocked: None,
    installed: Path,
) -> None:  # fmt: skip
    settings = {"TURN_SECRET": SECRET, "TURN_URLS": turn.url("tcp")}
    with relay_server(net, workdir, settings, executable=installed) as url:
        async with client_page(net, workdir, speech, url, turn) as talk:
            modules = await talk.page.evaluate(
                "[...document.querySelectorAll('link[rel=modulepreload]')].map((l) => l.href)"
            )
            assert any(m.endswith("/static/ice.js") for m in modules), modules
            await talk.start()
            await assert_echo_arrives(talk)
            pair = await talk.page.evaluate("voiceRelay.connectionInfo()")
            assert pair["local"]["relayProtocol"] == "tcp", pair
            talk.assert_no_errors()
