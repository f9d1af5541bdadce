"""Hypothesis profiles: ``dev`` (quick, the default), ``ci`` (derandomized, used when CI=true),
``thorough`` (many examples, for a release or a night run)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Examples per operator case and target; model cases run a quarter of it (each is ~10x dearer).
EXAMPLES = {"dev": 30, "ci": 30, "thorough": 300}

_COMMON = dict(
    deadline=None,  # the first example of a structure pays for its export
    print_blob=True,  # failures print @reproduce_failure(...) to replay them exactly
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def register() -> None:
    settings.register_profile("dev", max_examples=EXAMPLES["dev"], **_COMMON)
    settings.register_profile("ci", max_examples=EXAMPLES["ci"], derandomize=True, database=None, **_COMMON)
    settings.register_profile("thorough", max_examples=EXAMPLES["thorough"], **_COMMON)


def default_profile() -> str:
    return "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"


def model_examples() -> int:
    """Examples per model case and target under the current profile."""
    return max(2, settings.default.max_examples // 4)
