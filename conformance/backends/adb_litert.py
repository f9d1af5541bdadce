"""LiteRT on an ADB device: ``.tflite`` programs, what Android apps ship, run by the device's
runner beside ONNX Runtime (``<device>-litert`` targets).

The program is converted on this host (``litert_torch``, one conversion per input shape, as for
the host's ``litert`` target), pushed once per content to ``models/<hash>.tflite`` and loaded by
the same runner (its ``load`` picks LiteRT by the extension). Each run is compared with the same
``.tflite`` in this host's LiteRT (:attr:`AdbDeviceBackend.last_host_diff`), and latency is
measured on the device, as for ONNX models.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from conformance.backends._runtime import Unsupported
from conformance.backends.adb import AdbDeviceBackend, AdbSession
from conformance.backends.base import ProgramBackend


class AdbLiteRtBackend(ProgramBackend):
    """The device ``device``'s runner running ``.tflite`` programs with LiteRT."""

    format = "tflite"
    per_shape = True
    measures_own_latency = True

    def __init__(self, device: AdbDeviceBackend):
        from conformance.backends.litert import LiteRtBackend

        self.device = device
        self.name, self.place = f"{device.name}-litert", device.place
        self._converter = LiteRtBackend()  # a one-line usage error when LiteRT is missing here

    def export(self, module, example_args: tuple, dynamic: Sequence[Sequence[int]] | None = None) -> bytes:
        """The ``.tflite`` for these input shapes, converted on this host."""
        return self._converter.export(module, example_args, dynamic)

    def load(self, artifact: bytes) -> AdbSession:
        """Push the program (once per content) and load it in the device's runner."""
        rel = f"models/{hashlib.sha256(artifact).hexdigest()[:24]}.tflite"
        with self.device._lock:
            self.device._ensure_started()
            offered = sorted(self.device.runner_info.get("runtimes", {})) or ["onnxruntime"]
            if "litert" not in offered:
                raise Unsupported(f"{self.name}: the device's runner has no LiteRT (it offers "
                                  f"{', '.join(offered)})")
        return AdbSession(self.device, rel, self.device._ensure_loaded(rel, artifact), artifact)

    def versions(self) -> dict[str, str]:
        facts = self.device.versions()
        facts["litert (device)"] = self.device.runner_info.get("runtimes", {}).get("litert", "?")
        facts["kernels"] = "LiteRT's default XNNPACK delegate"
        return facts

    def pop_host_diff(self):
        """The largest device-vs-host difference since the last call (shared with the device's
        ONNX target: cases run one at a time)."""
        return self.device.pop_host_diff()

    def close(self) -> None:
        self.device.close()
