"""The wheel is a working install, not only the editable checkout.

- it holds the four packages (with py.typed), the page's static files and templates, and nothing
  of tests/ or benchmarks/;
- installed into a fresh venv outside the tree, `voice-relay serve` started from another folder
  serves `/`, a static file, `/widget.js` and a built-in link's page.

Nothing is downloaded (the tests run without a network): the wheel is built with the backend this
venv has, and the fresh venv borrows this venv's dependencies through a .pth line while it
imports voice-relay from its own site-packages.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from benchmarks.fleet import Server, free_port, stop, wait_listening
from web.links import BUILT_IN_LINKS

from .conftest import LOOPBACK

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "relay", "localmodel", "web")


def run(*cmd: str | Path, cwd: Path) -> str:
    return subprocess.run(
        [str(part) for part in cmd], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def site_packages(python: Path, cwd: Path) -> Path:
    return Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=cwd).strip()
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
        "--no-build-isolation", "-w", dist, ROOT, cwd=dist)  # fmt: skip
    (built,) = dist.glob("voice_relay-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its python."""
    root = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", root, cwd=root)
    python = root / "bin" / "python"
    # Installed before the .pth exists, so this pip never sees the editable install.
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel, cwd=root)  # fmt: skip
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages(python, root) / "_voice_relay_test_deps.pth").write_text(
        "\n".join(sorted(ours)) + "\n"
    )
    return python


def test_wheel_holds_the_packages_and_the_page(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {*PACKAGES, f"{wheel.name.split('-py3')[0]}.dist-info"}
    for package in PACKAGES:
        assert f"{package}/py.typed" in names
        assert f"{package}/__init__.py" in names
    for asset in ("static", "templates"):
        shipped = {n.removeprefix(f"web/{asset}/") for n in names if n.startswith(f"web/{asset}/")}
        assert shipped == {p.name for p in (ROOT / asset).iterdir() if p.is_file()}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_install_imports_from_its_own_site_packages(venv: Path, tmp_path: Path) -> None:
    script = (
        "import json, localmodel, protocol, relay, web, web.templating as t;"
        "print(json.dumps([m.__file__ for m in (localmodel, protocol, relay, web)]"
        " + [str(t.STATIC_DIR), str(t.TEMPLATES_DIR)]))"
    )
    paths = json.loads(run(venv, "-c", script, cwd=tmp_path))
    site = site_packages(venv, tmp_path)
    for path in paths:
        assert Path(path).is_relative_to(site), path
        assert not Path(path).is_relative_to(ROOT), path
    assert paths[-2:] == [str(site / "web" / "static"), str(site / "web" / "templates")]


@asynccontextmanager
async def serving(venv: Path, workdir: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_RELAY_")}
    env.pop("PYTHONPATH", None)
    env.update(
        VOICE_RELAY_BACKEND="local",
        VOICE_RELAY_MODEL="echo",
        VOICE_RELAY_HOST=LOOPBACK,
        VOICE_RELAY_PORT=str(port),
        VOICE_RELAY_ICE_ADDRESSES=LOOPBACK,
        VOICE_RELAY_DATA_DIR=str(workdir / "data"),
        VOICE_RELAY_LOG_LEVEL="warning",
    )
    process = await asyncio.create_subprocess_exec(
        venv.parent / "voice-relay", "serve", cwd=workdir, env=env
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        await wait_listening(Server("installed voice-relay", "relay", process, url), port)
        yield url
    finally:
        await stop(process)


async def test_installed_server_serves_the_page_static_files_widget_and_links(
    venv: Path, tmp_path: Path
) -> None:
    public = next(link for link in BUILT_IN_LINKS if not link.private)
    async with serving(venv, tmp_path) as url, httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/")
        css = await http.get("/static/talk.css")
        widget = await http.get("/widget.js")
        link = await http.get(f"/d/{public.slug}")
    assert page.status_code == 200 and "/static/" in page.text
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert widget.status_code == 200 and "javascript" in widget.headers["content-type"]
    assert link.status_code == 200 and public.title in link.text
