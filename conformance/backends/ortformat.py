"""ONNX Runtime running the ORT-format model: the mobile export (Caffe2's mobile exporter's heir).

``prepare`` converts each ONNX model to ORT format exactly as onnxruntime's own converter
(``python -m onnxruntime.tools.convert_onnx_models_to_ort``, default "Fixed" optimization style,
level "all", no target platform) does: an ``InferenceSession`` with
``session.save_model_format=ORT`` and ``optimized_model_filepath`` set, optimized with every
graph transformer except the x86-only ``NchwcTransformer`` (the converter drops it so the file
runs on ARM phones). The saved flatbuffer is then loaded with ``session.load_model_format=ORT``
and run: what a phone's ONNX Runtime Mobile would load, executed here by the desktop build.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import tempfile
from pathlib import Path

import onnx

from conformance.backends.base import Backend, BackendError
from conformance.backends.onnxrt import OrtSession

#: bytes 4:8 of every ORT-format file (the flatbuffer's file identifier).
ORT_FILE_IDENTIFIER = b"ORTM"
# The converter's choice when no --target_platform is given: NCHWc layouts are x86-specific
# and would make the file unusable on an ARM phone.
_DISABLED_OPTIMIZERS = ["NchwcTransformer"]
# Fresh file names: on ext4, overwriting a file by truncation forces a data flush
# (auto_da_alloc), measured here at ~3 ms against ~0.1 ms for a new file.
_names = itertools.count()


def to_ort_format(model: onnx.ModelProto | bytes, folder: str | os.PathLike | None = None, *,
                  optimizations: bool = True) -> bytes:
    """The ORT-format bytes for ``model``, made as ``convert_onnx_models_to_ort`` makes them.

    ORT writes the converted model only to a file: it goes to a fresh name in ``folder`` (a
    private temporary folder when None) and is deleted once read. Raises ``BackendError`` when
    ONNX Runtime cannot load or save the model.
    """
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="conformance-ort-", dir=fast_tmp()) as tmp:
            return to_ort_format(model, tmp, optimizations=optimizations)
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    target = Path(folder) / f"model-{next(_names)}.ort"
    options = _quiet_options()
    options.intra_op_num_threads = 1  # this session never runs: skip building a thread pool
    options.optimized_model_filepath = str(target)
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimizations
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.add_session_config_entry("session.qdqisint8allowed", "0")  # the converter's default
    options.add_session_config_entry("session.save_model_format", "ORT")
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"],
                             disabled_optimizers=_DISABLED_OPTIMIZERS)
        return target.read_bytes()
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise BackendError(f"onnxruntime-ort: cannot convert the model to ORT format: {exc}", cause=exc) from exc
    finally:
        target.unlink(missing_ok=True)


def constant_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """An IR-3 model with its initializers out of the graph inputs (a copy; others unchanged).

    IR 3 requires every initializer to be listed as a graph input as well. ONNX Runtime treats
    them as constants, but its ORT-format conversion folds some of them away (the ``*__SHAPE``
    initializers of onnx's ``light_bvlc_alexnet``) and keeps their input entries, so the
    converted model asks for them as required inputs ("takes 4 inputs, got 1"). From IR 4 on an
    initializer need not be an input: dropping the entries and stamping IR 4 says exactly
    "these are constants", which is what IR 3 meant.
    """
    initializers = {i.name for i in model.graph.initializer}
    if model.ir_version >= 4 or not any(i.name in initializers for i in model.graph.input):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    keep = [i for i in copy.graph.input if i.name not in initializers]
    del copy.graph.input[:]
    copy.graph.input.extend(keep)
    copy.ir_version = 4
    return copy


def _check_inputs(model: onnx.ModelProto, session, name: str) -> None:
    """Refuse, naming the cause, a converted model that asks for initializers as inputs."""
    initializers = {i.name for i in model.graph.initializer}
    turned = [i.name for i in session.get_inputs() if i.name in initializers]
    if turned:
        raise BackendError(
            f"{name}: the ORT-format conversion turned initializer(s) {', '.join(turned)} into required "
            f"inputs (the model, IR version {model.ir_version}, also lists its initializers as graph inputs, "
            "and the conversion folded them away); remove initializers from the graph inputs and re-export")


def fast_tmp() -> str | None:
    """/dev/shm where there is one: memory-backed, so the converter's file costs no disk I/O."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def is_ort_format(data: bytes) -> bool:
    """Whether ``data`` is an ORT-format flatbuffer (identifier ``ORTM`` at bytes 4:8)."""
    return data[4:8] == ORT_FILE_IDENTIFIER


def _quiet_options():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would flood the test output
    return options


class OrtFormatBackend(Backend):
    """ONNX Runtime (CPU) on the ORT-format conversion of each model."""

    name = "onnxruntime-ort"
    runs_at_once = "session"  # InferenceSession.run is documented thread-safe

    def __init__(self, *, threads: int | None = None, optimizations: bool = True) -> None:
        self.threads = threads
        self.optimizations = optimizations  # False: converted and run with ORT_DISABLE_ALL
        # One private folder for the backend's life: creating a folder per prepare costs ~3 ms
        # on this machine's ext4, more than the conversion itself.
        self._folder: str | None = None

    def prepare(self, model: onnx.ModelProto) -> OrtSession:
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="conformance-ort-", dir=fast_tmp())
        model = constant_initializers(model)
        data = to_ort_format(model, self._folder, optimizations=self.optimizations)
        try:
            session = self._session(data)
        except Exception as exc:
            raise BackendError(f"{self.name}: cannot load the ORT-format model: {exc}", cause=exc) from exc
        _check_inputs(model, session, self.name)
        return OrtSession(session, self.name, profiled=functools.partial(self._session, data))

    def _session(self, data: bytes, profile_prefix: str | None = None):
        """The InferenceSession of the ORT-format ``data``; with ``profile_prefix``, profiling."""
        import onnxruntime as ort

        options = _quiet_options()
        if self.threads:
            options.intra_op_num_threads = self.threads
        if not self.optimizations:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.add_session_config_entry("session.load_model_format", "ORT")
        if profile_prefix:
            options.enable_profiling, options.profile_file_prefix = True, profile_prefix
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def variants(self) -> dict[str, Backend]:
        return {"one-thread": OrtFormatBackend(threads=1, optimizations=self.optimizations),
                "no-graph-optimizations": OrtFormatBackend(threads=self.threads, optimizations=False)}

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def versions(self) -> dict[str, str]:
        import onnxruntime

        return {"onnxruntime": onnxruntime.__version__, "format": "ORT (convert_onnx_models_to_ort)",
                "provider": "CPUExecutionProvider"}
