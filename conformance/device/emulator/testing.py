"""Helpers for tests and benchmarks of the device path: a private adb server, a small model.

A private adb server (its own ``ANDROID_ADB_SERVER_PORT``) keeps tests away from a developer's
real phones and from other test runs; it is killed on exit with ``adb kill-server``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Iterator

import numpy as np

from conformance.device.adb import Adb
from conformance.device.emulator.process import free_port


def adb_available() -> bool:
    """True when an ``adb`` client is on PATH."""
    return shutil.which("adb") is not None


@contextlib.contextmanager
def private_adb_server(timeout: float = 20.0) -> Iterator[Adb]:
    """An :class:`Adb` bound to a fresh adb server on a free port; the environment variable
    ``ANDROID_ADB_SERVER_PORT`` points at it meanwhile (for code that builds its own Adb)."""
    port = free_port()
    adb = Adb(server_port=port, timeout=timeout)
    previous = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)
    try:
        adb.run(["start-server"], step="start-server")
        yield adb
    finally:
        adb.kill_server()
        if previous is None:
            os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
        else:
            os.environ["ANDROID_ADB_SERVER_PORT"] = previous


def conv_model(in_channels: int = 3, out_channels: int = 4, kernel: int = 3, seed: int = 0):
    """A one-node Conv model (weights as initializers, dynamic batch/height/width)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out_channels, in_channels, kernel, kernel)).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32)
    pad = kernel // 2
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[pad] * 4)
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_channels, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_channels, "H", "W"])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    return model
