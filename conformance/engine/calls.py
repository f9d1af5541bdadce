"""The one place a runtime is called: every entry point (the cases, ``--model`` files, replay,
the cat pipeline) prepares, loads and runs through these, so errors carry the same cause and every
call honours the case's deadline. ``conformance.engine.harness`` re-exports them."""

from __future__ import annotations

import numpy as np

from conformance.backends.base import Backend, BackendError, ProgramBackend
from conformance.engine.deadline import CaseTimeout, Deadline


def _call(backend: Backend, step: str, fn, deadline: Deadline | None):
    """``fn()`` under ``deadline``; a runtime's failure is a ``BackendError`` naming the step,
    with its cause (a timeout stays a ``CaseTimeout``)."""
    try:
        return (deadline or Deadline(None)).call(fn, f"{backend.name}: {step}")
    except CaseTimeout:
        raise
    except Exception as exc:
        raise BackendError.wrap(backend.name, step, exc) from exc


class _ProgramSession:
    """A loaded program whose ``run`` goes through ``run_session`` (deadline, error wrapping)."""

    def __init__(self, backend, session, deadline):
        self.backend, self.session, self.deadline = backend, session, deadline

    def run(self, arrays):
        return run_session(self.backend, self.session, list(arrays), self.deadline)


def prepare_model(backend: Backend, model, deadline: Deadline | None = None):
    """``backend.prepare(model)`` (an ONNX runtime)."""
    return _call(backend, "prepare", lambda: backend.prepare(model), deadline)


def load_program(backend: ProgramBackend, artifact: bytes, deadline: Deadline | None = None):
    """``backend.load(artifact)`` (a runtime that takes a torch program)."""
    return _call(backend, "load", lambda: backend.load(artifact), deadline)


def run_session(backend: Backend, session, arrays, deadline: Deadline | None = None) -> list[np.ndarray]:
    """``session.run(arrays)``, as numpy arrays."""
    return [np.asarray(o) for o in _call(backend, "run", lambda: session.run(arrays), deadline)]
