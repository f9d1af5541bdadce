"""The ADB transport, device side: messages, streams and one connection to an adb server.

See ``shared/notes/adb-protocol.md``. A connection runs one reader thread that decodes
messages and hands stream data to per-stream inboxes; every service runs in its own thread,
so a service that blocks on a write (waiting for the host's OKAY) never blocks the reader.
"""

from __future__ import annotations

import itertools
import queue
import socket
import struct
import threading
from typing import Callable

CNXN, AUTH, OPEN, OKAY, CLSE, WRTE = (
    0x4E584E43, 0x48545541, 0x4E45504F, 0x59414B4F, 0x45534C43, 0x45545257)
VERSION_SUMMED = 0x01000000  # data_check is the byte sum of the payload
VERSION_NO_SUM = 0x01000001  # data_check may be 0
MAX_PAYLOAD = 1024 * 1024
HEADER = struct.Struct("<6I")


class ProtocolError(Exception):
    """The peer sent something that is not an ADB message."""


def pack(command: int, arg0: int, arg1: int, data: bytes = b"", *, summed: bool = False) -> bytes:
    """One ADB message: the 24-byte header then the payload."""
    check = sum(data) & 0xFFFFFFFF if summed else 0
    return HEADER.pack(command, arg0, arg1, len(data), check, command ^ 0xFFFFFFFF) + data


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly ``n`` bytes, or raise EOFError when the peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed the connection")
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket) -> tuple[int, int, int, bytes]:
    """Read one message; returns (command, arg0, arg1, payload)."""
    command, arg0, arg1, length, _check, magic = HEADER.unpack(recv_exact(sock, HEADER.size))
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic for command 0x{command:08x}")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes exceeds {MAX_PAYLOAD}")
    return command, arg0, arg1, recv_exact(sock, length) if length else b""


class Stream:
    """One logical stream. ``read`` returns host data (b"" at close); ``write`` sends data.

    Flow control: at most one unacknowledged WRTE per direction. Host data is acknowledged
    when the service takes it (``read``), so a slow consumer pushes back on the host.
    """

    def __init__(self, conn: "Connection", local_id: int, remote_id: int):
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._acked = threading.Event()
        self._acked.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sink: Callable[[bytes], None] | None = None
        self._sink_lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def read(self) -> bytes:
        """The next chunk the host wrote, or b"" once the stream is closed."""
        item = self._inbox.get()
        if item is None:
            self._inbox.put(None)  # keep later reads returning b""
            return b""
        self.conn.send(OKAY, self.local_id, self.remote_id)
        return item

    def write(self, data: bytes) -> bool:
        """Send ``data`` in WRTE messages; False if the stream closed first."""
        with self._lock:
            view = memoryview(data)
            for start in range(0, len(view), self.conn.max_payload):
                self._acked.wait()
                if self.closed:
                    return False
                self._acked.clear()
                chunk = bytes(view[start:start + self.conn.max_payload])
                self.conn.send(WRTE, self.local_id, self.remote_id, chunk)
            return not self.closed

    def close(self) -> None:
        """Close from the device side (the host echoes CLSE, which is then ignored)."""
        if not self._closed.is_set():
            self._mark_closed()
            self.conn.send(CLSE, self.local_id, self.remote_id)

    def set_sink(self, sink: Callable[[bytes], None]) -> None:
        """Deliver host data to ``sink`` on the reader thread instead of ``read``.

        Saves a thread hop per message (the forward path is latency-bound); ``sink`` must be
        quick, as it holds up the whole connection while it runs. Data that arrived before
        the call goes to ``sink`` first, so the order holds.
        """
        with self._sink_lock:
            while True:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._inbox.put(None)
                    break
                self._deliver(sink, item)
            self._sink = sink

    # Called by the reader thread.
    def _on_data(self, data: bytes) -> None:
        with self._sink_lock:
            if self._sink is None:
                self._inbox.put(data)
            else:
                self._deliver(self._sink, data)

    def _deliver(self, sink: Callable[[bytes], None], data: bytes) -> None:
        try:
            sink(data)
        except OSError:
            self.close()
            return
        self.conn.send(OKAY, self.local_id, self.remote_id)

    def _on_okay(self) -> None:
        self._acked.set()

    def _mark_closed(self) -> None:
        self._closed.set()
        self._acked.set()
        self._inbox.put(None)
        self.conn.forget(self.local_id)


#: A service gets its stream and the text after the service name; it runs in its own thread.
ServiceHandler = Callable[[Stream, str], None]
#: Picks a handler for an OPEN's service string, or None to refuse it.
ServiceRouter = Callable[[str], "ServiceHandler | None"]


class Connection:
    """One TCP connection from an adb server: handshake, stream table, dispatch."""

    _ids = itertools.count(1)

    def __init__(self, sock: socket.socket, banner: str, router: ServiceRouter):
        self.sock, self.banner, self.router = sock, banner, router
        self.max_payload = MAX_PAYLOAD
        self.summed = False
        self._streams: dict[int, Stream] = {}
        self._send_lock = threading.Lock()
        self._table_lock = threading.Lock()

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        """Send one message; a dead socket is noticed by the reader thread, not here."""
        msg = pack(command, arg0, arg1, data, summed=self.summed)
        with self._send_lock:
            try:
                self.sock.sendall(msg)
            except OSError:
                pass

    def forget(self, local_id: int) -> None:
        with self._table_lock:
            self._streams.pop(local_id, None)

    def serve(self) -> None:
        """Read and dispatch messages until the host goes away."""
        try:
            while True:
                self._dispatch(*read_message(self.sock))
        except (EOFError, OSError, ProtocolError):
            pass
        finally:
            self._close_all()

    def _dispatch(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        if command == CNXN:
            self._on_connect(arg0, arg1)
        elif command == OPEN:
            self._on_open(arg0, data)
        else:
            # Messages for ids we do not know (the host echoing our CLSE) are ignored.
            with self._table_lock:
                stream = self._streams.get(arg1)
            if stream is None:
                return
            if command == WRTE:
                stream._on_data(data)
            elif command == OKAY:
                stream._on_okay()
            elif command == CLSE:
                stream._mark_closed()

    def _on_connect(self, version: int, max_payload: int) -> None:
        version = min(version, VERSION_NO_SUM)
        self.summed = version < VERSION_NO_SUM
        self.max_payload = max(4096, min(max_payload, MAX_PAYLOAD))
        self.send(CNXN, version, MAX_PAYLOAD, self.banner.encode())

    def _on_open(self, remote_id: int, data: bytes) -> None:
        service = data.rstrip(b"\0").decode("utf-8", "replace")
        handler = self.router(service)
        if handler is None:
            self.send(CLSE, 0, remote_id)
            return
        stream = Stream(self, next(self._ids), remote_id)
        with self._table_lock:
            self._streams[stream.local_id] = stream
        self.send(OKAY, stream.local_id, remote_id)
        threading.Thread(target=self._run_service, args=(handler, stream, service),
                         daemon=True, name=f"adb-service-{service[:20]}").start()

    @staticmethod
    def _run_service(handler: ServiceHandler, stream: Stream, service: str) -> None:
        try:
            handler(stream, service)
        finally:
            stream.close()

    def _close_all(self) -> None:
        with self._table_lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream._mark_closed()
        try:
            self.sock.close()
        except OSError:
            pass
