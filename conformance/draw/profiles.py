"""Hypothesis profiles: ``dev`` (quick, the default), ``ci`` (derandomized, used when CI=true),
``thorough`` (many examples, for a release or a night run), ``device`` (a few examples per case,
for devices where one example costs seconds: a phone, or the ARM loopback device under QEMU)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Examples per operator case and target; model cases run a quarter of it (each is ~10x dearer).
EXAMPLES = {"dev": 30, "ci": 30, "thorough": 300, "device": 4}
#: The fewest examples a model case gets (below 12 operator examples a quarter would be 2).
MIN_MODEL_EXAMPLES = 3

_COMMON = dict(
    deadline=None,  # the first example of a structure pays for its export
    print_blob=True,  # failures print @reproduce_failure(...) to replay them exactly
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def register() -> None:
    # Each from hypothesis' own "default" profile: a profile registered without a parent inherits
    # whatever profile is loaded at that moment (hypothesis loads its derandomized "ci" profile
    # wherever a CI variable is set), and "dev" must stay random with an example database.
    base = settings.get_profile("default")
    settings.register_profile("dev", base, max_examples=EXAMPLES["dev"], **_COMMON)
    settings.register_profile("ci", base, max_examples=EXAMPLES["ci"], derandomize=True, database=None, **_COMMON)
    settings.register_profile("thorough", base, max_examples=EXAMPLES["thorough"], **_COMMON)
    # Derandomized like ci: a device run is slow, so its few examples should be the same ones.
    settings.register_profile("device", base, max_examples=EXAMPLES["device"], derandomize=True,
                              database=None, **_COMMON)


#: The profiles hypothesis itself may have loaded before anyone chose one ("ci" where a CI
#: variable is set): a run of the suite replaces them with its own default.
_HYPOTHESIS_OWN = ("default", "ci")


def register_named(name: str | None) -> None:
    """Register the suite's profiles only when ``--hypothesis-profile`` names one of them (so
    hypothesis can load it); otherwise leave hypothesis' registry as the user's run has it."""
    if name in EXAMPLES:
        register()


def apply_default(chosen: str | None, devices=()) -> str:
    """Register the suite's profiles and load the suite's default one, unless a profile was
    chosen: by ``--hypothesis-profile`` (``chosen``) or by the user's own ``settings.load_profile``.
    Returns the profile in force."""
    register()
    current = settings.get_current_profile_name()
    if chosen or current not in _HYPOTHESIS_OWN:
        return chosen or current
    name = default_profile(devices)
    settings.load_profile(name)
    return name


def default_profile(devices=()) -> str:
    """``device`` when the run adds ``--device`` targets, else ``ci`` under CI, else ``dev``."""
    if devices:
        return "device"
    return "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"


def model_examples() -> int:
    """Examples per model case and target under the current profile."""
    examples = settings.default.max_examples
    return max(min(MIN_MODEL_EXAMPLES, examples), examples // 4)


def special_examples() -> int:
    """Examples per special-values case and target: a third of the ordinary ones (each draws
    its kinds and spread, not shapes and scales; the ordinary cases cover those)."""
    examples = settings.default.max_examples
    return max(min(MIN_MODEL_EXAMPLES, examples), examples // 3)


def frame_examples() -> int:
    """Camera-frame examples per model case and runtime: one in fifteen of the ordinary ones (2
    by default, 20 thorough), at least one. The first is hypothesis' simplest (the smallest
    frame), the others drawn: a 1080p example costs ~10 s here, ~20x an ordinary one."""
    return max(1, settings.default.max_examples // 15)
