"""torch -> ONNX with either exporter at a chosen opset, verified and cached per structure.

Export is the expensive step (TorchScript ~20-40 ms, dynamo ~0.4-5 s per model here), so a
structure (op attributes + exporter + opset) is exported once with dynamic batch/height/width
and reused for every drawn shape, weight and input (weights are swapped into the initializers).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import onnx
import torch

from conformance.formats.graph import model_opset

EXPORTERS = ("torchscript", "dynamo")
# Opsets teams deploy at (9 for old mobile runtimes, 11, 13, 17); the newest each exporter supports is added at run time.
BASE_OPSETS = (9, 11, 13, 17)


class UnsupportedExport(Exception):
    """This exporter cannot produce this opset (reported as a skip, never run under a false label)."""


class ExportError(Exception):
    """The exporter failed on a model it should handle."""

    error_type = "ExportError"


@dataclass(frozen=True)
class ExportTarget:
    exporter: str
    opset: int

    @property
    def id(self) -> str:
        return f"{self.exporter}-opset{self.opset}"


@dataclass(frozen=True)
class ProgramFormat:
    """A runtime's own format, made from the torch module by the runtime (ExecuTorch ``pte``,
    LiteRT ``tflite``): stands where an ONNX ``ExportTarget`` stands in targets and records."""

    exporter: str
    opset: int = 0

    @property
    def id(self) -> str:
        return self.exporter


def newest_opset(exporter: str) -> int:
    """The newest opset ``exporter`` of the installed torch claims to produce."""
    if exporter == "torchscript":
        from torch.onnx import _constants

        return _constants.ONNX_MAX_OPSET
    if exporter == "dynamo":
        return onnx.defs.onnx_opset_version()
    raise ValueError(f"unknown exporter {exporter!r}; valid: {', '.join(EXPORTERS)}")


def default_opsets(exporter: str) -> list[int]:
    """9, 11, 13, 17 and the exporter's newest: each exporter gets its own newest only (dynamo
    at TorchScript's newest would add ~20 dynamo exports, ~1 s each, and no new axis)."""
    return sorted(set(BASE_OPSETS) | {newest_opset(exporter)})


@contextlib.contextmanager
def quiet():
    """Silence the exporters' deprecation warnings, log lines and conversion tracebacks."""
    names = ("torch", "torch.onnx", "torch.export", "torch.__trace", "onnxscript", "torch._dynamo", "torch.fx")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_torchscript(module, args, target, input_names, output_names, dynamic):
    axes = {n: {d: f"{n}_{d}" for d in dims} for n, dims in zip(input_names, dynamic) if dims}
    for name in output_names if axes else ():  # a static export keeps its outputs static too
        axes[name] = {0: "batch", 2: "out_h", 3: "out_w"}
    buf = io.BytesIO()
    torch.onnx.export(
        module, args, buf, dynamo=False, opset_version=target.opset,
        input_names=input_names, output_names=output_names, dynamic_axes=axes,
    )
    return onnx.load_from_string(buf.getvalue())


_TORCHLIB_REGISTRIES: dict[int, object] = {}


@contextlib.contextmanager
def _shared_torchlib_registry():
    """Build dynamo's aten -> ONNX function registry once per opset, not on every export.

    torch rebuilds it (parsing the source of ~500 onnxscript functions) in each
    ``torch.onnx.export(dynamo=True)``: 0.45 s of a 0.8 s export of a small model here. It is
    only changed by a ``custom_translation_table``, which this module never passes, so one
    registry per opset is shared, and only while this module exports. A torch without the
    private hook exports as before.
    """
    try:
        from torch.onnx._internal.exporter import _registration
        original = _registration.ONNXRegistry.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, KeyError, AttributeError):
        yield
        return

    def from_torchlib(cls, opset_version=None):
        if opset_version is None:  # torch's own default, whatever it is
            return build(cls)
        if opset_version not in _TORCHLIB_REGISTRIES:
            _TORCHLIB_REGISTRIES[opset_version] = build(cls, opset_version=opset_version)
        return _TORCHLIB_REGISTRIES[opset_version]

    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = original


def export_dynamo(module, args, target, input_names, output_names, dynamic):
    shapes = tuple({d: torch.export.Dim.DYNAMIC for d in dims} for dims in dynamic)
    with _shared_torchlib_registry():
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=target.opset, verbose=False,
            input_names=input_names, output_names=output_names, dynamic_shapes=shapes,
        )
    return program.model_proto


def export_example_shape(shape: Sequence[int], dynamic: Sequence[int]) -> tuple[int, ...]:
    """The example shape to export at with ``dynamic`` axes: a size of 1 on a dynamic axis
    becomes 2. ``torch.export`` (the dynamo exporter, ExecuTorch, LiteRT) specializes sizes 0
    and 1, and the TorchScript exporter may fold them into constants, so a batch-1 example
    (a user's most natural one) would export a static axis. The drawn shapes stay the case's."""
    return tuple(2 if axis in dynamic and size == 1 else size for axis, size in enumerate(shape))


def export_at_example(export: Callable, module: torch.nn.Module, shape: Sequence[int], dynamic: Sequence[int]):
    """``export(args, [dynamic])`` with the case's example shape taken as a hint, not a constraint.

    First at ``export_example_shape`` (a size of 1 on a dynamic axis exported at 2). When that
    fails, the axes the module cannot vary (a Conv's channels, which a registered strategy of
    shapes leaves dynamic by default; the dynamo exporter refuses a dynamic axis the model fixes,
    and a 1 there cannot become 2) are found by running the module with each dynamic axis
    doubled, and the export is made again with those axes static at the example's size.
    ``UnsupportedExport`` (the exporter refuses the opset) is raised at once."""
    first = export_example_shape(shape, dynamic)
    try:
        return export((torch.zeros(first),), [tuple(dynamic)])
    except UnsupportedExport:
        raise
    except Exception:
        fixed = fixed_axes(module, shape, dynamic)
        if not fixed:
            raise
    kept = tuple(axis for axis in dynamic if axis not in fixed)
    return export((torch.zeros(export_example_shape(shape, kept)),), [kept])


def fixed_axes(module: torch.nn.Module, shape: Sequence[int], dynamic: Sequence[int]) -> tuple[int, ...]:
    """The axes of ``dynamic`` that ``module`` cannot run at twice their size in ``shape`` (the
    others held), in eager mode; none when it cannot run at ``shape`` itself (nothing to learn)."""
    def runs(at) -> bool:
        try:
            with torch.no_grad(), quiet():
                module(torch.zeros(at))
            return True
        except Exception:  # any error of the module's own code: this shape is not one it takes
            return False

    module = module.eval()
    if not runs(tuple(shape)):
        return ()
    return tuple(axis for axis in dynamic
                 if not runs(tuple(2 * size if a == axis else size for a, size in enumerate(shape))))


def export(
    module: torch.nn.Module,
    args: Sequence[torch.Tensor],
    target: ExportTarget,
    *,
    dynamic: Sequence[Sequence[int]] = (),
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] = ("output",),
) -> onnx.ModelProto:
    """Export ``module`` (eval mode) and check the model carries the requested opset.

    ``dynamic[i]`` lists the dimensions of input i that stay symbolic. Raises
    ``UnsupportedExport`` when the exporter refuses the opset or silently returns another one.
    """
    fn = {"torchscript": _export_torchscript, "dynamo": export_dynamo}.get(target.exporter)
    if fn is None:
        raise ValueError(f"unknown exporter {target.exporter!r}; valid: {', '.join(EXPORTERS)}")
    module = module.eval()
    try:
        with quiet(), torch.no_grad():
            model = fn(module, tuple(args), target, list(input_names), list(output_names), list(dynamic))
    except Exception as exc:
        if "Unsupported onnx_opset_version" in str(exc):
            raise UnsupportedExport(f"the {target.exporter} exporter refuses opset {target.opset}") from None
        error = ExportError(f"{target.id}: export failed: {type(exc).__name__}: {exc}")
        error.error_type = type(exc).__name__
        raise error from exc
    got = model_opset(model)
    if got != target.opset:
        raise UnsupportedExport(
            f"the {target.exporter} exporter asked for opset {target.opset} returns an opset-{got} model"
        )
    return model


@functools.lru_cache(maxsize=None)
def support_verdict(target: ExportTarget) -> str | None:
    """None when ``target`` works, else the reason; probed once per session on a tiny model,
    and kept in the artifact cache (a dynamo probe is an export: ~1 s each). The exporter, opset,
    versions and this probing code decide the verdict, so they are its key."""
    from conformance.formats import artifact_cache, graph

    return artifact_cache.cached_verdict(
        ("export", target.exporter, target.opset, artifact_cache.versions("torch", "onnx", "onnxscript"),
         artifact_cache.source_digest(sys.modules[__name__], graph)), lambda: _probe(target))


def _probe(target: ExportTarget) -> str | None:
    probe = torch.nn.Sequential(torch.nn.ReLU())
    try:
        export(probe, (torch.zeros(2, 1, 3, 3),), target, dynamic=[(0, 2, 3)])
    except UnsupportedExport as exc:
        return str(exc)
    return None


class ExportCache:
    """Exports (or export failures) keyed by structure; one per session."""

    def __init__(self) -> None:
        self._models: dict[Hashable, onnx.ModelProto | Exception] = {}
        self.exports = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._models

    def get(self, key: Hashable, build: Callable[[], object]):
        """The artifact for ``key``, built once; a failed build is kept and raised again (a
        deterministic export error must not be paid for on every example)."""
        hit = self._models.get(key)
        if hit is None:
            try:
                hit = build()
                self.exports += 1
            except (UnsupportedExport, ExportError) as exc:
                hit = exc
            except Exception as exc:  # a runtime's own exporter (ExecuTorch, LiteRT) raises anything
                hit = ExportError(f"export failed: {type(exc).__name__}: {exc}")
                hit.error_type = type(exc).__name__
            self._models[key] = hit
        if isinstance(hit, Exception):
            raise hit
        return hit
