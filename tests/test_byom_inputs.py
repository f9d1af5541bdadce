"""Reading a model's inputs, bounding them, drawing feeds for them; registering modules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from byom_helpers import matmul
from conformance.byom.feeds import feeds
from conformance.byom.model_file import ModelError
from conformance.byom.onnx_inputs import (InputSpec, check_size, parse_dim_specs, read_inputs,
                                          resolve_ranges)
from conformance.byom.register import register_module, registered_cases, unregister


def test_read_inputs_static_symbolic_and_unnamed_dims():
    model = matmul(n="batch")
    model.graph.input[0].type.tensor_type.shape.dim[1].Clear()  # neither a value nor a name
    (spec,) = read_inputs(model)
    assert spec == InputSpec("x", np.dtype("float32"), ("batch", "x[1]"))
    assert resolve_ranges([spec], {"x[1]": (8, 8)}) == {"batch": (1, 4), "x[1]": (8, 8)}


def test_initializers_listed_as_inputs_are_not_fed():
    model = matmul(n=3)
    model.graph.input.append(model.graph.input[0])
    model.graph.input[1].name = "W"
    assert [s.name for s in read_inputs(model)] == ["x"]


def test_parse_dim_specs():
    assert parse_dim_specs(["batch=1:8", "x[0]=2:3"]) == {"batch": (1, 8), "x[0]": (2, 3)}
    for bad in ("batch", "batch=0:2", "batch=a:b", "=1:2"):
        with pytest.raises(ModelError):
            parse_dim_specs([bad])


def test_size_bound_counts_every_input_at_its_largest():
    specs = [InputSpec("a", np.dtype("float32"), ("N", 10)), InputSpec("b", np.dtype("int64"), ("N",))]
    check_size(specs, {"N": (1, 10)}, max_elements=110)
    with pytest.raises(ModelError, match="up to 1,100 elements .* a: float32\\[N, 10\\]"):
        check_size(specs, {"N": (1, 100)}, max_elements=1000)


SPECS = [InputSpec("x", np.dtype("float32"), ("N", 3)), InputSpec("i", np.dtype("int64"), ("N",)),
         InputSpec("m", np.dtype("bool"), (2,)), InputSpec("h", np.dtype("float16"), (1, "N"))]


@settings(max_examples=30, database=None)
@given(recipe=feeds(SPECS, {"N": (2, 5)}))
def test_feeds_share_symbolic_dims_and_keep_dtypes(recipe):
    x, i, m, h = recipe.materialize()
    n = dict(recipe.sizes)["N"]
    assert 2 <= n <= 5 and x.shape == (n, 3) and i.shape == (n,) and h.shape == (1, n)
    assert (x.dtype, i.dtype, m.dtype, h.dtype) == (np.float32, np.int64, np.bool_, np.float16)
    assert np.isfinite(x).all() and (0 <= i).all() and (i < 4).all()
    assert np.array_equal(recipe.materialize()[0], x)  # a recipe replays exactly


@pytest.fixture
def registry():
    yield
    for case in registered_cases():
        unregister(case.name)


def test_register_module_makes_a_model_case(registry):
    import torch

    case = register_module("lin", lambda: torch.nn.Linear(4, 2), torch.zeros(3, 4), input_shapes=[(1, 4), (3, 4)])
    assert case.kind == "model" and registered_cases() == (case,)
    assert case.example_shape(0) == (3, 4) and case.dynamic == (0,)
    assert isinstance(case.build(0), torch.nn.Linear)
    static = register_module("lin2", lambda: torch.nn.Linear(4, 2), (3, 4))
    assert static.dynamic == () and find(static.input_shapes(0), lambda s: True) == (3, 4)
    custom = register_module("lin3", lambda: torch.nn.Linear(4, 2), (3, 4),
                             input_shapes=st.tuples(st.integers(1, 3), st.just(4)), dynamic=(0,))
    assert custom.dynamic == (0,)


@pytest.mark.parametrize("args, kwargs, message", [
    (("bad name", lambda: None, (1,)), {}, "must be letters"),
    (("superres", lambda: None, (1,)), {}, "exists"),
    (("ok", "not callable", (1,)), {}, "factory must be a callable"),
    (("ok", lambda: None, "x"), {}, "example_input must be"),
    (("ok", lambda: None, (2, 3)), {"input_shapes": [(2, 3, 4)]}, "rank 2"),
    (("ok", lambda: None, (2, 3)), {"scales": ["huge"]}, "scales must be"),
])
def test_register_module_refuses_bad_arguments(registry, args, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        register_module(*args, **kwargs)


def test_factory_must_return_a_module(registry):
    case = register_module("notmod", lambda: 42, (1, 2))
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        case.build(0)


def test_a_batch_one_example_is_exported_at_two_and_still_drawn(registry):
    """torch.export specializes a size of 1: the export takes 2 on a dynamic axis, the draws
    (and per-shape runtimes such as LiteRT, which convert at the example shape) keep the user's."""
    import torch

    from conformance.formats.onnx_export import export_example_shape

    case = register_module("b1", lambda: torch.nn.Linear(4, 2), torch.zeros(1, 4), input_shapes=[(1, 4), (3, 4)])
    assert case.dynamic == (0,) and case.example_shape(0) == (1, 4)
    assert export_example_shape(case.example_shape(0), case.dynamic) == (2, 4)
    assert export_example_shape((1, 1, 5), (0, 2)) == (2, 1, 5)  # a static axis keeps its 1
    assert find(case.input_shapes(0), lambda s: s[0] == 1) == (1, 4)
