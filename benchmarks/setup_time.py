"""Call setup time across the test network of tests/netns.py: direct UDP vs TURN/TCP vs TURN/TLS.

    sudo .venv/bin/python -m benchmarks.setup_time            # 5 calls per case
    sudo .venv/bin/python -m benchmarks.setup_time --calls 9 --out results.json

Root only (network namespaces). Chromium in the client namespace calls `voice-relay serve` (the
local `loopback` model, which returns each chunk at once) in the server namespace; for the TURN
cases the client's outbound UDP is dropped and coturn relays. The page's own timeline
(rtc-client.js `timeline`) gives start -> offer (ICE gathering), offer -> answer, and
offer -> connected; the first inbound audio with energy (getStats, polled every 10 ms) gives
offer -> first audio. Prints medians per case; docs/performance.md has a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

from playwright.async_api import Browser

from tests import netns
from tests.browser import talk_page
from tests.network_peers import chromium_in, relay_server
from tests.speech import tone, write_wav

SECRET = "bench-turn-secret"
# case: (client UDP blocked, TURN transports the server hands out)
CASES = {
    "direct (UDP)": (False, ()),
    "TURN/TCP, UDP blocked": (True, ("tcp",)),
    "TURN/TLS, UDP blocked": (True, ("tls",)),
    "TURN udp+tcp+tls, UDP blocked": (True, ("udp", "tcp", "tls")),
}
STEPS = ("gather", "answer", "connected", "first_audio")
# Start a call, then wait for its first inbound audio with energy; the page's timeline in ms.
MEASURE = """async () => {
  const ui = window.voiceRelay;
  ui.start();
  const deadline = performance.now() + 30000;
  for (;;) {
    const pc = ui.client?.pc;
    if (pc) {
      for (const r of (await pc.getStats()).values()) {
        if (r.type === "inbound-rtp" && r.kind === "audio" && (r.totalAudioEnergy ?? 0) > 0) {
          const t = ui.client.timeline;
          const audio = performance.now();
          return { gather: t.offer - t.start, answer: t.answer - t.offer,
                   connected: t.connected - t.offer, first_audio: audio - t.offer };
        }
      }
    }
    if (performance.now() > deadline) throw new Error(`no audio; state ${ui.state}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}"""


async def measure_case(browser: Browser, url: str, calls: int) -> list[dict[str, float]]:
    samples = []
    for _ in range(calls):
        async with talk_page(browser, url, locale="en-US") as talk:
            samples.append(await talk.page.evaluate(MEASURE))
            await talk.page.evaluate("voiceRelay.stop()")
    return samples


async def run(calls: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with netns.network() as net, tempfile.TemporaryDirectory(prefix="setup-time-") as tmp:
        workdir = Path(tmp)
        turn = netns.start_coturn(net, workdir, SECRET)
        audio = write_wav(workdir / "tone.wav", tone(20_000))
        for case, (blocked, transports) in CASES.items():
            settings = {"MODEL": "loopback"}
            if transports:
                urls = ",".join(turn.url(transport) for transport in transports)
                settings.update(TURN_SECRET=SECRET, TURN_URLS=urls)
            if blocked:
                net.block_udp("client")
            try:
                with relay_server(net, workdir, settings) as url:
                    async with chromium_in(net, "client", workdir, audio, turn.cert) as browser:
                        samples = await measure_case(browser, url, calls)
            finally:
                net.unblock_udp("client")
            results[case] = {step: statistics.median(s[step] for s in samples) for step in STEPS}
            steps = ", ".join(f"{k} {v:.0f} ms" for k, v in results[case].items())
            print(f"{case}: {steps}", flush=True)  # noqa: T201
    return results


def table(results: dict[str, dict[str, float]], calls: int) -> str:
    head = "start→offer | offer→answer | offer→connected | offer→first audio"
    lines = [f"| case (median of {calls}) | {head} |", "|---|---|---|---|---|"]
    for case, r in results.items():
        lines.append(f"| {case} | " + " | ".join(f"{r[step]:.0f} ms" for step in STEPS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5, help="calls per case (default 5)")
    parser.add_argument("--out", type=Path, help="also write the medians as JSON here")
    args = parser.parse_args()
    reason = netns.missing()
    if reason:
        sys.exit(f"setup_time: {reason}")
    results = asyncio.run(run(args.calls))
    print(table(results, args.calls))  # noqa: T201
    if args.out:
        args.out.write_text(json.dumps({"calls": args.calls, "medians_ms": results}, indent=2))


if __name__ == "__main__":
    main()
