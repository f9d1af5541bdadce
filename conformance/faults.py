"""The seeded faults' public name (``--backend=conformance.faults:DepthToSpaceDCR``); they live in
``conformance.testing.faults``."""
from conformance.testing.faults import *  # noqa: F401,F403
