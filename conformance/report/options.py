"""Checks of the report options made before anything runs, shared by the pytest plugin and
``conformance gate``: each problem is one line (the caller turns it into a usage error)."""

from __future__ import annotations

import uuid
from pathlib import Path

from conformance.report.baseline import BaselineError, find_baseline

#: A latency case slower than this fraction over the baseline (significantly) fails the gate.
DEFAULT_MAX_SLOWDOWN = 0.10


def check(*, reports: Path, baseline: str | None = None, max_slowdown: float = 10.0,
          hypothesis_profile: str | None = None) -> str | None:
    """The first problem with these options, as one line, or None."""
    if max_slowdown < 0:
        return f"--max-slowdown {max_slowdown:g} must be a percentage >= 0"
    if reports.exists() and not reports.is_dir():
        return f"--reports {reports}: is a file; give a folder (it is created when missing)"
    if hypothesis_profile is not None:
        problem = _profile_problem(hypothesis_profile)
        if problem:
            return problem
    if baseline:
        try:
            find_baseline(reports / "baselines", baseline)
        except BaselineError as exc:
            return str(exc)
    return None


def _profile_problem(name: str) -> str | None:
    from hypothesis import settings

    from conformance.draw import profiles

    profiles.register_named(name)  # the suite's own are registered only when named
    try:
        settings.get_profile(name)
    except Exception:  # hypothesis' InvalidArgument; it has no public listing of registered profiles
        return (f"--hypothesis-profile {name!r} is not registered; the suite's: {', '.join(profiles.EXAMPLES)} "
                f"(or one your conftest.py registers)")
    return None


def new_run_id() -> str:
    """A fresh id that pairs a run's parity.json, benchmark JSON and report.json."""
    return uuid.uuid4().hex[:12]
