"""Tampered copies of installed model packages, for the tests that loading refuses them."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path


def tampered_package(root: Path, package: str, path: str) -> None:
    """A copy of `package` under `root` whose `path` has one byte changed."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    source = Path(next(iter(spec.submodule_search_locations)))
    target = root / package
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    with (target / path).open("r+b") as file:
        file.seek(1000)
        byte = file.read(1)
        file.seek(1000)
        file.write(bytes([byte[0] ^ 0xFF]))
