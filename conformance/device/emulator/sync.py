"""The ``sync:`` service of the loopback device: stat, list, push (SEND) and pull (RECV).

Device paths under ``/data/local/tmp`` map onto a sandbox folder; anything else, or anything
that escapes it through ``..`` or a symlink, is refused.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import struct
from pathlib import Path

from conformance.device.emulator.adbwire import Stream

DEVICE_ROOT = "/data/local/tmp"
REQUEST = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4s3I")
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
DENT_V1 = struct.Struct("<4s4I")
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")
MAX_PATH = 1024
CHUNK = 65536


class Sandbox:
    """Maps device paths under ``/data/local/tmp`` onto a host folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def host_path(self, device_path: str) -> Path:
        """The host path for ``device_path``; PermissionError when it is outside the sandbox."""
        norm = posixpath.normpath(device_path or "/")
        if norm != DEVICE_ROOT and not norm.startswith(DEVICE_ROOT + "/"):
            raise PermissionError(f"{device_path}: outside {DEVICE_ROOT}")
        host = self.root / norm[len(DEVICE_ROOT):].lstrip("/")
        # Resolve symlinks too: a link inside the sandbox must not lead out of it.
        real = Path(os.path.realpath(host))
        if real != self.root and self.root not in real.parents:
            raise PermissionError(f"{device_path}: outside {DEVICE_ROOT}")
        return host


class _Reader:
    """Buffered exact reads over a stream: the client packs several requests in one WRTE."""

    def __init__(self, stream: Stream):
        self.stream, self.buf = stream, bytearray()

    def exact(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            chunk = self.stream.read()
            if not chunk:
                return None
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def serve_sync(stream: Stream, sandbox: Sandbox) -> None:
    """Answer sync requests until QUIT or the stream closes."""
    reader = _Reader(stream)
    while True:
        header = reader.exact(REQUEST.size)
        if header is None:
            return
        ident, length = REQUEST.unpack(header)
        if ident == b"QUIT":
            return
        if length > MAX_PATH:
            _fail(stream, f"path too long ({length} bytes)")
            return
        path = (reader.exact(length) or b"").decode("utf-8", "surrogateescape")
        handler = _HANDLERS.get(ident)
        if handler is None:
            _fail(stream, f"unknown sync request {ident!r}")
            return
        if handler(stream, reader, sandbox, path, ident) is False:
            return


def _fail(stream: Stream, message: str) -> None:
    data = message.encode()
    stream.write(REQUEST.pack(b"FAIL", len(data)) + data)


def _lookup(sandbox: Sandbox, path: str, follow: bool = True) -> tuple[os.stat_result | None, int]:
    try:
        host = sandbox.host_path(path)
        return (os.stat(host) if follow else os.lstat(host)), 0
    except PermissionError:
        return None, errno.EACCES
    except FileNotFoundError:
        return None, errno.ENOENT
    except OSError as exc:
        return None, exc.errno or errno.EIO


def _stat(stream, _reader, sandbox, path, ident):
    st, err = _lookup(sandbox, path, follow=ident != b"LST2")
    if ident == b"STAT":
        fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime)) if st else (0, 0, 0)
        stream.write(STAT_V1.pack(ident, *fields))
        return True
    if st is None:
        stream.write(STAT_V2.pack(ident, err, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    else:
        stream.write(STAT_V2.pack(ident, 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink,
                                  st.st_uid, st.st_gid, st.st_size, int(st.st_atime),
                                  int(st.st_mtime), int(st.st_ctime)))
    return True


def _list(stream, _reader, sandbox, path, ident):
    v2 = ident == b"LIS2"
    try:
        host = sandbox.host_path(path)
        entries = sorted(os.scandir(host), key=lambda e: e.name)
    except OSError:
        entries = []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        name = entry.name.encode("utf-8", "surrogateescape")
        if v2:
            head = DENT_V2.pack(b"DNT2", 0, st.st_dev, st.st_ino, st.st_mode, st.st_nlink,
                                st.st_uid, st.st_gid, st.st_size, int(st.st_atime),
                                int(st.st_mtime), int(st.st_ctime), len(name))
        else:
            head = DENT_V1.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF,
                                int(st.st_mtime), len(name))
        stream.write(head + name)
    stream.write(DENT_V2.pack(b"DONE", *[0] * 12) if v2 else DENT_V1.pack(b"DONE", 0, 0, 0, 0))
    return True


def _send(stream, reader, sandbox, spec, _ident):
    """Receive a file. Always read up to DONE before answering: the client sends it all first."""
    path, _, mode_text = spec.rpartition(",")
    error, out, host = None, None, None
    try:
        mode = int(mode_text)
        if stat.S_ISLNK(mode):
            raise PermissionError("symlinks are not supported")
        host = sandbox.host_path(path)
        host.parent.mkdir(parents=True, exist_ok=True)  # the fixed_push_mkdir feature
        out = open(host, "wb")
    except (ValueError, OSError) as exc:
        error = f"{path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
    try:
        mtime = _receive_chunks(reader, out)
    finally:
        if out is not None:
            out.close()
    if mtime is None:
        return False
    if error is None and host is not None:
        os.chmod(host, stat.S_IMODE(mode) or 0o644)
        os.utime(host, (mtime, mtime))
        stream.write(REQUEST.pack(b"OKAY", 0))
    else:
        _fail(stream, error or "push failed")
    return True


def _receive_chunks(reader: _Reader, out) -> int | None:
    """Copy DATA chunks to ``out`` (None: discard); the mtime from DONE, None on a broken stream."""
    while True:
        header = reader.exact(REQUEST.size)
        if header is None:
            return None
        ident, length = REQUEST.unpack(header)
        if ident == b"DONE":
            return length
        if ident != b"DATA" or length > CHUNK:
            return None
        data = reader.exact(length)
        if data is None:
            return None
        if out is not None:
            out.write(data)


def _recv(stream, _reader, sandbox, path, _ident):
    try:
        with open(sandbox.host_path(path), "rb") as src:
            while chunk := src.read(CHUNK):
                if not stream.write(REQUEST.pack(b"DATA", len(chunk)) + chunk):
                    return False
    except OSError as exc:
        _fail(stream, f"{path}: {exc.strerror or exc}")
        return True
    stream.write(REQUEST.pack(b"DONE", 0))
    return True


_HANDLERS = {b"STAT": _stat, b"STA2": _stat, b"LST2": _stat, b"LIST": _list, b"LIS2": _list,
             b"SEND": _send, b"RECV": _recv}
