"""`voice-relay links ...` against the same store the server reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from web.cli import main

pytestmark = pytest.mark.unit


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["links", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_links_cli_create_list_show_update_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOICE_RELAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VOICE_RELAY_PUBLIC_URL", "https://talk.example.org")
    code, out, _ = run(
        capsys,
        "create",
        "promo",
        "--title",
        "Spring promo",
        "--instructions",
        "You are Mia.",
        "--origin",
        "https://shop.example.org",
        "--expires-in",
        "7d",
        "--private",
    )
    assert code == 0
    assert "https://talk.example.org/d/promo?token=v2." in out
    assert 'data-link="promo" data-token="v2.' in out
    code, out, _ = run(capsys, "list")
    assert code == 0 and "promo" in out and "private" in out
    assert "concierge" in out  # the built-in links are there on a fresh install
    code, out, _ = run(capsys, "update", "promo", "--max-concurrent", "3", "--json")
    link = json.loads(out)["link"]
    assert link["limits"]["max_concurrent"] == 3
    assert link["persona"]["instructions"] == "You are Mia."
    assert link["allowed_origins"] == ["https://shop.example.org"]
    code, out, _ = run(capsys, "revoke", "promo")
    assert code == 0 and "revoked" in out
    code, _, err = run(capsys, "show", "nope")
    assert code == 1 and "no demo link named 'nope'" in err
    code, _, err = run(capsys, "create", "promo", "--title", "again")
    assert code == 1 and "already exists" in err
    code, _, err = run(capsys, "create", "Bad Slug", "--title", "x")
    assert code == 1 and "slug" in err


def test_links_cli_refuses_a_token_lifetime_it_cannot_sign(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["links", "show", "concierge", "--token-ttl", "0s"])
    assert exited.value.code == 2
    assert "a token lives from 1s" in capsys.readouterr().err
