"""A loopback Android device for machines without a phone (a tool beside the product).

The real ``adb`` client can ``connect``, ``devices -l``, ``push``, ``pull``, ``shell`` (v1 and
shell_v2) and ``forward`` against it::

    python -m conformance.device.emulator --port 6520 --sandbox /tmp/phone
    python -m conformance.device.emulator --abi arm64-v8a --port 6520 --sandbox /tmp/phone

By default it is as bare as a stock phone (busybox sh, getprop, no python3, see
:mod:`conformance.device.emulator.bare`); with ``--abi arm64-v8a`` pushed programs run under
``qemu-aarch64-static``. ``--preinstalled`` gives a friendly device with a python3 (the host's, or
an aarch64 root's under QEMU: :mod:`conformance.device.emulator.arm`). Tests use :class:`LoopbackDevice`, which
starts one in a subprocess on a free port (so that a test can kill it like an unplugged phone).

Runtime code (``conformance.backends``, ``conformance.device.adb/client/runner``) never imports
this package; it reaches the device only through the ``adb`` client, as it would a phone.
"""

from conformance.device.emulator.process import LoopbackDevice, free_port
from conformance.device.emulator.server import LoopbackServer

__all__ = ["LoopbackDevice", "LoopbackServer", "free_port"]
