"""Pytest plug-in: ``--weights=URL|PATH`` picks the SuperResolutionNet(3) checkpoint of the run.

Brought by the suite's plugin. The checkpoint is loaded and checked once, when the suite wakes
up for a run, so a missing file, a failed download, a wrong hash or a
checkpoint for another architecture is one usage error before any case runs, not a failure
in every case that uses it. Cases get the state_dict from the ``superres_weights`` fixture.
"""

from __future__ import annotations

import pytest

from conformance.pytest.activation import option

_WEIGHTS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "cross-backend numerical conformance")
    option(group, "--weights", default=None, metavar="URL|PATH",
                    help="SuperResolutionNet(3) checkpoint for the model-image cases: a path or an "
                         "http(s)/file URL (downloaded once into torch.hub's cache, SHA-256 checked "
                         "when the name carries a hash, as torch.hub does). Default: the shipped "
                         "conformance/models/weights/superres_x3.pth")


def activate(config) -> None:
    """Load and check the checkpoint (when the suite wakes up; a bad one is a usage error)."""
    from conformance.models.weights import WeightsError, load_weights

    try:
        config.stash[_WEIGHTS] = load_weights(config.getoption("weights"))
    except WeightsError as exc:
        raise pytest.UsageError(f"--weights: {exc}") from None


@pytest.fixture(scope="session")
def superres_weights(request) -> dict:
    """The run's SuperResolutionNet(3) state_dict (``--weights``, default the shipped checkpoint)."""
    if _WEIGHTS not in request.config.stash:
        activate(request.config)
    return request.config.stash[_WEIGHTS]
