"""relay.upstream: the private parts of aiortc and aioice the relay reaches, and their versions.

- other versions than the supported series fail loudly, naming them and the pin to change;
- pyproject.toml pins the series relay/upstream.py supports;
- the installed aiortc and aioice still have each private, used as relay/upstream.py expects.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import aioice.ice
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import pytest

from relay import upstream

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def test_other_versions_fail_loudly_with_what_to_do() -> None:
    upstream.check_versions({"aiortc": "1.16.3", "aioice": "0.13.0"}.__getitem__)
    with pytest.raises(ImportError) as error:
        upstream.check_versions({"aiortc": "1.17.0", "aioice": "0.13.0"}.__getitem__)
    message = str(error.value)
    assert "aiortc 1.16.x, aioice 0.13.x" in message and "aiortc 1.17.0 is installed" in message
    assert "pyproject.toml" in message
    with pytest.raises(ImportError, match="aioice 0.130 is installed"):
        upstream.check_versions({"aiortc": "1.16.0", "aioice": "0.130"}.__getitem__)


def test_pyproject_pins_the_supported_series() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0]: d for d in project["dependencies"]}
    for package, series in upstream.SUPPORTED_SERIES.items():
        major, minor = (int(n) for n in series.split("."))
        assert pins.get(package) == f"{package}>={series},<{major}.{minor + 1}", (
            f"pyproject.toml must pin {package} to {series}.x, as relay/upstream.py supports"
        )


def test_aiortcs_receiver_still_has_the_jitter_buffer_seam() -> None:
    source = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver)
    assert upstream.JITTER_BUFFER_ATTRIBUTE.endswith("__jitter_buffer")
    assert "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)" in source
    # A frame the jitter buffer does not return never reaches the decoder thread.
    assert "if encoded_frame is not None and self.__decoder_thread:" in source
    assert "self.__codecs[codec.payloadType] = codec" in source  # filled in place by receive()
    assert "packet._data = depayload(codec, packet.payload)" in source  # before the buffer
    worker = inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker)
    assert "input_q.get()" in worker and "output_q.put(None)" in worker  # ends the track


def test_aiortc_gathers_in_set_local_description_through_aioices_lookup() -> None:
    pc_source = inspect.getsource(aiortc.rtcpeerconnection.RTCPeerConnection.setLocalDescription)
    assert "await self.__gather()" in pc_source
    gather = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "addresses = get_host_addresses(" in gather
    assert aioice.ice.get_host_addresses is upstream._get_host_addresses
