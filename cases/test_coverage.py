"""The suite checks itself: every ONNX op type in an exported model has an operator case,
and every operator case really produces the op types it claims at that exporter and opset."""

import pytest

from conformance.formats.graph import op_types
from conformance.draw.model_cases import MODELS
from conformance.draw.operators import OPERATORS
from conformance.draw.strategies import WEIGHT_POOL


def _ops_of(harness, case, target) -> set[str]:
    """Op types of the case's first pool structure (the export cache shares it with the
    parity cases, so this costs no extra export in a full run). Drawn weights, as in the parity
    cases: SRResNet's untrained default (every PReLU slope 0.25) would make the exporter share
    one initializer through extra Identity nodes."""
    return op_types(harness.onnx_model_for(case, case.pool[0], target, WEIGHT_POOL[0]))


@pytest.mark.parity
@pytest.mark.parametrize("model", MODELS, ids=lambda c: c.name)
def test_every_model_op_has_an_operator_case(model, export_target, harness):
    model_ops = _ops_of(harness, model, export_target)
    owners = {op: [c for c in OPERATORS if op in c.covers] for op in model_ops}
    missing = sorted(op for op, cases in owners.items() if not cases)
    assert not missing, (
        f"{model.name} exported with {export_target.id} contains op types no operator case covers: "
        f"{', '.join(missing)}. Add a spec to conformance/draw/operators.py (or extend a spec's `covers`)."
    )
    for op, cases in owners.items():
        produced = set().union(*(_ops_of(harness, c, export_target) for c in cases))
        assert op in produced, (
            f"{', '.join(c.name for c in cases)} claims to cover {op}, but its {export_target.id} "
            f"exports contain only {sorted(produced)}: the case never exercises {op}"
        )
