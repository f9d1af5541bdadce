"""The pytest plugin's public name (``-p conformance.plugin``, ``-p no:conformance.plugin``); the
plugin itself lives in ``conformance.pytest.plugin``."""
from conformance.pytest.plugin import *  # noqa: F401,F403
from conformance.pytest.plugin import pytest_plugins  # noqa: F401
