"""Every private API of a dependency that the suite uses, in one place, each behind a version check.

Each has no public counterpart (said at each function). The versions they were written against
are bounded in ``pyproject.toml``; a release past them that moved the private name gets one
clear line naming the dependency and the versions known to work, not an AttributeError deep in a
case. Imports nothing heavy: the dependency is imported where the function is called.
"""

from __future__ import annotations

import re


class PrivateApiError(RuntimeError):
    """A dependency's private API this suite relies on has moved (a version past the tested range)."""


def _moved(package: str, version: str, what: str, tested: str) -> PrivateApiError:
    return PrivateApiError(f"{package} {version}: {what} is gone; conformance was tested with {package} {tested} "
                           f"(pin {package} to that range, or upgrade conformance)")


def _major(version: str) -> int:
    match = re.match(r"\d+", version)
    return int(match.group()) if match else 0


# hypothesis (tested 6.x) -------------------------------------------------------------------------

def set_database_key(test, key: bytes) -> None:
    """Give a ``@given`` test built inside a function its own example-database key. hypothesis
    keys the database by the test function's source location, which every case built by the
    one driver function shares; its own pytest plugin sets this same attribute for
    parametrized tests."""
    import hypothesis

    inner = getattr(getattr(test, "hypothesis", None), "inner_test", None)
    if inner is None or _major(hypothesis.__version__) != 6:
        raise _moved("hypothesis", hypothesis.__version__, "the inner test of @given", "6.x")
    inner._hypothesis_internal_add_digest = key


def forced_seed() -> int | None:
    """The seed given with ``--hypothesis-seed`` (None when not given). hypothesis keeps it in
    ``core.global_force_seed`` and offers no public getter."""
    import hypothesis
    from hypothesis import core

    if not hasattr(core, "global_force_seed"):
        raise _moved("hypothesis", hypothesis.__version__, "core.global_force_seed", "6.x")
    forced = core.global_force_seed
    return int(forced) if forced is not None else None


# pytest (tested 8.x-9.x) -------------------------------------------------------------------------

def skip_reason(report) -> str:
    """The reason of a skipped test's report: pytest keeps it as the third item of
    ``longrepr`` (path, line, reason), the form its own terminal summary reads."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return ""


def mark_expected_failure(report, reason: str) -> None:
    """Turn a failed call report into an xfail the way ``pytest.xfail`` leaves it (outcome
    "skipped" with ``wasxfail``): terminal, JUnit and pytest-xdist all read that pair."""
    report.outcome = "skipped"
    report.wasxfail = reason


# pytest-benchmark (tested 4.x-5.x) ---------------------------------------------------------------

def record_external_timings(benchmark, seconds, mode: str = "device-timed") -> None:
    """Put timings measured outside its own loop (a device's clock, rounds interleaved with a
    reference workload) into pytest-benchmark's statistics, as ``pedantic`` fills them;
    pytest-benchmark has no public API for external timings."""
    import pytest_benchmark

    version = getattr(pytest_benchmark, "__version__", "?")
    if not hasattr(benchmark, "_make_stats") or _major(version) not in (4, 5):
        raise _moved("pytest-benchmark", version, "BenchmarkFixture._make_stats", "4.x-5.x")
    stats = benchmark._make_stats(1)
    for value in seconds:
        stats.update(float(value))
    benchmark._mode = mode  # the fixture counts as used, as after pedantic()
