"""Every operator of the shipped models, hypothesis-driven, on every target."""

import pytest
from hypothesis import given, strategies as st

from conformance.assertions import check
from conformance.ops import OPERATORS


@pytest.mark.parity
@pytest.mark.parametrize("case", OPERATORS, ids=lambda c: c.name)
@given(data=st.data())
def test_operator(case, target, parity, data):
    check(parity, case, target, data)
