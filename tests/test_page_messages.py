"""The page's code → words mapping (static/messages.js, static/i18n.js) under Node's test runner.

The cases are in tests/js/messages.test.mjs; this runs them as part of the suite when Node can
load the page's ES modules as they are (module syntax detection, Node 20.19 and later).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CASES = Path(__file__).resolve().parent / "js" / "messages.test.mjs"
MIN_NODE = (20, 19)


def node_version(node: str) -> tuple[int, ...]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(part) for part in out.strip().lstrip("v").split(".")[:2])


def test_page_messages_under_node() -> None:
    node = shutil.which("node")
    if node is None or node_version(node) < MIN_NODE:
        pytest.skip(f"needs Node {'.'.join(map(str, MIN_NODE))} or later")
    result = subprocess.run(
        [node, "--test", str(CASES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout
