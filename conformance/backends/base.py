"""The backend protocol every backend under test follows.

A backend turns an ``onnx.ModelProto`` into a prepared session (``prepare``), and a session
maps a list of numpy arrays in model-input order to a list of numpy arrays (``run``): the ONNX
backend API (``onnx.backend.base.Backend``), so any third-party ONNX backend plugs in unchanged.
Backends return plain arrays; comparing them is someone else's job (``conformance.engine.compare``).
"""

from __future__ import annotations

import re
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import onnx


class BackendError(Exception):
    """A backend could not be loaded, could not prepare a model, or failed to run it.

    The message names the backend and the step, and carries the backend's own message.
    ``error_type`` is the type of the exception the runtime raised (``KeyError``, tract's
    ``RuntimeError``...), ``detail`` its whole text; ``headline`` its first meaningful line.
    """

    def __init__(self, message: str, *, cause: BaseException | None = None):
        super().__init__(message)
        self.error_type = type(cause).__name__ if cause is not None else type(self).__name__
        self.detail = str(cause) if cause is not None else message

    @classmethod
    def wrap(cls, who: str, step: str, exc: BaseException) -> "BackendError":
        """``exc`` raised by a runtime during ``step``, as a BackendError naming both."""
        if isinstance(exc, BackendError):
            return exc
        return cls(f"{who}: {step} raised {type(exc).__name__}: {first_meaningful_line(str(exc))}", cause=exc)

    @property
    def headline(self) -> str:
        return first_meaningful_line(str(self))


# Lines of a runtime's message that are backtrace noise, not what went wrong (tract's Rust
# backtraces end with C source positions; Python tracebacks; numbered frames).
_NOISE = re.compile(r"^\s*(\d+:|at |File \"|Traceback|Stack backtrace|stack backtrace|\S+\.(h|c|cc|cpp|rs):\d+)")


def first_meaningful_line(text: str) -> str:
    """The first line of ``text`` that says what went wrong (not blank, not backtrace noise)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in lines:
        if not _NOISE.match(line):
            return line
    return lines[0] if lines else ""


#: What each backend variant changes, as the diagnosis prints it (the hypothesis it tests).
VARIANTS = {
    "host": "the same runtime on this host",
    "one-thread": "one thread instead of the runtime's default",
    "no-graph-optimizations": "graph optimizations off",
    "no-delegate": "the delegate off (the runtime's own kernels)",
}


@runtime_checkable
class Session(Protocol):
    """A model prepared by a backend, ready to run many times."""

    def run(self, inputs: Sequence[np.ndarray]) -> Sequence[np.ndarray]: ...


class Backend:
    """Base class of the built-in backends.

    Subclasses set ``name`` (used in test ids and reports) and implement ``prepare``.
    ``versions`` feeds the report header. A backend that times itself (a phone timing on the
    device) sets ``measures_own_latency`` and gives its sessions ``time(inputs, warmup,
    iterations) -> seconds per iteration``; latency cases then report those instead of host time.
    """

    name: str = "backend"
    #: The artifact format this runtime takes: "onnx" (``prepare(onnx.ModelProto)``), or the
    #: name of a format it makes itself from a torch module (``ProgramBackend``: "pte", "tflite").
    format: str = "onnx"
    #: True when sessions have ``time(inputs, warmup, iterations)`` measuring on the backend itself.
    measures_own_latency: bool = False
    #: What may run at once (deployments with several callers): "session" (one session from
    #: several threads: documented thread-safe, as ONNX Runtime's ``run``), "sessions" (separate
    #: sessions at once, each caller its own: what any runtime must allow), "none" (calls are
    #: serialized anyway, as over one device connection: overlapping runs are not drawn).
    runs_at_once: str = "sessions"

    def prepare(self, model: onnx.ModelProto) -> Session:  # pragma: no cover - abstract
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """Name -> version of whatever this backend runs on (for the report header)."""
        return {}

    def close(self) -> None:
        """Release processes, connections or sessions held across cases."""

    def variants(self) -> dict[str, "Backend"]:
        """This runtime with one setting changed, by what it tests, for the diagnosis of a
        failure (``conformance.engine.diagnosis``): keys from ``VARIANTS`` ("one-thread",
        "no-graph-optimizations", "host", "no-delegate"). A variant passing where the runtime
        fails names the setting as the cause. None by default; cheap to build (nothing loads
        until it prepares a model)."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class ProgramBackend(Backend):
    """A runtime that takes a torch program rather than an ONNX model (ExecuTorch, LiteRT).

    The core calls ``export`` once per structure (and per input shape when ``per_shape``), keeps
    the artifact bytes in its cache and calls ``load`` to get a session. Weights are baked into the
    artifact, so the core draws them from a small pool for these runtimes.
    """

    format: str = "program"
    #: True when one artifact serves one input shape only (static shapes): the core exports per shape.
    per_shape: bool = False

    def export(self, module, example_args: tuple, dynamic: Sequence[Sequence[int]] | None) -> bytes:
        """The artifact for ``module`` (eval mode, float32) called on ``example_args``;
        ``dynamic[i]`` lists the symbolic dimensions of input i (None or ignored when ``per_shape``)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def load(self, artifact: bytes) -> Session:
        """A session running ``artifact``: ``run(list of numpy arrays) -> list of numpy arrays``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def prepare(self, model) -> Session:
        raise BackendError(f"{self.name} takes a torch program ({self.format}), not an ONNX model")
