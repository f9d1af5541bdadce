"""``--cache-dir``, ``--no-cache``, ``--cache-max-mb``: the disk cache of exported and converted
artifacts (``conformance.formats.artifact_cache``), set up for each process of the run (every
pytest-xdist worker configures its own; entries are shared through the folder)."""

from __future__ import annotations

import pytest

from conformance.formats import artifact_cache
from conformance.pytest.activation import option

_BEFORE = pytest.StashKey[object]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance")
    option(group, "--cache-dir", metavar="DIR",
                    help="where exported and converted artifacts (ONNX exports, ExecuTorch .pte, LiteRT .tflite, "
                         "ncnn/MNN conversions) are kept between runs. Default: ~/.cache/conformance/artifacts "
                         "($XDG_CACHE_HOME honoured)")
    option(group, "--no-cache", action="store_true",
                    help="make every artifact afresh and keep none. Default: use the artifact cache")
    option(group, "--cache-max-mb", type=float, default=artifact_cache.DEFAULT_MAX_BYTES / 2**20, metavar="MB",
                    help="size cap of the artifact cache; the least recently used entries go past it. "
                         f"Default: {artifact_cache.DEFAULT_MAX_BYTES / 2**20:.0f}")


def activate(config) -> None:
    """Set up this process's artifact cache (as the suite wakes up; another project's run never
    touches it)."""
    size = config.getoption("cache_max_mb", None)
    if size is not None and not size > 0:
        raise pytest.UsageError(f"--cache-max-mb {size:g} must be a positive number of megabytes")
    config.stash[_BEFORE] = artifact_cache.active()
    artifact_cache.configure(config.getoption("cache_dir", None), enabled=not config.getoption("no_cache", False),
                             max_bytes=int((size or artifact_cache.DEFAULT_MAX_BYTES / 2**20) * 2**20))


def pytest_unconfigure(config):
    if _BEFORE in config.stash:
        artifact_cache.restore(config.stash[_BEFORE])  # an in-process run (pytester) leaves it as it was


def pytest_terminal_summary(terminalreporter, config):
    if _BEFORE not in config.stash:
        return
    cache = artifact_cache.active()
    if cache is not None and (cache.hits or cache.stored or cache.corrupt):
        terminalreporter.write_line(cache.summary())
