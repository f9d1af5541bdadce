"""Pytest plug-in: ``--weights=URL|PATH`` picks the SuperResolutionNet(3) checkpoint of the run.

Loaded from ``pytest.ini`` (``-p conformance.pytest.weights``). The checkpoint is loaded
and checked once, at configure time, so a missing file, a failed download, a wrong hash or a
checkpoint for another architecture is one usage error before any case runs, not a failure
in every case that uses it. Cases get the state_dict from the ``superres_weights`` fixture.
"""

from __future__ import annotations

import pytest

_WEIGHTS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "cross-backend numerical conformance")
    group.addoption("--weights", default=None, metavar="URL|PATH",
                    help="SuperResolutionNet(3) checkpoint for the model-image cases: a path or an "
                         "http(s)/file URL (downloaded once into torch.hub's cache, SHA-256 checked "
                         "when the name carries a hash, as torch.hub does). Default: the shipped "
                         "conformance/models/weights/superres_x3.pth")


def pytest_configure(config):
    from conformance.models.weights import WeightsError, load_weights

    try:
        config.stash[_WEIGHTS] = load_weights(config.getoption("weights"))
    except WeightsError as exc:
        raise pytest.UsageError(f"--weights: {exc}") from None


@pytest.fixture(scope="session")
def superres_weights(request) -> dict:
    """The run's SuperResolutionNet(3) state_dict (``--weights``, default the shipped checkpoint)."""
    return request.config.stash[_WEIGHTS]
