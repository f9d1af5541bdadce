"""Third-party runtimes that take a torch program rather than an ONNX model.

``--backend=pkg.mod:Runtime`` names a class or module with::

    format = "myfmt"        # names the artifact in test ids and reports
    per_shape = False       # True: one artifact serves one input shape (exported per shape)
    export(module, example_args, dynamic) -> bytes   # the artifact (cached by the core)
    load(artifact: bytes) -> session                  # session.run(list of arrays) -> list of arrays

the small equivalent of the ONNX backend API (``prepare``/``run``) for such runtimes. ``dynamic``
lists the symbolic dimensions of each input (None for a per-shape runtime).
"""

from __future__ import annotations

from typing import Sequence

from conformance.backends.base import BackendError, ProgramBackend


def is_program_runtime(target) -> bool:
    return callable(getattr(target, "export", None)) and callable(getattr(target, "load", None))


class ProgramApiBackend(ProgramBackend):
    """Adapts a plug-in with ``export``/``load`` to the core's ``ProgramBackend``."""

    def __init__(self, spec: str, target):
        self.spec, self._target = spec, target
        self.name = spec.replace(":", ".")
        self.format = str(getattr(target, "format", "program"))
        self.per_shape = bool(getattr(target, "per_shape", False))
        if isinstance(target, type):  # a class: one instance serves the run
            try:
                self._target = target()
            except TypeError as exc:
                raise BackendError(f"--backend={spec}: cannot create {target.__name__}(): {exc}") from None

    def export(self, module, example_args: tuple, dynamic: Sequence[Sequence[int]] | None) -> bytes:
        return self._target.export(module, example_args, dynamic)

    def load(self, artifact: bytes):
        return self._target.load(artifact)

    def versions(self) -> dict[str, str]:
        facts = getattr(self._target, "versions", None)
        return dict(facts()) if callable(facts) else {"format": self.format}
