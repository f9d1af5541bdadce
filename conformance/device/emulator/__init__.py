"""A loopback Android device for machines without a phone (a tool beside the product).

The real ``adb`` client can ``connect``, ``devices -l``, ``push``, ``pull``, ``shell`` (v1 and
shell_v2) and ``forward`` against it::

    python -m conformance.device.emulator --port 6520 --sandbox /tmp/phone
    python -m conformance.device.emulator --abi arm64-v8a --port 6520 --sandbox /tmp/phone

With ``--abi arm64-v8a`` the device's programs run under ``qemu-aarch64-static`` in an aarch64
root (see :mod:`conformance.device.emulator.arm`). Tests use :class:`LoopbackDevice`, which
starts one in a subprocess on a free port (so that a test can kill it like an unplugged phone).

Runtime code (``conformance.backends``, ``conformance.device.adb/client/runner``) never imports
this package; it reaches the device only through the ``adb`` client, as it would a phone.
"""

from conformance.device.emulator.process import LoopbackDevice, free_port
from conformance.device.emulator.server import LoopbackServer

__all__ = ["LoopbackDevice", "LoopbackServer", "free_port"]
