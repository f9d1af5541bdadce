"""Test backends (ONNX backend API, wrapping ONNX Runtime). ``SlowBackend`` sleeps before each
run: the gate's "deliberately slowed backend" (``--backend=tests.slow_backend:SlowBackend``);
``OffBackend`` fails parity.

The delay comes from ``CONFORMANCE_SLOW_MS`` (default 0), so a baseline and a slowed run use the
same backend name and their latency cases line up.
"""

import os
import time

import onnxruntime.backend


class SlowBackend:
    """``prepare(model, device)`` -> a rep whose ``run`` sleeps, then runs ONNX Runtime."""

    @staticmethod
    def prepare(model, device="CPU", **kwargs):
        return _SlowRep(onnxruntime.backend.prepare(model, device, **kwargs),
                        float(os.environ.get("CONFORMANCE_SLOW_MS", "0")) / 1e3)


class _SlowRep:
    def __init__(self, rep, delay: float):
        self._rep, self._delay = rep, delay

    def run(self, inputs, **kwargs):
        time.sleep(self._delay)
        return self._rep.run(inputs, **kwargs)


class OffBackend:
    """ONNX Runtime with every output element shifted by 2e-3 (just past decimal-3): a backend
    whose parity fails, for the report and gate tests."""

    @staticmethod
    def prepare(model, device="CPU", **kwargs):
        return _OffRep(onnxruntime.backend.prepare(model, device, **kwargs))


class _OffRep:
    def __init__(self, rep):
        self._rep = rep

    def run(self, inputs, **kwargs):
        return [o + 2e-3 for o in self._rep.run(inputs, **kwargs)]


class HangingBackend:
    """Prepares fine, then never returns from ``run`` (a hung runtime)."""

    @staticmethod
    def prepare(model, device="CPU", **kwargs):
        return _HangingRep()


class _HangingRep:
    def run(self, inputs, **kwargs):
        while True:
            time.sleep(1)


class KeyErrorBackend:
    """Raises a bare ``KeyError`` in ``prepare``, as a runtime missing a weight does."""

    @staticmethod
    def prepare(model, device="CPU", **kwargs):
        raise KeyError("conv1.weight")


class HoldsTheGil:
    """``run`` never returns and never releases the GIL (a catastrophic regular expression in
    native code): no Python thread can run, so only the process watchdog ends it."""

    @staticmethod
    def prepare(model, device="CPU", **kwargs):
        return _GilRep()


class _GilRep:
    def run(self, inputs, **kwargs):
        import re

        re.match(r"(x+x+)+y", "x" * 60)
        raise AssertionError("unreachable: the match above takes longer than the universe")


class Segfaults:
    """``run`` crashes the process in native code (a null pointer read), as a runtime's kernel
    can; the example that did it must still reach the record."""

    @staticmethod
    def prepare(model, device="CPU", **kwargs):
        return _SegfaultRep()


class _SegfaultRep:
    def run(self, inputs, **kwargs):
        import ctypes

        ctypes.string_at(0)
        raise AssertionError("unreachable: reading address 0 ends the process")


# Seeded single-layer faults for the localization tests: right everywhere but after one node.
from conformance.testing.faults import perturbed_node  # noqa: E402

SuperresConv2Off = perturbed_node("/conv2/Conv", delta=0.05)
SRResNetBlockConv2Off = perturbed_node("/blocks/blocks.0/conv2/Conv", delta=0.05)
