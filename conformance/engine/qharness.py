"""Running one quantized example: quantize (cached), fake-quant reference, runtime, verdict in steps.

A quantized example is a structure, its weights, a quantization recipe (calibration set,
per-tensor or per-channel weights) and an input recipe that may sit on rounding edges
(``conformance.draw.quantization``). Its artifact is quantized at the drawn input shape, as
mobile int8 models are (static shapes), and cached: PT2E costs 1-3 s, its dynamo export about
1 s, ExecuTorch's lowering ~10 s; ONNX Runtime's ``quantize_static`` ~20 ms. The disk cache keeps
them between runs, keyed by what decides their bytes: the float module (structure and weights),
the calibration arrays, the scheme (per channel, quantizer), the opset or the runtime's settings,
the versions, and the quantizing code itself.

The reference is the fake-quant model: onnx's reference evaluator on the QDQ file an ONNX runtime
is given (float64 deciding ties), the converted PT2E module in torch for a runtime that takes
the program itself (ExecuTorch). The verdict is ``qcompare`` (steps of the output's scale, and
bias); SQNR against the float32 module rides along.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Hashable

import numpy as np
import onnx
import torch

from conformance.backends.base import ProgramBackend
from conformance.draw.quantization import QuantExample
from conformance.draw.spec import Case
from conformance.draw.strategies import WeightRecipe
from conformance.engine.deadline import Deadline
from conformance.engine.harness import (ExampleError, Harness, Outcome, Target, WouldExport, load_program,
                                        prepare_model, run_session, torch_run)
from conformance.engine.qcompare import DEFAULT_QTOL, qcompare
from conformance.formats import artifact_cache as ac
from conformance.formats import onnx_export
from conformance.formats import quantize as q
from conformance.formats.onnx_export import ExportTarget, UnsupportedExport


@dataclass
class QuantArtifact:
    """What one quantization made: the runtime's artifact and its fake-quant reference."""

    model: onnx.ModelProto | None  # the QDQ file an ONNX runtime runs
    program: bytes | None  # a program runtime's artifact (ExecuTorch .pte)
    reference: Callable[[np.ndarray], list[np.ndarray]]
    reference64: Callable[[np.ndarray], list[np.ndarray]] | None
    input_q: q.QParams | None
    output_q: list[q.QParams]
    ops: list[str] = field(default_factory=list)


class QuantHarness:
    """Quantized examples on the run's ``Harness`` (its artifact cache and torch modules)."""

    def __init__(self, harness: Harness):
        self.harness = harness

    def float_module(self, case: Case, structure: Hashable, weights: WeightRecipe) -> torch.nn.Module:
        """A fresh float32 module of ``structure`` holding ``weights`` (quantizing traces it)."""
        module = case.build(structure).eval()
        values = weights.materialize(module)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in values.items()}, strict=False)
        return module

    def _key(self, case: Case, target: Target, example: QuantExample, what: str):
        return ("int8", what, case.name, example.structure, example.weights, example.quant, example.inputs.shape,
                target.export.exporter)

    def has_artifact(self, case: Case, target: Target, example: QuantExample) -> bool:
        return self._key(case, target, example, self._what(target)) in self.harness.exports

    @staticmethod
    def _what(target: Target) -> str:
        return target.backend.name if isinstance(target.backend, ProgramBackend) else "onnx"

    def artifact(self, case: Case, target: Target, example: QuantExample) -> QuantArtifact:
        """The example's quantized artifact, made once (``UnsupportedExport`` where the format
        cannot be made for this runtime, or leaves the output in float)."""
        key = self._key(case, target, example, self._what(target))
        return self.harness.exports.get(key, lambda: self._make(case, target, example))

    def _converted(self, case: Case, target: Target, example: QuantExample):
        """The PT2E-converted module, shared by the QDQ export and program runtimes."""
        def build():
            module = self.float_module(case, example.structure, example.weights)
            calibration = example.quant.calibration(example.inputs.shape, example.inputs.scale)
            return q.pt2e_quantize(module, calibration[0], calibration, per_channel=example.quant.per_channel,
                                   quantizer=quantizer)

        # A runtime may need its own quantizer's patterns (LiteRT's converter folds litert-torch's).
        quantizer = getattr(target.backend, "pt2e_quantizer", "xnnpack")
        return self.harness.exports.get(self._key(case, target, example, f"pt2e-module-{quantizer}"), build)

    def _make(self, case: Case, target: Target, example: QuantExample) -> QuantArtifact:
        fmt = target.export.exporter
        program = isinstance(target.backend, ProgramBackend)
        if fmt == q.ORT_STATIC:
            if program:
                raise UnsupportedExport(f"{target.backend.name} takes a torch program, not ONNX Runtime's QDQ file")
            return self._ort_static(case, example, target.export.opset)
        if program:
            return self._pt2e_program(case, target, example)
        return self._pt2e_qdq(case, target, example)

    def _pt2e_key(self, case: Case, target: Target, example: QuantExample) -> tuple:
        """What decides a PT2E artifact's bytes, besides the format (the disk cache's key)."""
        module = self.float_module(case, example.structure, example.weights)
        calibration = example.quant.calibration(example.inputs.shape, example.inputs.scale)
        return ("int8-pt2e", getattr(target.backend, "pt2e_quantizer", "xnnpack"), example.quant.per_channel,
                ac.module_fingerprint(module), ac.array_digest(calibration),
                ac.versions("torch", "torchao", "executorch", "litert-torch", "onnx", "onnxscript"),
                ac.source_digest(q, onnx_export))

    def _pt2e_qdq(self, case: Case, target: Target, example: QuantExample) -> QuantArtifact:
        """PT2E's QDQ file for an ONNX runtime; with the scales and ops the converted module
        reports beside it, a warm run neither quantizes nor exports."""
        def build():
            converted = self._converted(case, target, example)
            notes = _pt2e_notes(converted)
            if any(o is None for o in notes["outputs"]) or not notes["outputs"]:
                return None, notes  # nothing int8 to judge: refused below, and remembered
            calibration = example.quant.calibration(example.inputs.shape, example.inputs.scale)
            return q.qdq_from_pt2e(converted, calibration[0], target.export.opset), notes

        model, notes = ac.cached_onnx((*self._pt2e_key(case, target, example), target.export.opset), build)
        input_q, outputs, ops = _quantized(target, notes)
        reference = q.QdqReference(model)
        return QuantArtifact(model, None, reference.run, reference.run64, input_q, outputs, ops)

    def _pt2e_program(self, case: Case, target: Target, example: QuantExample) -> QuantArtifact:
        """PT2E's program for a runtime that takes one (ExecuTorch); the converted module is the
        reference, so it is made in every run, and only the lowering comes from the disk cache."""
        converted = self._converted(case, target, example)
        input_q, outputs, ops = _quantized(target, _pt2e_notes(converted))
        if not hasattr(target.backend, "export_int8"):
            raise UnsupportedExport(f"{target.backend.name} has no int8 path from a PT2E-quantized module here")
        calibration = example.quant.calibration(example.inputs.shape, example.inputs.scale)
        artifact = ac.cached_program(target.backend, self._pt2e_key(case, target, example), lambda: target.backend
                                     .export_int8(converted, (torch.from_numpy(calibration[0]),)))
        return QuantArtifact(None, artifact, lambda x: torch_run(converted, [x]),
                             _float64_via_qdq(converted, calibration[0]), input_q, outputs, ops)

    def _ort_static(self, case: Case, example: QuantExample, opset: int) -> QuantArtifact:
        module = self.float_module(case, example.structure, example.weights)
        calibration = example.quant.calibration(example.inputs.shape, example.inputs.scale)
        float_model = ac.onnx_export(module, (torch.from_numpy(calibration[0]),), ExportTarget("torchscript", opset),
                                     dynamic=[()])
        model, _ = ac.cached_onnx(("int8-ort", hashlib.sha256(float_model.SerializeToString()).hexdigest(),
                                   ac.array_digest(calibration), example.quant.per_channel,
                                   ac.versions("onnxruntime", "onnx"), ac.source_digest(q)),
                                  lambda: (q.ort_quantize(float_model, calibration,
                                                          per_channel=example.quant.per_channel), {}))
        input_q, outputs = q.onnx_qparams(model)
        ops = [n.op_type for n in model.graph.node]
        q.require_quantized(outputs, "onnxruntime's quantize_static", ops)
        reference = q.QdqReference(model)
        return QuantArtifact(model, None, reference.run, reference.run64, input_q, outputs, ops)

    def run(self, case: Case, target: Target, example: QuantExample, *, qtol: int = DEFAULT_QTOL,
            deadline: Deadline | None = None, allow_export: bool = True) -> Outcome:
        """Run one quantized example on ``target`` and judge it in steps (see the module doc)."""
        deadline = deadline or Deadline(None)
        if not allow_export and not self.has_artifact(case, target, example):
            raise WouldExport()
        art = self.artifact(case, target, example)
        iq = art.input_q
        x = example.inputs.materialize(*((iq.scale, iq.zero_point, iq.qmin, iq.qmax) if iq else ()))
        expected = _cached_reference(art, example.inputs, x)
        try:
            if art.program is not None:
                session = load_program(target.backend, art.program, deadline)
            else:
                session = prepare_model(target.backend, art.model, deadline)
            actual = run_session(target.backend, session, [x], deadline)
        except Exception as exc:
            raise ExampleError(exc, art.model, [x], expected) from exc
        floats = torch_run(self.float_module(case, example.structure, example.weights), [x])
        results = self._judge(target.backend.name, art, x, actual, expected, floats, qtol)
        index = min(range(len(results)), key=lambda i: (results[i].ok, -results[i].margin))
        outcome = Outcome(case, target, example, results[index], art.model, expected, actual, fed_inputs=[x],
                          worst_output=index)
        outcome.quantized = art  # the messages read scales and ops from it
        outcome.placement = getattr(session, "placement", None)  # which nodes ran as int8 kernels, and where
        return outcome

    @staticmethod
    def _judge(name: str, art: QuantArtifact, x, actual, expected, floats, qtol: int):
        """One ``QCompareResult`` per output (float64 rerun where float32 fails)."""
        if len(actual) != len(expected):
            from conformance.backends.base import BackendError

            raise ExampleError(BackendError(f"{name}: returned {len(actual)} outputs, the reference has {len(expected)}"),
                               art.model, [x], expected)
        results = [qcompare(a, e, p.scale, p.zero_point, qtol=qtol, float_output=f)
                   for a, e, p, f in zip(actual, expected, art.output_q, floats)]
        if art.reference64 is not None and not all(results):  # float64 decides the ties
            expected64 = art.reference64(x)
            results = [r if r else qcompare(a, e, p.scale, p.zero_point, qtol=qtol, expected64=e64, float_output=f)
                       for r, a, e, e64, p, f in zip(results, actual, expected, expected64, art.output_q, floats)]
        return results


#: The reference's outputs for recent (artifact, input) pairs: every runtime of a (case, format)
#: draws the same examples, and onnx's evaluator takes seconds on a model (numpy convolutions).
_REFERENCES: "OrderedDict[tuple, list[np.ndarray]]" = OrderedDict()
_REFERENCES_KEPT = 32


def _cached_reference(art: QuantArtifact, recipe, x: np.ndarray) -> list[np.ndarray]:
    key = (id(art), recipe)
    found = _REFERENCES.get(key)
    if found is None or found[0] is not art:
        found = _REFERENCES[key] = (art, art.reference(x))
        while len(_REFERENCES) > _REFERENCES_KEPT:
            _REFERENCES.popitem(last=False)
    return found[1]


def _pt2e_notes(converted) -> dict:
    """What a converted PT2E module says of itself (input and output scales, its ops), as JSON."""
    input_q, outputs = q.fx_qparams(converted)
    as_dict = lambda p: None if p is None else dataclasses.asdict(p)  # noqa: E731
    return {"input_q": as_dict(input_q), "outputs": [as_dict(o) for o in outputs],
            "ops": [str(n.target).split(".")[-2] for n in converted.graph.nodes if n.op == "call_function"]}


def _quantized(target: Target, notes: dict) -> tuple[q.QParams | None, list[q.QParams | None], list[str]]:
    """``(input, outputs, ops)`` of a PT2E module's notes; ``UnsupportedExport`` where an output
    is left in float."""
    def qparams(found):
        return None if found is None else q.QParams(**found)

    outputs = [qparams(o) for o in notes["outputs"]]
    q.require_quantized(outputs, "litert-torch's PT2EQuantizer" if getattr(target.backend, "pt2e_quantizer", "")
                        == "litert" else "XNNPACKQuantizer", notes["ops"])
    return qparams(notes["input_q"]), outputs, notes["ops"]


def _float64_via_qdq(converted, example: np.ndarray):
    """A float64 run of a converted PT2E module, which torch's quantize ops refuse: its QDQ
    export on onnx's reference evaluator in float64, made only when a verdict needs it (the
    evaluator on the QDQ file matches the module in float32 exactly where measured)."""
    made: list = []

    def run64(x: np.ndarray) -> list[np.ndarray]:
        if not made:
            made.append(q.QdqReference(q.qdq_from_pt2e(converted, example)))
        return made[0].run64(x)

    return run64

