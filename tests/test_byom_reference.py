"""The default reference of `conformance check` (``conformance.backends.onnx_reference``): the
semantics of the model's own opset, float64, and kernels that agree with onnx's evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from conformance.backends import onnx_reference, reference_model
from conformance.backends.onnx_reference import ReferenceRep
from byom_helpers import one_node_model as _model
from byom_helpers import onnxruntime_run as _ort




@pytest.fixture(params=["converted", "covered"])
def how(request, monkeypatch):
    """Old semantics either through the version converter or, where it cannot, the overrides."""
    if request.param == "covered":
        monkeypatch.setattr(onnx_reference, "upgrade", lambda model: (model, ""))
    return request.param


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset, axis", [(9, None), (11, 1), (11, 2)])
def test_softmax_family_before_13_coerces_to_2d(how, op, opset, axis):
    """Before: an opset-9 Softmax over [1, 5, 2, 3] ran with opset 13's one-axis semantics."""
    attrs = {} if axis is None else {"axis": axis}
    model = _model([helper.make_node(op, ["x"], ["y"], **attrs)], (2, 5, 2, 3), (2, 5, 2, 3), opset=opset)
    x = np.random.default_rng(0).standard_normal((2, 5, 2, 3)).astype(np.float32)
    rep = ReferenceRep(model)
    (got,), (want,) = rep.run([x]), _ort(model, x)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(got, onnx.reference.ReferenceEvaluator(model).run(None, {"x": x})[0], atol=1e-3)
    if how == "covered":
        assert rep.notes == [f"{op} at opset {opset} semantics"]
    elif op == "Hardmax":  # the converter's Hardmax 12->13 step keeps opset-12 semantics: not taken
        assert rep.notes == [f"opset {opset} converted to 12", "Hardmax at opset 12 semantics"]
    else:
        assert rep.notes == [f"opset {opset} converted to 28"]


@pytest.mark.parametrize("opset, attrs", [(7, {"momentum": 0.9, "spatial": 1}), (9, {"momentum": 0.9}),
                                          (14, {"momentum": 0.9}), (15, {})])
def test_batchnorm_with_one_output_is_inference_at_every_opset(how, opset, attrs):
    """Before: opset-9 BatchNormalization with ``momentum`` set normalized with batch statistics."""
    rng = np.random.default_rng(1)
    params = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in
              [("s", rng.random(3) + 0.5), ("b", rng.standard_normal(3)), ("m", rng.standard_normal(3)),
               ("v", rng.random(3) + 0.1)]]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-5, **attrs)
    model = _model([node], (2, 3, 4, 4), (2, 3, 4, 4), params, opset=opset)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32) * 4 + 2
    np.testing.assert_allclose(ReferenceRep(model).run([x])[0], _ort(model, x)[0], atol=1e-5)


def test_runs_in_float64_with_casts_and_float_constants_widened():
    nodes = [helper.make_node("Constant", [], ["c"], value_float=1 / 3),
             helper.make_node("Mul", ["x", "c"], ["h"]),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)]
    model = _model(nodes, (4,), (4,))
    x = np.array([1, 2, 3, 1e8], np.float32)
    rep = ReferenceRep(model)
    (y,) = rep.run([x])
    assert rep.precision == "float64" and y.dtype == np.float64
    # the model's float32 constant, multiplied in double (and the Cast to float does not round)
    np.testing.assert_array_equal(y, x.astype(np.float64) * np.float64(np.float32(1 / 3)))
    assert y[2] != np.float32(3) * np.float32(1 / 3)  # float32 rounds 1.00000003 to 1


def test_a_quantized_graph_keeps_its_precision_and_says_so():
    scale, zero = numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.uint8(0), "z")
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    rep = ReferenceRep(_model(nodes, (3,), (3,), [scale, zero]))
    assert rep.precision == "as declared" and "QuantizeLinear" in " ".join(rep.notes)
    assert rep.run([np.array([0.04, 0.06, 1.0], np.float32)])[0].dtype == np.float32


def test_constant_weights_are_computed_once():
    """The light models make their weights with ConstantOfShape: once, not on every run."""
    shape = numpy_helper.from_array(np.array([4, 4], np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["w"],
                              value=helper.make_tensor("", TensorProto.FLOAT, [1], [0.5])),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    model = _model(nodes, (2, 4), (2, 4), [shape])
    constants, main = reference_model.split_constants(model)
    assert [n.op_type for n in constants.graph.node] == ["ConstantOfShape"]
    assert [n.op_type for n in main.graph.node] == ["MatMul"] and not main.graph.initializer
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    rep = ReferenceRep(model)
    for _ in range(2):
        np.testing.assert_array_equal(rep.run([x])[0], x.astype(np.float64) @ np.full((4, 4), 0.5))


def _window_case(draw, op):
    spatial = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(spatial)]
    strides = [draw(st.integers(1, 2)) for _ in range(spatial)]
    dilations = [draw(st.integers(1, 2)) for _ in range(spatial)]
    size = [draw(st.integers((k - 1) * d + 1, 7)) for k, d in zip(kernel, dilations)]
    attrs = {"kernel_shape": kernel, "strides": strides}
    if op != "AveragePool" or draw(st.booleans()):
        attrs["dilations"] = dilations
    else:
        dilations = [1] * spatial
    if draw(st.booleans()) and (op == "Conv" or attrs.get("dilations", [1]) == [1] * spatial):
        # (ONNX Runtime pads dilated SAME pools as if undilated: one output short of the spec)
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    else:
        attrs["pads"] = [draw(st.integers(0, min(k - 1, 2))) for k in kernel * 2]
    return spatial, kernel, size, attrs


@st.composite
def conv_cases(draw):
    spatial, kernel, size, attrs = _window_case(draw, "Conv")
    groups = draw(st.sampled_from([1, 2, 4]))
    per_in, per_out = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    attrs["group"] = groups
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), groups * per_in, *size))
    w = rng.standard_normal((groups * per_out, per_in, *kernel))
    b = rng.standard_normal(groups * per_out) if draw(st.booleans()) else None
    return attrs, [x, w] + ([b] if b is not None else [])


@st.composite
def pool_cases(draw):
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    spatial, kernel, size, attrs = _window_case(draw, op)
    if op == "AveragePool":
        attrs["count_include_pad"] = draw(st.integers(0, 1))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal((2, 3, *size))
    return op, attrs, [x]


def _both(op, attrs, inputs):
    """(ours, onnx's evaluator's) outputs of one node in float64."""
    from onnx.reference import ReferenceEvaluator

    from conformance.backends.reference_ops import FAST

    names = ["x", "w", "b"][:len(inputs)]
    graph = helper.make_graph([helper.make_node(op, names, ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in names],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    feeds = dict(zip(names, inputs))
    return (ReferenceEvaluator(model, new_ops=list(FAST)).run(None, feeds)[0],
            ReferenceEvaluator(model).run(None, feeds)[0])


@settings(max_examples=60, deadline=None, database=None)
@given(case=conv_cases())
def test_fast_conv_agrees_with_the_evaluators(case):
    ours, theirs = _both("Conv", *case)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None, database=None)
@given(case=pool_cases())
def test_fast_pools_agree_with_onnxruntime(case):
    """ONNX Runtime, not the evaluator: the evaluator's own pools fail on 1-D ``auto_pad``."""
    from conformance.backends.reference_ops import FAST

    op, attrs, (x,) = case
    x = x.astype(np.float32)
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    ours = onnx.reference.ReferenceEvaluator(model, new_ops=list(FAST)).run(None, {"x": x})[0]
    try:
        (theirs,) = _ort(model, x)
    except Exception:  # SAME pads with a stride past the kernel: ONNX Runtime's pads go negative
        reject()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_references_that_disagree_leave_the_example_out_never_fail_the_runtime(monkeypatch, tmp_path):
    """The evaluator made wrong on purpose (opset-9 Softmax with opset-13 semantics, the old
    bug): ONNX Runtime with optimizations off disagrees with it, so no runtime is blamed."""
    from byom_helpers import save

    from conformance.backends import load_backend
    from conformance.backends import reference_model
    from conformance.byom.drive import drive
    from conformance.byom.model_check import ModelCheck
    from conformance.backends.onnx_reference import second_reference
    from conformance.byom.defaults import DEFAULT_REFERENCE
    from conformance.engine.deadline import Deadline

    monkeypatch.setattr(onnx_reference, "upgrade", lambda model: (model, ""))
    monkeypatch.setattr(reference_model, "_CHANGED_BEFORE", {})
    model = _model([helper.make_node("Softmax", ["x"], ["y"])], (1, 5, 1, 1), (1, 5, 1, 1), opset=9)
    path = save(model, tmp_path / "softmax9.onnx")
    for spec in ("onnxruntime", "conformance.faults:OffBy2e3"):
        reference = load_backend(DEFAULT_REFERENCE)
        check = ModelCheck(path, reference, second=second_reference(reference.name))
        verdict = drive(check, load_backend(spec), max_examples=3, deadline=Deadline(60), derandomize=True)
        assert verdict.failure is None and verdict.error is None and verdict.examples == 0, verdict
        assert verdict.nonfinite == 3
        assert verdict.nonfinite_note.startswith(
            "the reference is uncertain here: conformance.backends.onnx_reference and onnxruntime (no optimizations) "
            "disagree on output 'y' by ")
    alone = ModelCheck(path, load_backend(DEFAULT_REFERENCE))  # one reference: the runtime is blamed
    verdict = drive(alone, load_backend("onnxruntime"), max_examples=3, deadline=Deadline(60), derandomize=True)
    assert verdict.failure is not None


LIGHT = sorted((Path(onnx.__file__).parent / "backend" / "test" / "data" / "light").glob("*.onnx"))


@pytest.mark.slow
@pytest.mark.parametrize("path", LIGHT, ids=[p.stem for p in LIGHT])
def test_light_models_give_the_outputs_onnx_ships_beside_them(path):
    """onnx's backend test feeds each light model ``arange(n) / n`` and expects the
    ``*_output_0.pb`` beside it; before, the evaluator missed it by 0.999 on squeezenet
    (opset-9 Softmax) and 0.0015 on densenet121 (opset-9 BatchNormalization)."""
    model = onnx.load(str(path))
    initializers = {i.name for i in model.graph.initializer}
    (spec,) = [i for i in model.graph.input if i.name not in initializers]
    shape = tuple(d.dim_value or 1 for d in spec.type.tensor_type.shape.dim)
    x = (np.arange(np.prod(shape)).reshape(shape) / np.prod(shape)).astype(np.float32)
    want = numpy_helper.to_array(onnx.load_tensor(str(path.with_name(path.stem + "_output_0.pb"))))
    np.testing.assert_allclose(ReferenceRep(model).run([x])[0], want, atol=1e-6)


@pytest.mark.parametrize("ir_version", [3, 8])
def test_large_weights_travel_beside_the_graph(ir_version):
    """An ImageNet model's weights inside the graph made every conversion and copy slow (VGG19
    with real weights: 28 s to prepare): large float initializers are fed on each run instead."""
    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(64).astype(np.float32), "b")  # small: stays inside
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
             helper.make_node("Softmax", ["z"], ["y"])]  # opset 9: converted, w never copied along
    model = _model(nodes, (3, 64), (3, 64), [w, b], opset=9)
    model.ir_version = ir_version
    if ir_version < 4:  # initializers are inputs too
        model.graph.input.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in
                                  [("w", [64, 64]), ("b", [64])]])
    x = rng.standard_normal((3, 64)).astype(np.float32)
    rep = ReferenceRep(model)
    assert [i.name for i in rep._model.graph.initializer] == ["b"]
    for _ in range(2):
        np.testing.assert_allclose(rep.run([x])[0], _ort(model, x)[0], atol=1e-6)


DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
#: onnx's own model tests with their inputs and expected outputs (PyTorch's, mostly at old
#: opsets), but the training-preview ones (Gradient: no evaluator implements it).
MODEL_TESTS = sorted(p.parent for p in DATA.glob("*/*/model.onnx")
                     if (p.parent / "test_data_set_0").is_dir() and "gradient" not in p.parent.name)


@pytest.mark.parametrize("folder", MODEL_TESTS, ids=[f"{p.parent.name}/{p.name}" for p in MODEL_TESTS])
def test_the_reference_gives_the_outputs_onnx_ships_for_its_model_tests(folder):
    def tensors(kind):
        return [numpy_helper.to_array(onnx.load_tensor(str(p)))
                for p in sorted((folder / "test_data_set_0").glob(f"{kind}_*.pb"))]

    want = tensors("output")
    if any(w.dtype.kind not in "fiub" for w in want):
        pytest.skip("string outputs")  # a few ai.onnx.ml tests: nothing numeric to compare
    got = ReferenceRep(onnx.load(str(folder / "model.onnx"))).run(tensors("input"))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        scale = max(1.0, float(np.nanmax(np.abs(w), initial=0)))
        np.testing.assert_allclose(np.asarray(g, np.float64), w.astype(np.float64), rtol=1e-5,
                                   atol=1e-5 * scale, equal_nan=True)


@pytest.mark.parametrize("training", [0, 1])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 3)])
def test_batchnorm_agrees_with_the_evaluators_own_at_opset_15(training, shape):
    """The one-multiply-add kernel in inference; training mode is left to the evaluator."""
    rng = np.random.default_rng(2)
    params = [rng.random(3) + 0.5, rng.standard_normal(3), rng.standard_normal(3), rng.random(3) + 0.1]
    outs = ["y", "m", "v"] if training else ["y"]
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], outs, training_mode=training,
                          epsilon=1e-3)], "g",
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in ["x", "s", "b", "mean", "var"]],
        [helper.make_tensor_value_info(n, TensorProto.DOUBLE, None) for n in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    feeds = dict(zip(["x", "s", "b", "mean", "var"], [rng.standard_normal(shape) * 3] + params))
    from conformance.backends.reference_ops import FAST

    ours = onnx.reference.ReferenceEvaluator(model, new_ops=list(FAST)).run(None, feeds)
    theirs = onnx.reference.ReferenceEvaluator(model).run(None, feeds)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_large_weights_keep_their_type_in_a_graph_tied_to_its_types():
    """A quantized graph runs as declared: its detached float32 weights are fed as float32."""
    rng = np.random.default_rng(6)
    inits = [numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w"),
             numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.uint8(128), "z")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("QuantizeLinear", ["h", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    model = _model(nodes, (3, 64), (3, 64), inits)
    x = rng.standard_normal((3, 64)).astype(np.float32) * 0.1
    rep = ReferenceRep(model)
    (y,) = rep.run([x])
    assert rep.precision == "as declared" and y.dtype == np.float32
    np.testing.assert_allclose(y, _ort(model, x)[0], atol=0.05 + 1e-6)
