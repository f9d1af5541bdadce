"""Exported and converted artifacts kept on disk between runs (``~/.cache/conformance/artifacts``).

An export costs 20 ms (TorchScript) to 0.5 s (dynamo), an ExecuTorch program 9-17 s, a LiteRT
conversion 3-5 s per shape; a run's in-memory cache pays them once per run, this one once per
machine. An entry's key is the digest of everything that changes its bytes: the module itself
(its classes' source files, its attributes, every tensor of its state), the example shapes and
symbolic dimensions, the exporter and opset or the runtime's deployment settings, and the torch,
onnx and converter versions; for an int8 model also its calibration arrays, scheme and the
quantizing code. An artifact whose inputs changed is a new key, never a stale hit. What a build
learns beside the bytes (a quantized module's scales, where a delegate placed each op) is stored
in the same entry, and a verdict that its key determines (whether an exporter honours an opset)
is an entry too: a warm run makes nothing again.

Safe to share between pytest-xdist workers and concurrent runs on one host: an entry is written
to a temporary file and renamed into place (a reader sees the whole entry or none), and carries
the SHA-256 of its payload, checked on every read: a corrupted entry is deleted and rebuilt,
never used. Reading an entry refreshes its time; past the size cap the least recently used
entries go. Failed builds are never stored.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Callable

#: Each entry starts with this, then the payload's SHA-256, then the payload.
MAGIC = b"CONFART1"
DEFAULT_MAX_BYTES = 2 << 30
_SUFFIX = ".art"


def default_root() -> Path:
    """``$XDG_CACHE_HOME/conformance/artifacts``, else ``~/.cache/conformance/artifacts``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "conformance" / "artifacts"


class ArtifactCache:
    """A folder of artifacts by key (see the module docstring); counts what it did."""

    def __init__(self, root: Path | str | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root) if root else default_root()
        self.max_bytes = max_bytes
        self.hits = self.misses = self.stored = self.corrupt = self.evicted = 0

    @staticmethod
    def key(*parts) -> str:
        """The digest of ``parts`` (anything JSON can write, or its ``str``)."""
        text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}{_SUFFIX}"

    def read(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None (absent, or corrupted: then deleted)."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        head, digest, payload = blob[:len(MAGIC)], blob[len(MAGIC):len(MAGIC) + 32], blob[len(MAGIC) + 32:]
        if head != MAGIC or hashlib.sha256(payload).digest() != digest:
            self.corrupt += 1
            self.misses += 1
            _unlink(path)
            return None
        self.hits += 1
        try:
            os.utime(path)  # least recently *used*: a read counts
        except OSError:
            pass
        return payload

    def write(self, key: str, payload: bytes) -> None:
        """Store ``payload`` atomically (temporary file + rename), then keep under the cap."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=_SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, self.path(key))
        except OSError:  # a full or read-only disk costs the saving, never the run
            return
        self.stored += 1
        self.evict()

    def get(self, key: str, build: Callable[[], bytes]) -> bytes:
        """The payload under ``key``; built (and stored) when absent or corrupted."""
        payload = self.read(key)
        if payload is None:
            payload = build()
            self.write(key, payload)
        return payload

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every entry, oldest first."""
        found = []
        try:
            with os.scandir(self.root) as it:
                for entry in it:
                    if entry.name.endswith(_SUFFIX) and not entry.name.startswith("."):
                        try:
                            stat = entry.stat()
                        except OSError:
                            continue  # evicted by another process meanwhile
                        found.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        except OSError:
            return []
        return sorted(found)

    def size(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self) -> None:
        """Delete the least recently used entries until the cache is under its cap."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            _unlink(path)
            total -= size
            self.evicted += 1

    def summary(self) -> str:
        return (f"artifact cache {self.root}: {self.hits} reused, {self.stored} stored, {self.corrupt} corrupted "
                f"(rebuilt), {self.evicted} evicted; {self.size() / 2**20:.1f} MiB of {self.max_bytes / 2**20:.0f}")


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


# The run's cache --------------------------------------------------------------------------

_ACTIVE: ArtifactCache | None = None


def configure(root: Path | str | None = None, *, enabled: bool = True,
              max_bytes: int = DEFAULT_MAX_BYTES) -> ArtifactCache | None:
    """Set the cache this process uses (None: off); the pytest plugin calls it per run."""
    global _ACTIVE
    _ACTIVE = ArtifactCache(root, max_bytes=max_bytes) if enabled else None
    return _ACTIVE


def restore(cache: ArtifactCache | None) -> None:
    """Set the cache back to one ``active`` returned earlier."""
    global _ACTIVE
    _ACTIVE = cache


def active() -> ArtifactCache | None:
    """The cache set by ``configure``; None where none is (library use, ``--no-cache``)."""
    return _ACTIVE


# Keys ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _plain(value) -> bool:
    return isinstance(value, (int, float, str, bool, type(None))) or (
        isinstance(value, tuple) and all(_plain(v) for v in value))


def module_fingerprint(module) -> str:
    """The digest of a torch module: what it prints, the source files of its classes outside
    torch (a changed ``forward`` is a new key), their plain attributes, and every tensor of its
    state (names, dtypes, shapes, values)."""
    digest = hashlib.sha256(repr(module).encode())
    for sub in module.modules():
        cls = type(sub)
        if not cls.__module__.startswith("torch."):
            try:
                digest.update(_file_digest(inspect.getsourcefile(cls) or "").encode())
            except TypeError:  # defined where no source file is (a REPL)
                digest.update(cls.__qualname__.encode())
            attrs = sorted((k, repr(v)) for k, v in vars(sub).items() if not k.startswith("_") and _plain(v))
            digest.update(repr(attrs).encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        try:
            digest.update(t.numpy().tobytes())
        except TypeError:  # bfloat16 has no numpy type; float32 holds it exactly
            digest.update(t.float().numpy().tobytes())
    return digest.hexdigest()


def source_digest(*modules) -> list[str]:
    """The digests of ``modules``' source files: a recipe's own code (how a model is quantized,
    how an exporter is probed) belongs in the key of what it makes."""
    return [_file_digest(inspect.getsourcefile(m) or "") for m in modules]


def array_digest(arrays) -> str:
    """The digest of numpy arrays (dtype, shape, values): calibration data in a key."""
    import numpy as np

    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype}|{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (``absent`` for one that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


# The artifacts the suite makes ---------------------------------------------------------------

def onnx_export(module, args, target, *, dynamic):
    """``conformance.formats.onnx_export.export`` through the cache (see the module docstring)."""
    import onnx

    from conformance.formats.onnx_export import export

    cache = active()
    if cache is None:
        return export(module, args, target, dynamic=dynamic)
    key = cache.key("onnx", target.exporter, target.opset, [list(a.shape) for a in args],
                    [list(d) for d in dynamic], module_fingerprint(module.eval()),
                    versions("torch", "onnx", "onnxscript"))
    payload = cache.read(key)
    if payload is not None:
        return onnx.load_from_string(payload)
    model = export(module, args, target, dynamic=dynamic)
    cache.write(key, model.SerializeToString())
    return model


def program_export(backend, module, args, dynamic) -> bytes:
    """A program runtime's ``export`` through the cache, where the runtime names everything
    that changes its bytes (``artifact_settings``); a plug-in that does not is not cached.

    A runtime that learns something while exporting which the program's bytes do not say (where
    ExecuTorch's delegate placed each op) gives it as ``artifact_notes(artifact) -> bytes`` and
    takes it back as ``take_artifact_notes(artifact, notes)``: program and notes are one entry,
    written and evicted together (two entries came apart once: a cached program without its notes).
    """
    settings = getattr(backend, "artifact_settings", lambda: None)()
    cache = active()
    if cache is None or settings is None:
        return backend.export(module, args, dynamic)
    return _program_entry(cache, backend, ("program", backend.format, settings, [list(a.shape) for a in args],
                          None if dynamic is None else [list(d) for d in dynamic], module_fingerprint(module.eval()),
                          versions("torch")), lambda: backend.export(module, args, dynamic))


def cached_program(backend, parts: tuple, build: Callable[[], bytes]) -> bytes:
    """A program ``build`` makes on ``backend`` (a quantized module lowered), keyed by ``parts``
    (what decides the module) and the runtime's ``artifact_settings``; not cached for a runtime
    that names no settings."""
    settings = getattr(backend, "artifact_settings", lambda: None)()
    cache = active()
    if cache is None or settings is None:
        return build()
    return _program_entry(cache, backend, ("program", backend.format, settings, *parts), build)


def _program_entry(cache: ArtifactCache, backend, parts: tuple, build: Callable[[], bytes]) -> bytes:
    noted = hasattr(backend, "artifact_notes") and hasattr(backend, "take_artifact_notes")
    key = cache.key(*parts, "with notes" if noted else "")
    if not noted:
        return cache.get(key, build)
    payload = cache.read(key)
    if payload is not None:
        parts = unpack(payload)
        backend.take_artifact_notes(parts["artifact"], parts["notes"])
        return parts["artifact"]
    artifact = build()
    cache.write(key, pack({"artifact": artifact, "notes": backend.artifact_notes(artifact)}))
    return artifact


def cached_onnx(parts: tuple, build: Callable[[], tuple]) -> tuple:
    """``(model, notes)`` made by ``build`` (an ONNX model, or None where there is none to make,
    and JSON-able facts learnt on the way that the model's bytes do not say: the scales a
    quantized module reports), one entry keyed by ``parts``. Notes come back as JSON gives them
    (lists, dicts) whether read or built, so a run reads the same either way."""
    import onnx

    cache = active()
    if cache is None:
        model, notes = build()
        return model, json.loads(json.dumps(notes))
    key = cache.key("onnx+notes", *parts)
    payload = cache.read(key)
    if payload is None:
        model, notes = build()
        payload = pack({"model": b"" if model is None else model.SerializeToString(),
                        "notes": json.dumps(notes).encode()})
        cache.write(key, payload)
    files = unpack(payload)
    return (onnx.load_from_string(files["model"]) if files["model"] else None), json.loads(files["notes"])


def cached_verdict(parts: tuple, probe: Callable[[], str | None]) -> str | None:
    """``probe()``'s verdict (None: supported, else the reason), kept under ``parts``, which must
    determine it (the exporter, opset, versions and the probing code)."""
    cache = active()
    if cache is None:
        return probe()
    key = cache.key("verdict", *parts)
    payload = cache.read(key)
    if payload is not None:
        return json.loads(payload)["unsupported"]
    verdict = probe()
    cache.write(key, json.dumps({"unsupported": verdict}).encode())
    return verdict


# Several files as one payload (a converter that writes a .param and a .bin) ------------------

def pack(files: dict[str, bytes]) -> bytes:
    """``name -> bytes`` as one payload."""
    out = [struct.pack("<I", len(files))]
    for name, data in files.items():
        raw = name.encode()
        out += [struct.pack("<IQ", len(raw), len(data)), raw, data]
    return b"".join(out)


def unpack(payload: bytes) -> dict[str, bytes]:
    """The inverse of ``pack``."""
    (count,), pos, files = struct.unpack_from("<I", payload), 4, {}
    for _ in range(count):
        n, size = struct.unpack_from("<IQ", payload, pos)
        pos += 12
        name = payload[pos:pos + n].decode()
        files[name] = payload[pos + n:pos + n + size]
        pos += n + size
    return files


def cached_files(runtime: str, settings: dict, source: bytes, produce: Callable[[], dict[str, str]],
                 folder: Callable[[], str]) -> dict[str, str]:
    """A converter's output files (``role -> path``) for ``source`` bytes, from the cache when
    there: written into a fresh ``folder()``; else ``produce()`` runs and its files are stored."""
    cache = active()
    if cache is None:
        return produce()
    key = cache.key("files", runtime, settings, hashlib.sha256(source).hexdigest())
    payload = cache.read(key)
    if payload is not None:
        target = folder()
        paths = {}
        for role, data in unpack(payload).items():
            paths[role] = os.path.join(target, role)
            with open(paths[role], "wb") as f:
                f.write(data)
        return paths
    paths = produce()
    cache.write(key, pack({role: Path(p).read_bytes() for role, p in paths.items()}))
    return paths
