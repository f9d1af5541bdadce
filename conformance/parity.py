"""Running one parity example: reference, export (cached), every backend, comparison.

The data flow of ARCHITECTURE.md: a case and a drawn structure give a torch module; PyTorch
float32 computes the reference; the structure's export (cached) is bound to the drawn weights
and run on the backend; ``compare`` judges; on failure a float64 run says which side is wrong.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable

import numpy as np
import onnx
import torch

from conformance.backends.base import Backend, BackendError
from conformance.compare import CompareResult, compare, judge_with_oracle
from conformance.export import ExportCache, ExportTarget, export
from conformance.graph import bind_weights, weights_as_inputs
from conformance.record import Recorder
from conformance.reproducer import reproducer_dir, write_reproducer
from conformance.spec import Case
from conformance.strategies import InputRecipe, WeightRecipe


@dataclass(frozen=True)
class Target:
    """One backend under test, fed by one exporter at one opset."""

    backend: Backend
    export: ExportTarget

    @property
    def id(self) -> str:
        return f"{self.backend.name}-{self.export.id}"

    def __repr__(self) -> str:
        return f"Target({self.id})"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis' printer expands dataclasses
        printer.text(repr(self))


@dataclass(frozen=True)
class Example:
    """Everything drawn for one example (printed by hypothesis, enough to replay it)."""

    structure: Hashable
    weights: WeightRecipe
    inputs: InputRecipe
    feed: str  # "initializers" (weights baked in) or "inputs" (weights fed at run time)


@dataclass
class Outcome:
    case: Case
    target: Target
    example: Example
    result: CompareResult
    model: onnx.ModelProto  # what the backend ran (for reproducers)
    expected: list[np.ndarray] = field(default_factory=list)
    reproducer: str | None = None  # folder written for a failure
    fed_inputs: list[np.ndarray] = field(default_factory=list)  # all model inputs, weights included


def _torch_run(module: torch.nn.Module, arrays: list[np.ndarray], dtype=torch.float32) -> list[np.ndarray]:
    with torch.no_grad():
        out = module.to(dtype)(*(torch.from_numpy(a).to(dtype) for a in arrays))
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [o.numpy() for o in outs]


class Harness:
    """Session state: the export cache, prepared sessions, the tolerance."""

    def __repr__(self) -> str:
        return f"Harness(decimal={self.decimal})"

    def __init__(self, decimal: int = 3, *, recorder: Recorder | None = None,
                 reproducers: Path | None = None):
        self.decimal = decimal
        self.recorder = recorder if recorder is not None else Recorder()
        self.reproducers = reproducers  # where failures leave reproducers (None: nowhere)
        self.current_test = "?"  # the running test's node id (set by the plugin)
        # Optional per-case tolerance: (case, target) -> decimal or None (conformance.report sets it
        # from the checked-in overrides file).
        self.decimal_for = None
        self.exports = ExportCache()
        self._fed_sessions: dict[Hashable, object] = {}
        self._modules: dict[Hashable, torch.nn.Module] = {}

    def module_for(self, case: Case, structure: Hashable) -> torch.nn.Module:
        """The structure's torch module, built once (its init is overwritten by drawn weights)."""
        key = (case.name, structure)
        module = self._modules.get(key)
        if module is None:
            module = self._modules[key] = case.build(structure).eval()
        return module

    def export_for(self, case: Case, structure: Hashable, target: ExportTarget, module) -> onnx.ModelProto:
        """The structure's export, made once (``module`` gives the export its example weights)."""
        return self.exports.get((case.name, structure, target),
                                lambda: self._export(case, structure, target, module))

    @staticmethod
    def _export(case: Case, structure: Hashable, target: ExportTarget, module) -> onnx.ModelProto:
        args = (torch.zeros(case.example_shape(structure)),)
        return export(module, args, target, dynamic=[case.dynamic])

    def record(self, outcome: Outcome) -> None:
        """Count the example; a failure leaves a reproducer in the ONNX test-data layout."""
        self.recorder.add(self.current_test, outcome)
        if not outcome.result and self.reproducers is not None:
            folder = reproducer_dir(self.reproducers, self.current_test)
            outcome.reproducer = str(write_reproducer(folder, outcome.model, outcome.fed_inputs, outcome.expected))

    def run(self, case: Case, target: Target, example: Example) -> Outcome:
        module = self.module_for(case, example.structure)
        weights = example.weights.materialize(module)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
        x = example.inputs.materialize()
        expected = _torch_run(module, [x])
        model = None if case.bakes_weights else self.export_for(case, example.structure, target.export, module)
        bound = None if model is None else bind_weights(model, weights)
        if bound is None:  # the exporter folds or renames weights: export with these baked in
            bound = model = self.export_baked(case, example.structure, target.export, example.weights)
            feed = "initializers"
        else:
            feed = example.feed
        if feed == "inputs":
            ran, fed, actual = self._run_fed(case, target, example.structure, model, weights, x)
        else:
            ran, fed, actual = bound, [x], self._call(target.backend, bound, [x])
        decimal = (self.decimal_for(case, target) if self.decimal_for else None) or self.decimal
        result = self._judge(module, x, actual, expected, decimal)
        return Outcome(case, target, example, result, ran, expected, fed_inputs=fed)

    def export_baked(self, case: Case, structure: Hashable, target: ExportTarget,
                     recipe: WeightRecipe) -> onnx.ModelProto:
        """An export with ``recipe``'s weights baked in (cached per recipe): for cases whose
        exporter folds or renames weights, where one export cannot serve every weight draw."""
        def build():
            module = self.module_for(case, structure)
            weights = recipe.materialize(module)
            module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
            return self._export(case, structure, target, module)

        return self.exports.get((case.name, structure, target, recipe), build)

    def _run_fed(self, case, target, structure, model, weights, x):
        names = list(weights)
        key = (case.name, structure, target.export, target.backend.name)
        if key not in self._fed_sessions:  # one rewrite and one session per structure
            fed_model = weights_as_inputs(model, names)
            self._fed_sessions[key] = (fed_model, self._prepare(target.backend, fed_model))
        fed_model, session = self._fed_sessions[key]
        arrays = [x] + [weights[n] for n in names]
        return fed_model, arrays, self._run(target.backend, session, arrays)

    def _call(self, backend: Backend, model: onnx.ModelProto, arrays):
        return self._run(backend, self._prepare(backend, model), arrays)

    @staticmethod
    def _prepare(backend: Backend, model):
        try:
            return backend.prepare(model)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"{backend.name}: prepare raised {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _run(backend: Backend, session, arrays) -> list[np.ndarray]:
        try:
            return [np.asarray(o) for o in session.run(arrays)]
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"{backend.name}: run raised {type(exc).__name__}: {exc}") from exc

    def _judge(self, module, x, actual, expected, decimal: int) -> CompareResult:
        if len(actual) != len(expected):
            raise BackendError(f"backend returned {len(actual)} outputs, the reference has {len(expected)}")
        results = [compare(a, e, decimal) for a, e in zip(actual, expected)]
        worst = min(range(len(results)), key=lambda i: (results[i].ok, -results[i].max_abs))
        result = results[worst]
        # The float64 oracle is dear (no fast float64 kernels): run it for failures and for a
        # test's new worst pass, so reports carry each side's error for the closest call.
        if not result.shape_error and (not result.ok or self.recorder.is_new_worst(self.current_test, result)):
            oracle = _torch_run(copy.deepcopy(module), [x], dtype=torch.float64)[worst]
            judge_with_oracle(result, actual[worst], expected[worst], oracle)
        return result
