"""Root conftest: the plugin is loaded from pytest.ini (``-p conformance.plugin``)."""
