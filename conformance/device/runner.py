#!/usr/bin/env python3
"""The conformance on-device runner: runs ONNX models with ONNX Runtime, and ``.tflite`` ones
with LiteRT, where it is started.

Pushed alone to the device (``/data/local/tmp/conformance/runner.py``) and started once per
device through ``adb shell``, by the runtime bundle's Python (``conformance/device/bundle.py``)
or a python3 with numpy and onnxruntime (and ai-edge-litert for ``.tflite``) already there, so it
must never import the ``conformance`` package. The wire protocol is described in
``docs/device-runner-protocol.md``; in short, every message is

    uint32 little-endian N | N bytes of UTF-8 JSON header | raw tensor bytes

and the header's ``tensors`` list (dtype, shape, nbytes) says how the bytes that follow split
into little-endian C-order arrays.

    python3 runner.py --dir DIR --port 0 [--watch-stdin]   # serve TCP (reach it: adb forward)
    python3 runner.py --dir DIR --stdio                    # serve one client on stdin/stdout
"""

import argparse
import json
import os
import platform
import socket
import struct
import sys
import threading
import time

PROTOCOL = 1
LENGTH = struct.Struct("<I")
MAX_HEADER = 16 * 1024 * 1024
READY = "CONFORMANCE-RUNNER LISTEN"
FAILED = "CONFORMANCE-RUNNER ERROR"


def read_exact(stream, n):
    """Exactly n bytes from a binary file object, or None at a clean end of stream."""
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            if left == n:
                return None
            raise EOFError("stream ended inside a message")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream):
    """(header dict, list of arrays) or None at end of stream."""
    import numpy as np

    raw = read_exact(stream, LENGTH.size)
    if raw is None:
        return None
    (length,) = LENGTH.unpack(raw)
    if length > MAX_HEADER:
        raise ValueError("header of %d bytes is too long" % length)
    header = json.loads(read_exact(stream, length).decode("utf-8"))
    arrays = []
    for spec in header.get("tensors", []):
        data = read_exact(stream, int(spec["nbytes"])) if spec["nbytes"] else b""
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        arrays.append(np.frombuffer(data or b"", dtype=dtype).reshape(spec["shape"]))
    return header, arrays


def write_message(stream, header, arrays=()):
    """Send a header and arrays (as little-endian C-order bytes)."""
    import numpy as np

    blobs, specs = [], []
    for array in arrays:
        array = np.asarray(array)
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        blob = little.tobytes()
        specs.append({"dtype": array.dtype.name, "shape": list(array.shape), "nbytes": len(blob)})
        blobs.append(blob)
    header = dict(header, tensors=specs)
    body = json.dumps(header).encode("utf-8")
    stream.write(b"".join([LENGTH.pack(len(body)), body] + blobs))
    stream.flush()


class OrtSession:
    """An ONNX Runtime session: arrays in model-input order -> arrays in output order."""

    def __init__(self, ort, path, options):
        opts = ort.SessionOptions()
        for key, value in (options or {}).items():
            setattr(opts, key, value)  # e.g. intra_op_num_threads
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        describe = lambda args: [{"name": a.name, "type": a.type, "shape": a.shape} for a in args]
        self.inputs = describe(self.session.get_inputs())
        self.outputs = describe(self.session.get_outputs())

    def run(self, arrays):
        feeds = {arg["name"]: array for arg, array in zip(self.inputs, arrays)}
        return self.session.run(None, feeds)


class LiteRtSession:
    """A .tflite model in LiteRT's interpreter (its default XNNPACK delegate), through its
    ``serving_default`` signature with inputs and outputs by position, as on the host."""

    def __init__(self, path, options):
        from ai_edge_litert.interpreter import Interpreter

        threads = (options or {}).get("num_threads")
        self.runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner(
            "serving_default")
        details, out = self.runner.get_input_details(), self.runner.get_output_details()
        self.input_names, self.output_names = _by_position(details), _by_position(out)
        describe = lambda d, names: [{"name": n, "type": str(d[n]["dtype"].__name__),
                                      "shape": [int(x) for x in d[n]["shape"]]} for n in names]
        self.inputs = describe(details, self.input_names)
        self.outputs = describe(out, self.output_names)

    def run(self, arrays):
        import numpy as np

        result = self.runner(**{n: np.ascontiguousarray(x)
                                for n, x in zip(self.input_names, arrays)})
        return [result[n] for n in self.output_names]


def _by_position(names):
    """Signature names (args_0, output_1) in positional order: LiteRT names them so."""
    import re

    def position(name):
        found = re.search(r"(\d+)$", name)
        return int(found.group(1)) if found else 0

    return sorted(names, key=position)


def _litert_version():
    """LiteRT's version if its package is here (without importing it: that takes seconds)."""
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:
        return None


class Runner:
    """Sessions by model path (relative to the work folder) and the request handlers. The file's
    extension picks the runtime: ``.tflite`` LiteRT, anything else ONNX Runtime."""

    def __init__(self, workdir):
        import onnxruntime

        self.ort, self.workdir = onnxruntime, workdir
        self.sessions = {}
        self.lock = threading.Lock()

    def hello(self, request, _arrays):
        import numpy

        runtimes = {"onnxruntime": self.ort.__version__}
        if _litert_version():
            runtimes["litert"] = _litert_version()
        return {"protocol": PROTOCOL, "runner": "python", "runtime": "onnxruntime",
                "runtime_version": self.ort.__version__, "runtimes": runtimes,
                "numpy_version": numpy.__version__,
                "python_version": platform.python_version(), "machine": platform.machine(),
                "providers": self.ort.get_available_providers(), "dir": self.workdir,
                "pid": os.getpid()}, []

    def load(self, request, _arrays):
        path = os.path.join(self.workdir, request["path"])
        if path.endswith(".tflite"):
            session = LiteRtSession(path, request.get("options"))
        else:
            session = OrtSession(self.ort, path, request.get("options"))
        with self.lock:
            self.sessions[request["path"]] = session
        return {"session": request["path"], "inputs": session.inputs,
                "outputs": session.outputs}, []

    def _session(self, request):
        with self.lock:
            session = self.sessions.get(request["session"])
        if session is None:
            raise KeyError("no session %r: send load first" % request["session"])
        return session

    def run(self, request, arrays):
        return {}, self._session(request).run(arrays)

    def time(self, request, arrays):
        """Warm-up runs, then per-iteration wall times (seconds) measured here."""
        session = self._session(request)
        for _ in range(int(request.get("warmup", 1))):
            session.run(arrays)
        times = []
        for _ in range(int(request.get("iterations", 10))):
            start = time.perf_counter()
            session.run(arrays)
            times.append(time.perf_counter() - start)
        return {"times": times, "clock": "time.perf_counter"}, []

    def unload(self, request, _arrays):
        with self.lock:
            self.sessions.pop(request["session"], None)
        return {}, []


def serve(runner, rfile, wfile):
    """Answer requests on one connection until bye, shutdown or end of stream."""
    while True:
        try:
            message = read_message(rfile)
        except (EOFError, OSError, ValueError) as exc:
            sys.stderr.write("runner: bad request: %s\n" % exc)
            return "bye"
        if message is None:
            return "bye"
        request, arrays = message
        op = request.get("op")
        if op in ("bye", "shutdown"):
            write_message(wfile, {"ok": True, "id": request.get("id")})
            return op
        handler = getattr(runner, op, None) if op in OPS else None
        try:
            if handler is None:
                raise ValueError("unknown op %r" % op)
            reply, outputs = handler(request, arrays)
            reply = dict(reply, ok=True)
        except Exception as exc:  # reported to the host, which owns the error message
            reply, outputs = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}, []
        reply["id"] = request.get("id")
        write_message(wfile, reply, outputs)


OPS = ("hello", "load", "run", "time", "unload")


def serve_tcp(runner, host, port):
    listener = socket.create_server((host, port))
    print("%s %d" % (READY, listener.getsockname()[1]), flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_conn, args=(runner, conn), daemon=True).start()


def _serve_conn(runner, conn):
    rfile, wfile = conn.makefile("rb"), conn.makefile("wb")
    try:
        if serve(runner, rfile, wfile) == "shutdown":
            os._exit(0)
    except OSError:
        pass
    finally:
        conn.close()


def watch_stdin():
    """Exit when stdin ends: the host's adb shell went away (the device's SIGHUP, portably)."""
    while os.read(0, 4096):
        pass
    os._exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description="conformance on-device ONNX runner")
    parser.add_argument("--dir", default=os.getcwd(), help="work folder (model paths are "
                        "relative to it; default: the current folder)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--stdio", action="store_true", help="serve one client on stdin/stdout")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin ends")
    args = parser.parse_args(argv)
    try:
        runner = Runner(os.path.abspath(args.dir))
    except ImportError as exc:
        print("%s cannot import onnxruntime/numpy: %s" % (FAILED, exc), flush=True)
        return 3
    if args.stdio:
        serve(runner, sys.stdin.buffer, sys.stdout.buffer)
        return 0
    if args.watch_stdin:
        threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        serve_tcp(runner, args.host, args.port)
    except OSError as exc:
        print("%s cannot listen: %s" % (FAILED, exc), flush=True)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
