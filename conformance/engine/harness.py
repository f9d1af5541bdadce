"""Running one parity example: reference, artifact (cached), runtime, comparison.

The suite's data flow (README, "Architecture"): a case and a drawn structure give a torch
module; PyTorch float32 computes the reference; the target's format turns the module into an
artifact (an ONNX export bound to the drawn weights, or a runtime's own program such as a
``.pte``), cached per structure (and per shape where the runtime needs it); the runtime runs it
under the case's deadline; ``compare`` judges. Every entry point runs examples through
``Harness.run``; ``conformance.engine.driver`` runs a case.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from typing import Hashable

import numpy as np
import onnx
import torch

from conformance.backends.base import Backend, BackendError, ProgramBackend
from conformance.engine.calls import _ProgramSession, load_program, prepare_model, run_session  # noqa: F401
from conformance.engine.compare import CompareResult, compare
from conformance.engine.deadline import Deadline
from conformance.engine.overlap import run_at_once, snapshot, written
from conformance.engine.references import References
from conformance.formats.onnx_export import (
    ExportCache,
    ExportTarget,
    UnsupportedExport,
    export_at_example,
)
from conformance.formats.artifact_cache import onnx_export, program_export
from conformance.formats.graph import bind_weights, weights_as_inputs
from conformance.draw.spec import Case
from conformance.draw.strategies import InputRecipe, WeightRecipe
from conformance.engine.values import Example, ExampleError, Outcome, Target, WouldExport  # noqa: F401

#: How the weights reach an ONNX runtime: baked in as initializers, or fed as graph inputs.
FEEDS = ("initializers", "inputs")


def _distinct_weights(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every floating parameter and buffer set to distinct positive values."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return module


def torch_run(module: torch.nn.Module, arrays: list[np.ndarray], dtype=torch.float32) -> list[np.ndarray]:
    with torch.no_grad():
        out = module.to(dtype)(*(torch.from_numpy(a).to(dtype) for a in arrays))
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [o.numpy() for o in outs]


class Harness:
    """Run state shared by every case: artifact caches, prepared sessions, the tolerance.

    ``tolerance_for(case_name, target, nodeid)`` may return a per-case decimal (the checked-in
    tolerance overrides); None keeps ``decimal``.
    """

    def __repr__(self) -> str:
        return f"Harness(decimal={self.decimal})"

    def __init__(self, decimal: int = 3, *, tolerance_for=None):
        self.decimal = decimal
        self.tolerance_for = tolerance_for
        self.exports = ExportCache()
        self._sessions: dict[Hashable, object] = {}  # prepared for the case running now
        self._fed_models: dict[Hashable, onnx.ModelProto] = {}  # exports taking their weights as inputs
        self._modules: dict[Hashable, torch.nn.Module] = {}
        self.references = References()  # PyTorch's outputs, shared by the runtimes of an example
        self._draw_seed: int | None = None

    def draw_seed(self) -> int:
        """This run's seed of the drawn examples (``--hypothesis-seed`` when given, else random
        once per run): each (case, format) mixes it with its key, so every runtime of the run
        draws the same examples and another run draws others."""
        if self._draw_seed is None:
            import random

            from conformance.private_apis import forced_seed

            forced = forced_seed()
            self._draw_seed = forced if forced is not None else random.getrandbits(32)
        return self._draw_seed

    def decimal_of(self, case: Case, target: Target, nodeid: str) -> int:
        found = self.tolerance_for(case.name, target, nodeid) if self.tolerance_for else None
        return self.decimal if found is None else found

    def module_for(self, case: Case, structure: Hashable) -> torch.nn.Module:
        """The structure's torch module, built once (its init is overwritten by drawn weights)."""
        key = (case.name, structure)
        module = self._modules.get(key)
        if module is None:
            module = self._modules[key] = case.build(structure).eval()
        return module

    def onnx_model_for(self, case: Case, structure: Hashable, export_target: ExportTarget,
                       recipe: WeightRecipe) -> onnx.ModelProto:
        """The structure's ONNX export from the shared cache, bound to ``recipe``'s weights (for a
        case whose exporter folds weights, an export with them baked in): what the parity cases
        run, for the suite's self-checks and the latency cases."""
        module = self.module_for(case, structure)
        weights = recipe.materialize(module)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
        example = Example(structure, recipe, InputRecipe(case.example_shape(structure), "unit", "uniform", 0, 0),
                          "initializers")
        return self._deployed(case, Target(Backend(), export_target), example, module, weights)[1]

    def localize(self, outcome: Outcome, *, deadline: Deadline | None = None, wrap=None):
        """The per-layer error profile of a failing ONNX outcome (``conformance.localize.onnx_graph``): the
        deployed model (weights as initializers) run with every intermediate marked, each layer
        against its PyTorch module's output, suspects rerun alone on the reference's inputs.
        ``wrap(session)`` gives the session the runs go through (the diagnosis' failing condition)."""
        wrap = wrap or (lambda session: session)
        from conformance.localize.onnx_graph import localize

        case, target, example = outcome.case, outcome.target, outcome.example
        module = self.module_for(case, example.structure)
        weights = example.weights.materialize(module)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
        if isinstance(target.backend, ProgramBackend):
            return self._localize_program(target.backend, module, outcome, deadline, wrap)
        _, bound, _ = self._deployed(case, target, example, module, weights)
        return localize(bound, outcome.fed_inputs[:1], lambda m: wrap(prepare_model(target.backend, m, deadline)),
                        module=module, decimal=outcome.result.decimal)

    @staticmethod
    def _localize_program(backend: ProgramBackend, module, outcome: Outcome, deadline: Deadline | None, wrap):
        """Each layer exported alone through the program runtime (``conformance.localize.program``)."""
        from conformance.localize.program import localize_program

        def export_and_load(leaf, args):
            dynamic = None if backend.per_shape else [() for _ in args]  # static: the shape it saw
            artifact = backend.export(leaf, args, dynamic)  # in this thread, as the cases' exports
            return wrap(_ProgramSession(backend, load_program(backend, artifact, deadline), deadline))

        return localize_program(module, outcome.fed_inputs[:1], export_and_load, decimal=outcome.result.decimal)

    def has_artifact(self, case: Case, target: Target, example: Example) -> bool:
        """True when running ``example`` needs no new export (what shrinking may try)."""
        return self._artifact_key(case, target, example) in self.exports

    def _artifact_key(self, case: Case, target: Target, example: Example):
        if isinstance(target.backend, ProgramBackend):
            static = target.backend.per_shape or example.deployment.static
            shape = example.inputs.shape if static else None
            return (case.name, example.structure, target.backend.name, shape, example.weights)
        static = ("static", example.inputs.shape) if example.deployment.static else ()
        if case.bakes_weights:
            return (case.name, example.structure, target.export, example.weights, *static)
        return (case.name, example.structure, target.export, *static)

    def run(self, case: Case, target: Target, example: Example, *, decimal: int | None = None,
            deadline: Deadline | None = None, allow_export: bool = True) -> Outcome:
        """Run one example on ``target``: one prepared session, run on each of the deployment's
        inputs in turn (same shape, other values), each compared; the worst run is the outcome.
        ``ExampleError`` when the exporter or runtime fails; ``WouldExport`` when not allowed to."""
        deadline = deadline or Deadline(None)
        if not allow_export and not self.has_artifact(case, target, example):
            raise WouldExport()
        module = self.module_for(case, example.structure)
        weights = example.weights.materialize(module)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
        decimal = self.decimal if decimal is None else decimal
        worst: Outcome | None = None
        prepared = None
        deployment = example.deployment
        for run_index, recipe in enumerate(deployment.inputs(example.inputs)):
            x = recipe.materialize()
            expected = self._reference(case, example, recipe, module, x)
            trail = {"model": None, "inputs": [x]}  # what the runtime was given, for a reproducer
            with _as_example_error(trail, expected):
                if prepared is None:
                    prepared = self._prepare(case, target, example, module, weights, x, deadline, trail)
                model, session, arrays_for = prepared
                arrays = deployment.lay_out(arrays_for(x))
                trail.update(model=model, inputs=arrays)
                kept = snapshot(arrays)
                actual = run_session(target.backend, session, arrays, deadline)
            outcome = self._judge(case, target, example, weights, x, expected, actual, arrays, kept, decimal,
                                  model=model, run_index=run_index)
            worst = _worse(worst, outcome)
        for outcome in self._overlapped(case, target, example, module, weights, prepared, decimal, deadline):
            worst = _worse(worst, outcome)
        worst.placement = getattr(prepared[1], "placement", None)  # read only for the outcome reported
        return worst

    def _judge(self, case, target, example, weights, x, expected, actual, arrays, kept, decimal, *, model,
               run_index, overlap="") -> Outcome:
        """One run's outcome: its worst output against the reference, or, where the run wrote into
        an input it was handed, that input against its copy from before the run (a failure of
        its own, whatever the outputs)."""
        if len(actual) != len(expected):
            error = BackendError(f"{target.backend.name}: returned {len(actual)} outputs, "
                                 f"the reference has {len(expected)}")
            raise ExampleError(error, model, kept, expected)
        index, results = compare_outputs(actual, expected, decimal)
        result, changed = results[index], written(arrays, kept)
        if changed:
            result = dataclasses.replace(compare(np.asarray(arrays[changed[0]]), kept[changed[0]], decimal), ok=False)
        oracle_input = (case, example.structure, weights, x)
        return Outcome(case, target, example, result, model, expected, actual, fed_inputs=kept,
                       oracle=lambda args=oracle_input: self._oracle(*args), worst_output=index,
                       run_index=run_index, wrote_inputs=tuple(changed), overlap=overlap)

    def _overlapped(self, case, target, example, module, weights, prepared, decimal, deadline) -> list[Outcome]:
        """The deployment's callers at once (``conformance.engine.overlap``), each on its own input,
        on the prepared session and (with two sessions) one more of the same model; each judged."""
        deployment = example.deployment
        recipes = deployment.overlap_inputs(example.inputs)
        at_once = getattr(target.backend, "runs_at_once", "sessions")
        if not recipes or prepared is None or at_once == "none":
            return []
        # A runtime that does not document its sessions as thread-safe gets one per caller.
        n_sessions = deployment.sessions if at_once == "session" else len(recipes)
        xs = [r.materialize() for r in recipes]
        expected = [self._reference(case, example, r, module, x) for r, x in zip(recipes, xs)]
        model, session, arrays_for = prepared
        feeds = [deployment.lay_out(arrays_for(x)) for x in xs]
        kept = [snapshot(feed) for feed in feeds]
        trail = {"model": model, "inputs": kept[0]}
        with _as_example_error(trail, expected[0]):
            sessions = [session] + [self._prepare(case, target, example, module, weights, xs[0], deadline, trail,
                                                  fresh=True)[1] for _ in range(n_sessions - 1)]
            actual = run_at_once(lambda s, feed: run_session(target.backend, s, feed, deadline), sessions, feeds)
        where = "one prepared session" if len(sessions) == 1 else f"{len(sessions)} sessions of the model"
        return [self._judge(case, target, example, weights, xs[i], expected[i], actual[i], feeds[i], kept[i],
                            decimal, model=model, run_index=deployment.runs + i,
                            overlap=f"caller {i + 1} of {len(xs)} running at once on {where}")
                for i in range(len(xs))]

    def fresh_session(self, outcome: Outcome, backend: Backend | None = None, deadline: Deadline | None = None):
        """``(session, arrays_for)``: ``outcome``'s artifact prepared anew (nothing run before
        carries over) on ``backend``, a variant of its runtime (its own runtime by default);
        ``arrays_for(x)`` gives the arrays a run on input ``x`` takes."""
        case, example = outcome.case, outcome.example
        target = outcome.target if backend is None else Target(backend, outcome.target.export)
        module = self.module_for(case, example.structure)
        weights = example.weights.materialize(module)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
        x = example.inputs.materialize()
        _, session, arrays_for = self._prepare(case, target, example, module, weights, x, deadline, {}, fresh=True)
        return session, arrays_for

    def _reference(self, case: Case, example: Example, recipe, module, x: np.ndarray) -> list[np.ndarray]:
        """PyTorch's float32 outputs for ``module`` (holding ``example``'s weights) on ``x``, made
        by ``recipe``: computed once and shared by the runtimes that draw the same example."""
        key = (case.name, example.structure, example.weights, recipe)
        return self.references.get(key, lambda: torch_run(module, [x]))

    def _oracle(self, case: Case, structure: Hashable, weights: dict, x: np.ndarray) -> list[np.ndarray]:
        """The module in float64 on the same weights and input (no fast float64 kernels: dear,
        so the driver asks for it once per test, on its closest pass or its final failure)."""
        module = copy.deepcopy(self.module_for(case, structure))
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
        return torch_run(module, [x], dtype=torch.float64)

    def _prepare(self, case, target, example, module, weights, x, deadline, trail, fresh=False):
        """(model run, session, arrays_for(x)): the artifact, prepared once for the example
        (``fresh``: a session of its own, never one kept from earlier examples)."""
        if isinstance(target.backend, ProgramBackend):
            return None, self._prepare_program(case, target, example, module, x, deadline, fresh), lambda x: [x]
        return self._prepare_onnx(case, target, example, module, weights, x, deadline, trail, fresh)

    # ONNX runtimes -------------------------------------------------------------------------

    def _deployed(self, case, target, example, module, weights):
        """(the structure's export, the model with ``weights`` as initializers, whether weights
        can be swapped into the export). Where the exporter folded or renamed a weight the model
        is exported again with these weights baked in."""
        model = self._onnx_model(case, target, example, module)
        bound = None if case.bakes_weights else bind_weights(model, weights)
        if bound is not None:
            return model, bound, True
        if case.bakes_weights:  # the structure's export already holds these weights
            return model, model, False
        key = (*self._artifact_key(case, target, example), example.weights)
        return model, self.exports.get(key, lambda: self._export(module, case, target, example)), False

    def _prepare_onnx(self, case, target, example, module, weights, x, deadline, trail: dict, fresh=False):
        model, bound, swappable = self._deployed(case, target, example, module, weights)
        if swappable and example.feed == "inputs":
            names = list(weights)
            fed_key = self._artifact_key(case, target, example)
            if fed_key not in self._fed_models:
                self._fed_models[fed_key] = weights_as_inputs(model, names)
            fed_model = self._fed_models[fed_key]
            trail["model"] = fed_model
            session = self._session(("fed", target.id, *self._artifact_key(case, target, example)),
                                    target.backend, fed_model, deadline, fresh=fresh)
            return fed_model, session, lambda x: [x] + [weights[n] for n in names]
        trail["model"] = bound
        session = prepare_model(target.backend, bound, deadline)  # weights baked in: one per draw
        return bound, session, lambda x: [x]

    def _onnx_model(self, case: Case, target: Target, example: Example, module) -> onnx.ModelProto:
        # A swappable export is made from a module whose every weight is distinct: drawn (or
        # default) weights may hold equal tensors (all-zero biases, BatchNorm's ones), which the
        # exporter merges into one initializer behind Identity nodes; later draws could then
        # not be bound and each would cost an export of its own.
        source = module if case.bakes_weights else _distinct_weights(case.build(example.structure).eval())
        return self.exports.get(self._artifact_key(case, target, example),
                                lambda: self._export(source, case, target, example))

    @staticmethod
    def _export(module, case: Case, target: Target, example: Example) -> onnx.ModelProto:
        """Dynamic axes at the case's example shape, or (a static deployment) every dim fixed
        at the drawn shape, as mobile exports (the tutorial's too) are made."""
        if example.deployment.static:
            return onnx_export(module, (torch.zeros(example.inputs.shape),), target.export, dynamic=[()])
        return export_at_example(lambda args, dynamic: onnx_export(module, args, target.export, dynamic=dynamic),
                                 module, case.example_shape(example.structure), case.dynamic)

    # Runtimes that take a torch program --------------------------------------------------

    def _prepare_program(self, case, target, example, module, x, deadline, fresh=False):
        backend: ProgramBackend = target.backend
        key = self._artifact_key(case, target, example)
        if backend.per_shape or example.deployment.static:  # a program for the drawn shape alone
            artifact = self.exports.get(key, lambda: program_export(backend, module, (torch.zeros(x.shape),), None))
        else:
            artifact = self.exports.get(key, lambda: export_at_example(
                functools.partial(program_export, backend, module), module, case.example_shape(example.structure),
                case.dynamic))
        return self._session(("program", key), backend, artifact, deadline, load=True, fresh=fresh)

    # Sessions, each call under the case's deadline -----------------------------------------

    def release_sessions(self) -> int:
        """Drop every prepared session; returns how many. A case's sessions live as long as the
        case: a runtime keeps the working memory of the largest input it ran (ONNX Runtime's
        arena, ncnn's and MNN's pools), so sessions kept for the whole run grew a run over eight
        runtimes past 24 GB once its frame cases had run. The artifacts stay cached."""
        count = len(self._sessions)
        self._sessions.clear()  # dropped, not closed: a session is freed with its last reference
        return count

    def _session(self, key, backend: Backend, artifact, deadline: Deadline, *, load: bool = False,
                 fresh: bool = False):
        if fresh:  # a session of its own: neither taken from nor kept in the cache
            return load_program(backend, artifact, deadline) if load else prepare_model(backend, artifact, deadline)
        if key not in self._sessions:
            self._sessions[key] = (load_program(backend, artifact, deadline) if load
                                   else prepare_model(backend, artifact, deadline))
        return self._sessions[key]


def _worse(worst: Outcome | None, outcome: Outcome) -> Outcome:
    """The worse of two outcomes: a failure before a pass, then the larger error."""
    if worst is None or outcome.result.severity < worst.result.severity:
        return outcome
    return worst


@contextlib.contextmanager
def _as_example_error(trail: dict, expected):
    """A runtime's or exporter's failure as an ``ExampleError`` carrying what it was given."""
    try:
        yield
    except UnsupportedExport:
        raise  # this format cannot be made here: the case is skipped with the reason
    except Exception as exc:
        raise ExampleError(exc, trail["model"], trail["inputs"], expected) from exc


def compare_outputs(actual, expected, decimal: int) -> tuple[int, list[CompareResult]]:
    """Every output compared; returns the index of the worst one (a failure before any pass)."""
    results = [compare(a, e, decimal) for a, e in zip(actual, expected)]
    worst = min(range(len(results)), key=lambda i: results[i].severity)
    return worst, results
