"""Where a failing model first goes wrong: a per-layer error profile and the first diverging layer.

1. Every intermediate of the ONNX model becomes a graph output (``subgraphs.mark_all``) and the
   runtime under test runs it once.
2. The reference for each intermediate is PyTorch's: the matching module's output from forward
   hooks (``layermap``). Intermediates no module produced (a top-level ``x + y``, plumbing) are
   computed by a reference runtime (numpy's ``onnx.reference`` by default) from the reference's
   own inputs to that node. A bare ONNX model, with no torch module, is run whole on the
   reference runtime.
3. Each node whose output is over the tolerance is a suspect, and runs alone on the runtime
   under test, fed the reference's inputs to it (in the model's declared types), against the
   float64 oracle of the node on those same inputs (``conformance.backends.onnx_reference``). The
   first that is off by more than the tolerance plus what float32 rounding explains
   (``conformance.localize.rounding``) is the first diverging layer; later suspects that pass
   alone only inherited the error from upstream. Two float32 kernels that differ by their
   summation order are not a fault of either.

Comparisons use ``compare.compare`` at the suite's decimal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import onnx

from conformance.engine.compare import compare, tolerance
from conformance.localize.layermap import map_nodes, name_by_order, record_module_outputs
from conformance.localize.subgraphs import (
    constant_outputs, has_subgraph, mark_all, output_names, reference_prepare, single_node_model, value_types,
)

Prepare = Callable[[onnx.ModelProto], object]  # model -> session with run(list[np.ndarray]) -> list


class LocalizationError(Exception):
    """The runtime cannot run the model with its intermediates marked (one clear line)."""


#: ``Localization.reference`` of a profile made by exporting each layer alone through a program
#: runtime (``localize_program``): it has no errors of the layers inside the whole program.
EACH_LAYER_ALONE = "torch (each layer exported alone)"


@dataclass
class LayerError:
    """One node's output on the runtime against the reference, in the full model and alone."""

    layer: str  # the module path when a module made it, else the ONNX node name
    module: str | None  # the torch module path (None for a node no module produced, or a bare model)
    node: str  # the ONNX node name
    op_type: str
    max_abs: float  # in the full model (errors from upstream included)
    share: float  # max_abs as a share of the tolerance (1.0 = at the limit)
    isolated: float | None = None  # max abs error alone on the reference's inputs (suspects only)
    tolerance: float = field(default=tolerance(3), repr=False)
    excess: float | None = None  # alone: the largest error beyond what float32 rounding explains
    explained: float = 0.0  # alone: the rounding float32 explains where the excess is largest

    @property
    def diverges(self) -> bool:
        """True when the node is wrong on its own: off from the float64 oracle by more than the
        tolerance plus float32 rounding (without an oracle: its isolated error past tolerance)."""
        if self.isolated is None:
            return False
        return not (self.isolated if self.excess is None else self.excess) < self.tolerance

    @property
    def verdict(self) -> str:
        if self.isolated is None:
            return "within tolerance" if self.share < 1 else "not run alone"
        return "wrong alone" if self.diverges else "right alone (inherited error)"


@dataclass
class Localization:
    """The per-layer error profile of one model on one runtime; truthy when nothing diverges."""

    layers: list[LayerError]
    decimal: int
    reference: str  # "torch" or "reference runtime"
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.first_over is None

    @property
    def tolerance(self) -> float:
        return tolerance(self.decimal)

    @property
    def first_diverging(self) -> LayerError | None:
        """The first layer that is wrong on the reference's own inputs."""
        return next((layer for layer in self.layers if layer.diverges), None)

    @property
    def first_over(self) -> LayerError | None:
        """The first layer over the tolerance in the full model."""
        return next((layer for layer in self.layers if layer.share >= 1), None)

    def as_record(self, plot: str = "") -> dict:
        """The profile as the record keeps it (``CaseRecord.localization``)."""
        first = self.first_diverging
        return {
            "describe": self.describe(), "plot": plot, "reference": self.reference,
            "seconds": round(self.seconds, 3), "first_diverging": first.layer if first else None,
            "layers": [{"layer": x.layer, "node": x.node, "op_type": x.op_type, "max_abs": x.max_abs,
                        "share": x.share, "isolated": x.isolated, "excess": x.excess, "explained": x.explained,
                        "verdict": x.verdict} for x in self.layers],
        }

    def describe(self) -> str:
        """One line for a failure message."""
        first = self.first_diverging
        if first is not None:
            where = f"{first.op_type} {first.node}" if first.node else first.op_type
            rounding = f" (float32 rounding explains {first.explained:.2g} there)" if first.explained else ""
            return (f"first diverging layer: {first.layer} ({where}): "
                    f"max abs error {first.isolated:.3g} alone on the reference's inputs{rounding}")
        over = self.first_over
        if over is None and self.reference == EACH_LAYER_ALONE:
            return (f"no layer is wrong alone ({len(self.layers)} exported alone through the runtime, each within "
                    f"tolerance {self.tolerance:.3g}): a fault of the program as a whole (fusion, memory planning)")
        if over is None:
            return f"no diverging layer: every intermediate within tolerance {self.tolerance:.3g}"
        return (f"first layer over tolerance: {over.layer} ({over.op_type} {over.node}): max abs error "
                f"{over.max_abs:.3g} in the full model, but no layer is wrong alone beyond float32 rounding "
                f"(a fault of the graph as a whole: fusion, memory planning; or rounding that grows along the graph)")


def max_abs_error(actual, expected, decimal: int = 3) -> float:
    """``compare(actual, expected, decimal).max_abs`` in one pass when both are finite (the
    profile compares every intermediate: compare's ULP and histogram would dominate its cost)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return float("inf")
    if actual.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(actual - expected)
        worst = float(diff.max())
    if np.isfinite(worst):  # no NaN or Inf anywhere on either side (they would make it non-finite)
        return worst
    return compare(actual, expected, decimal).max_abs


def _float_outputs(node: onnx.NodeProto, values: dict[str, np.ndarray]) -> list[str]:
    return [o for o in node.output if o in values and np.asarray(values[o]).dtype.kind == "f"]


def _run(prepare: Prepare, model: onnx.ModelProto, arrays, what: str) -> list[np.ndarray]:
    try:
        return [np.asarray(o) for o in prepare(model).run(list(arrays))]
    except Exception as exc:
        raise LocalizationError(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc


def _run_all(prepare: Prepare, model: onnx.ModelProto, arrays, what: str, skip=frozenset()) -> dict[str, np.ndarray]:
    """Every node output of ``model`` (but ``skip``) on a runtime, by name."""
    marked = mark_all(model, skip)
    names = output_names(marked)
    outs = _run(prepare, marked, arrays, what)
    if len(outs) != len(names):
        raise LocalizationError(f"{what}: it returned {len(outs)} outputs for {len(names)} marked ones")
    return dict(zip(names, outs))


def _torch_reference(model, module, arrays, actual, reference: Prepare, types):
    """Reference values of every node output: torch where a module made it, else the reference
    runtime on the reference's own inputs. Also node index -> module path."""
    try:
        record = record_module_outputs(module, arrays)
    except Exception as exc:
        raise LocalizationError(
            f"the torch module cannot run on the model's {len(arrays)} inputs (weights fed as inputs? "
            f"localize the model with weights as initializers): {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from exc
    mapped = map_nodes(model, module)
    values = {i.name: a for i, a in zip(_graph_inputs(model), arrays)}
    values.update({i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer})
    graph_out = dict(zip(output_names(model), record.outputs))
    paths = {index: key[0] for index, key in name_by_order(model, mapped, record).items()}  # labels only
    for index, node in enumerate(model.graph.node):
        first = node.output[0] if node.output else ""
        torch_value = graph_out.get(first)
        if torch_value is None and index in mapped:
            torch_value = record.get(*mapped[index])
        if torch_value is not None and first in actual and np.shape(torch_value) == np.shape(actual[first]):
            values[first] = torch_value
            paths[index] = mapped[index][0] if index in mapped else paths.get(index, "")
        if any(o and o not in values for o in node.output):
            alone, feeds = single_node_model(model, node, values, types)
            outs = _run(reference, alone, feeds, f"reference runtime on node {node.name!r}")
            values.update({o: v for o, v in zip([o for o in node.output if o], outs) if o not in values})
    return values, paths


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _isolated(model, node, values, prepare: Prepare, decimal: int, types, oracle: Prepare | None):
    """(max abs error, excess over float32 rounding, the rounding explained there) of the node
    alone on the runtime, fed the reference's inputs; None for nodes holding subgraphs, which
    cannot be cut out. Without an ``oracle`` (or one that cannot run the node) the error is
    against the reference's values and the excess is None."""
    if has_subgraph(node):
        return None
    alone, feeds = single_node_model(model, node, values, types)
    outs = _run(prepare, alone, feeds, f"node {node.name!r} alone")
    names = [n for n in node.output if n]
    judged = _against_oracle(alone, feeds, outs, oracle) if oracle is not None else None
    if judged is not None:
        return judged
    errors = [max_abs_error(o, values[name], decimal) for o, name in zip(outs, names) if name in values]
    return (max(errors), None, 0.0) if errors else None


def _against_oracle(alone, feeds, outs, oracle: Prepare):
    """(max abs error, excess, explained) of the runtime's ``outs`` against the float64 oracle
    of the node on the same ``feeds``, net of float32 rounding; None where it cannot judge."""
    from conformance.localize.rounding import allowance

    def evaluate(model, arrays):
        return [np.asarray(o) for o in oracle(model).run(list(arrays))]

    try:
        exact = evaluate(alone, feeds)
        allowed = allowance(alone, feeds, exact, np.asarray(outs[0]).dtype, evaluate)
    except Exception:  # an operator the oracle lacks: judge against the reference's values
        return None
    worst, excess, explained = 0.0, -np.inf, 0.0
    for out, want, allow in zip(outs, exact, allowed):
        out, want = np.asarray(out, np.float64), np.asarray(want, np.float64)
        if out.shape != want.shape:
            return None
        with np.errstate(invalid="ignore"):
            same = (out == want) | (np.isnan(out) & np.isnan(want))  # NaN and Inf where the oracle has them
            error = np.where(same, 0.0, np.abs(out - want))
            allow = np.broadcast_to(allow, error.shape)
            over = np.nan_to_num(error - allow, nan=np.inf)
        if error.size:
            at = np.unravel_index(int(np.argmax(over)), over.shape)
            worst = max(worst, float(np.max(np.nan_to_num(error, nan=np.inf))))
            if over[at] > excess:
                excess, explained = float(over[at]), float(allow[at])
    return worst, (excess if excess > -np.inf else 0.0), explained


def default_oracle(model: onnx.ModelProto):
    """The float64 oracle of a node alone: onnx's evaluator in double
    (``conformance.backends.onnx_reference``)."""
    from conformance.backends.onnx_reference import prepare

    return prepare(model)


def localize(model: onnx.ModelProto, inputs: Sequence[np.ndarray], prepare: Prepare, *,
             module=None, reference: Prepare = reference_prepare, decimal: int = 3,
             oracle: Prepare | None = default_oracle, first_only: bool = False) -> Localization:
    """The per-layer error profile of ``model`` on the runtime ``prepare`` makes sessions of.

    ``module`` is the torch module ``model`` was exported from (eval mode, float32 weights as in
    the export); without it the reference runtime runs the whole model. ``inputs`` are the model's
    inputs in order. ``oracle`` judges each suspect alone (float64; None: against the reference's
    values, tolerance only). ``first_only`` stops running suspects alone at the first diverging
    one (later layers keep their full-model errors: a big model's every layer may be a suspect).
    Raises ``LocalizationError`` when a runtime cannot run a marked model.
    """
    start = time.perf_counter()
    arrays = [np.asarray(a) for a in inputs]
    # Values no input reaches (an ImageNet model's weights made by ConstantOfShape: 0.5 GB) are
    # not layers: the runtime under test does not return them; the reference does (nodes alone need them).
    actual = _run_all(prepare, model, arrays, "the runtime cannot run the model with every intermediate marked",
                      skip=constant_outputs(model) - set(output_names(model)))
    types = value_types(model)
    if module is not None:
        values, paths = _torch_reference(model, module, arrays, actual, reference, types)
        source = "torch"
    else:
        values, paths = _run_all(reference, model, arrays, "the reference runtime failed"), {}
        values.update({i.name: a for i, a in zip(_graph_inputs(model), arrays)})
        source = "reference runtime"
    layers, found_one = [], False
    for index, node in enumerate(model.graph.node):
        names = [o for o in _float_outputs(node, values) if o in actual]
        if not names:
            continue
        worst = max(max_abs_error(actual[o], values[o], decimal) for o in names)
        path = paths.get(index) or None
        tol = tolerance(decimal)
        layer = LayerError(path or node.name, path, node.name, node.op_type, worst, worst / tol, tolerance=tol)
        if not worst < tol and not (first_only and found_one):
            found = _isolated(model, node, values, prepare, decimal, types, oracle)
            if found is not None:
                layer.isolated, layer.excess, layer.explained = found
                found_one = layer.diverges
        layers.append(layer)
    return Localization(layers, decimal, source, seconds=time.perf_counter() - start)


def plot_profile(result: Localization, path, *, title: str = "") -> str:
    """Write the per-layer error profile as a PNG: max abs error per layer (log axis) in model
    order, the tolerance as a line, layers wrong alone in red. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe to call under pytest and in CI
    from matplotlib.figure import Figure

    layers = result.layers
    floor = result.tolerance * 1e-6  # exact matches (error 0) still show on a log axis
    errors = [max(layer.max_abs, floor) if np.isfinite(layer.max_abs) else 1e30 for layer in layers]
    colours = ["tab:red" if layer.diverges else ("tab:orange" if layer.share >= 1 else "tab:blue")
               for layer in layers]
    fig = Figure(figsize=(max(6.0, 0.35 * len(layers) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(len(layers)), errors, color=colours)
    ax.axhline(result.tolerance, color="black", linestyle="--", linewidth=1,
               label=f"tolerance {result.tolerance:.3g} (decimal={result.decimal})")
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), [layer.layer for layer in layers], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel(f"max abs error vs {result.reference}")
    ax.set_title(title or result.describe(), fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    fig.savefig(path, dpi=100)
    return str(path)
