"""Every operator of the shipped models, hypothesis-driven, on every target."""

import pytest

from conformance.ops import OPERATORS


@pytest.mark.parity
@pytest.mark.parametrize("case", OPERATORS, ids=lambda c: c.name)
def test_operator(case, target, parity):
    parity.drawn(case, target)
