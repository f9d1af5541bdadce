"""Parity of one ONNX file: reference backend vs backend under test, on drawn inputs.

The reference is onnx's evaluator as a float64 oracle (``conformance.backends.onnx_reference``)
unless told otherwise (there is no PyTorch module to compare with); its outputs are computed
once per drawn input and reused by every backend and shrink step. Where a second, independent
reference is at hand (ONNX Runtime with its optimizations off, ``second``), a backend that
fails is only blamed when the second reference agrees with the first on that input: when they
disagree, the reference is uncertain there and the example is left out, said, and counted.
Sessions are prepared once per (model, backend); every call to a backend goes through the
case's ``Deadline`` so a hanging backend fails the case instead of the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx

from conformance.backends.base import Backend, BackendError
from conformance.engine.deadline import Deadline
from conformance.byom.feeds import FeedRecipe, feeds
from conformance.byom.model_file import ModelError, load_model
from conformance.byom.onnx_inputs import (DEFAULT_MAX_ELEMENTS, check_size, read_inputs,
                                          resolve_ranges)
from conformance.engine.compare import CompareResult
from conformance.engine.harness import compare_outputs, prepare_model, run_session


class CannotJudge(Exception):
    """The reference cannot judge the backend on this example: it is left out and counted."""


class NonFiniteReference(CannotJudge):
    """The reference produced NaN or Inf for this example."""


class UncertainReference(CannotJudge):
    """The two references disagree on this example."""

#: Drawn inputs whose reference outputs are kept (shrinking and other backends reuse them).
REFERENCE_CACHE = 64


@dataclass(frozen=True)
class FileExport:
    """Stands where a torch export target stands in records: the file is the export."""

    opset: int
    exporter: str = "onnx-file"

    @property
    def id(self) -> str:
        return f"file-opset{self.opset}"


@dataclass(frozen=True)
class FileTarget:
    """The backend under test, fed the model file as it is."""

    backend: Backend
    export: FileExport

    @property
    def id(self) -> str:
        return self.backend.name


@dataclass(frozen=True)
class FileCase:
    name: str
    kind: str = "onnx-file"


@dataclass
class FileOutcome:
    """One example's verdict, shaped like ``conformance.engine.harness.Outcome`` for the recorder."""

    case: FileCase
    target: FileTarget
    example: FeedRecipe
    result: CompareResult
    model: onnx.ModelProto
    inputs: list[np.ndarray]
    expected: list[np.ndarray]
    output: str  # the name of the worst output
    reproducer: str | None = None
    localization: str = ""  # the first diverging layer, once the failure is localized

    @property
    def fed_inputs(self) -> list[np.ndarray]:
        return self.inputs


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset, 0 when the model imports none (a pure ai.onnx.ml model)."""
    return next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), 0)


def _numeric_tensor(value: onnx.ValueInfoProto) -> bool:
    if value.type.WhichOneof("value") != "tensor_type":
        return False
    elem = value.type.tensor_type.elem_type
    return elem not in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED)


def _imports(model: onnx.ModelProto) -> str:
    return ", ".join(f"{e.domain or 'ai.onnx'} {e.version}" for e in model.opset_import)


@dataclass
class ModelCheck:
    """A loaded, validated model with its input specs, ready to run examples on backends."""

    path: Path
    reference: Backend
    dims: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    max_elements: int = DEFAULT_MAX_ELEMENTS
    decimal: int = 3
    second: Backend | None = None  # an independent second reference (None: the first alone)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.model = load_model(self.path)
        try:
            self.specs = read_inputs(self.model)
            self.ranges = resolve_ranges(self.specs, self.dims)
            check_size(self.specs, self.ranges, self.max_elements)
        except ModelError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        self.outputs = [o.name for o in self.model.graph.output]
        # Sequences, maps and string tensors (a classifier's ZipMap, labels) have no tolerance.
        self.compared = [i for i, o in enumerate(self.model.graph.output) if _numeric_tensor(o)]
        if not self.compared:
            raise ModelError(f"{self.path}: no output is a numeric tensor; nothing to compare")
        self.ignored = [self.outputs[i] for i in range(len(self.outputs)) if i not in self.compared]
        self.case = FileCase(self.path.stem)
        # A quantized model (QDQ or QOperator) is judged in steps of each int8 output's scale.
        from conformance.formats.quantize import quantized_outputs

        self.steps = quantized_outputs(self.model)
        self._sessions: dict[int, object] = {}
        self._computed: dict[tuple[int, FeedRecipe], list[np.ndarray]] = {}

    def strategy(self):
        """Hypothesis strategy of ``FeedRecipe`` for this model."""
        return feeds(self.specs, self.ranges)

    def target(self, backend: Backend) -> FileTarget:
        return FileTarget(backend, FileExport(default_opset(self.model)))

    def session(self, backend: Backend, deadline: Deadline):
        """``backend``'s session for the model, prepared once (under the deadline)."""
        if id(backend) not in self._sessions:
            try:
                session = prepare_model(backend, self.model, deadline)
            except BackendError as exc:
                raise BackendError(f"{exc} (the model imports {_imports(self.model)})",
                                   cause=exc.__cause__ or exc) from None
            self._sessions[id(backend)] = session
        return self._sessions[id(backend)]

    def prepare_reference(self, seconds: float | None) -> None:
        """Prepare the reference once, on its own budget, so no case pays for it (or for a cold
        start under load) out of its ``--case-timeout``."""
        try:
            self.session(self.reference, Deadline(seconds))
        except BackendError as exc:
            raise ModelError(f"{self.path}: the reference cannot prepare the model: {exc}") from None

    def run(self, backend: Backend, arrays: list[np.ndarray], deadline: Deadline) -> list[np.ndarray]:
        """``backend``'s outputs for ``arrays``; BackendError names the backend and the step."""
        return run_session(backend, self.session(backend, deadline), arrays, deadline)

    def reference_notes(self) -> list[str]:
        """What the reference did to the model (opset conversion, precision), once prepared."""
        session = self._sessions.get(id(self.reference))
        return list(getattr(session, "notes", []) or [])

    def _once(self, backend: Backend, recipe: FeedRecipe, compute) -> list[np.ndarray]:
        """``compute()`` for (``backend``, ``recipe``), kept for the next backend or shrink step."""
        key = (id(backend), recipe)
        if key not in self._computed:
            if len(self._computed) >= REFERENCE_CACHE:
                self._computed.pop(next(iter(self._computed)))
            self._computed[key] = compute()
        return self._computed[key]

    def reference_outputs(self, arrays: list[np.ndarray], deadline: Deadline) -> list[np.ndarray]:
        """The reference's outputs; ModelError when the reference cannot run the model at all."""
        try:
            expected = self.run(self.reference, arrays, deadline)
        except BackendError as exc:
            raise ModelError(f"{self.path}: the reference cannot run the model: {exc}") from None
        for i in self.compared:
            name, out = self.outputs[i], np.asarray(expected[i])
            if out.dtype.kind in "fc" and not np.isfinite(out).all():
                bad = int(np.count_nonzero(~np.isfinite(out)))
                raise NonFiniteReference(
                    f"the reference ({self.reference.name}) gives {bad} NaN/Inf of {out.size} "
                    f"elements in output {name!r}")
        return expected

    def localize(self, backend: Backend, outcome: FileOutcome, deadline: Deadline):
        """The per-layer error profile of a failing example (``conformance.localize.onnx_graph``): every
        intermediate on ``backend`` against the reference backend's, suspects rerun alone."""
        from conformance.localize.onnx_graph import localize

        return localize(self.model, outcome.inputs, lambda m: prepare_model(backend, m, deadline),
                        reference=lambda m: prepare_model(self.reference, m, deadline), decimal=self.decimal,
                        first_only=True)

    def run_example(self, backend: Backend, recipe: FeedRecipe, deadline: Deadline) -> FileOutcome:
        """Reference and backend on one drawn example, compared output by output; a failure the
        second reference shares with the backend (the references disagree) is ``UncertainReference``."""
        arrays = recipe.materialize()
        expected = self._once(self.reference, recipe, lambda: self.reference_outputs(arrays, deadline))
        if len(expected) != len(self.outputs):
            raise ModelError(f"{self.path}: the reference returned {len(expected)} outputs, "
                             f"the model declares {len(self.outputs)}")
        actual = self.run(backend, arrays, deadline)
        if len(actual) != len(expected):
            raise BackendError(f"{backend.name} returned {len(actual)} outputs, the model declares {len(expected)}")
        k, results = self._compare(actual, expected)
        if not results[k]:
            self._second_opinion(recipe, arrays, expected, deadline)
        # compared in float64; kept in the declared types (the reproducer's output_N.pb)
        kept = [self._declared(i, expected[i]) for i in self.compared]
        return FileOutcome(self.case, self.target(backend), recipe, results[k], self.model,
                           arrays, kept, self.outputs[self.compared[k]])

    def _declared(self, index: int, array) -> np.ndarray:
        array = np.asarray(array)
        elem = self.model.graph.output[index].type.tensor_type.elem_type
        if array.dtype.kind != "f" or not elem:
            return array
        return array.astype(onnx.helper.tensor_dtype_to_np_dtype(elem), copy=False)

    def _second_opinion(self, recipe: FeedRecipe, arrays, expected, deadline: Deadline) -> None:
        """Raise ``UncertainReference`` when the second reference is off from the first too."""
        if self.second is None:
            return
        try:
            other = self._once(self.second, recipe, lambda: self.run(self.second, arrays, deadline))
        except BackendError:
            return  # it cannot run the model: the first reference judges alone
        if len(other) != len(expected):
            return
        k, results = self._compare(other, expected)
        if not results[k]:
            raise UncertainReference(
                f"the reference is uncertain here: {self.reference.name} and {self.second.name} disagree on "
                f"output {self.outputs[self.compared[k]]!r} by {results[k].max_abs:.3g}")

    def _compare(self, actual, expected) -> tuple[int, list[CompareResult]]:
        """Each compared output at decimal-N, or in quantization steps (``qtol`` 1) where it is int8."""
        if not self.steps:
            return compare_outputs([actual[i] for i in self.compared], [expected[i] for i in self.compared],
                                   self.decimal)
        from conformance.engine.compare import compare
        from conformance.engine.qcompare import qcompare

        results = [qcompare(np.asarray(actual[i], np.float64), np.asarray(expected[i], np.float64),
                            self.steps[i].scale, self.steps[i].zero_point) if i in self.steps
                   else compare(actual[i], expected[i], self.decimal) for i in self.compared]
        worst = min(range(len(results)), key=lambda j: (results[j].ok, -results[j].margin))
        return worst, results


def failure_message(outcome: FileOutcome, reference: str) -> str:
    """One screen: which model, backend, output, example, error, and where the reproducer is."""
    r = outcome.result
    lines = [
        f"{outcome.case.name} on {outcome.target.backend.name} (reference {reference}): "
        + (f"int8 parity fails ({r.failed_rule}, in steps of the output's scale) on output {outcome.output!r}"
           if hasattr(r, "qtol") else f"parity fails at decimal={r.decimal} on output {outcome.output!r}"),
        f"  example: {outcome.example.describe()}",
        f"  {r.summary()}",
    ]
    if outcome.localization:
        lines.append(f"  {outcome.localization}")
    if outcome.reproducer:
        lines.append(f"  reproducer: {outcome.reproducer}  (conformance replay DIR)")
    return "\n".join(lines)


def describe_path(path: str | os.PathLike) -> str:
    """A short id for a model path (its stem, as test ids and reports use)."""
    return Path(path).stem
