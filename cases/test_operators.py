"""Every operator of the shipped models, hypothesis-driven, on every target; and the same
operators on inputs holding special values (NaN, +-Inf, -0.0, subnormals, large magnitudes),
judged by torch's semantics: NaN and Inf positions (and signs) must match exactly, finite
elements keep decimal-3."""

import pytest

from conformance.draw import profiles
from conformance.draw.operators import OPERATORS, SPECIAL_KINDS


@pytest.mark.parity
@pytest.mark.parametrize("case", OPERATORS, ids=lambda c: c.name)
def test_operator(case, target, parity):
    parity.drawn(case, target)


@pytest.mark.parity
@pytest.mark.parametrize("case", [c for c in OPERATORS if c.name in SPECIAL_KINDS], ids=lambda c: c.name)
def test_operator_special_values(case, target, parity):
    parity.drawn(case, target, max_examples=profiles.special_examples(), special_kinds=SPECIAL_KINDS[case.name])
