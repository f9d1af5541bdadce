"""Pipeline runners for SuperResolutionNet on a named backend (``pytorch`` or any ``--backend``).

The cat-image pipeline (:mod:`conformance.pipeline.superres`) takes a ``run_y`` callable; these helpers
make one from a backend name: PyTorch eager, or the model exported once to ONNX (TorchScript,
opset 17, dynamic batch/height/width so any image size runs) and prepared on the backend. Both
the export and a program runtime's programs come from the artifact cache when it holds them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
import torch

from conformance.backends import Backend, ProgramBackend, load_backend
from conformance.formats.artifact_cache import onnx_export, program_export
from conformance.formats.onnx_export import ExportTarget
from conformance.engine.harness import load_program, prepare_model, run_session
from conformance.pipeline.superres import Runner, torch_runner

PYTORCH = "pytorch"
#: The export every pipeline backend runs (the exporter and opset are not what it tests).
PIPELINE_EXPORT = ExportTarget("torchscript", 17)


def export_dynamic(model: torch.nn.Module, target: ExportTarget = PIPELINE_EXPORT) -> onnx.ModelProto:
    """``model`` as ONNX with dynamic batch, height and width (one export serves every image)."""
    return onnx_export(model, (torch.zeros(1, 1, 32, 32),), target, dynamic=[(0, 2, 3)])


def backend_runner(backend: Backend, model: onnx.ModelProto) -> Runner:
    """A pipeline runner that runs ``model`` on ``backend`` through the core's calls (failures
    become ``BackendError`` with their cause)."""
    session = prepare_model(backend, model)

    def run(y: np.ndarray) -> np.ndarray:
        return run_session(backend, session, [np.ascontiguousarray(y, dtype=np.float32)])[0]

    return run


def program_runner(backend: ProgramBackend, model: torch.nn.Module) -> Runner:
    """A pipeline runner for a runtime that takes a torch program (ExecuTorch, LiteRT): the
    network is exported at each image's own size (static, one program per size, made once)."""
    sessions: dict[tuple[int, ...], object] = {}

    def run(y: np.ndarray) -> np.ndarray:
        y = np.ascontiguousarray(y, dtype=np.float32)
        if y.shape not in sessions:
            artifact = program_export(backend, model.eval(), (torch.zeros(y.shape),), None)
            sessions[y.shape] = load_program(backend, artifact)
        return run_session(backend, sessions[y.shape], [y])[0]

    return run


def model_runner(backend: Backend, model: torch.nn.Module) -> Runner:
    """The pipeline runner of ``model`` on ``backend``, whatever format the runtime takes."""
    if isinstance(backend, ProgramBackend):
        return program_runner(backend, model)
    return backend_runner(backend, export_dynamic(model))


def runner_factory(name: str) -> tuple[Callable[[torch.nn.Module], Runner], Backend | None]:
    """``(make_runner, backend)`` for a backend name; ``backend`` is None for PyTorch.

    ``make_runner(model)`` exports the torch model and prepares it on the backend. The caller
    closes the backend. Raises ``BackendError`` for a name ``load_backend`` rejects.
    """
    if name == PYTORCH:
        return torch_runner, None
    backend = load_backend(name)
    return (lambda model: model_runner(backend, model)), backend
