"""Root conftest: nothing here. The plugin registers itself through the package's ``pytest11``
entry point (``conformance.plugin``), so the suite runs the same in this checkout and from an
installed wheel (``pytest --pyargs conformance.cases``)."""
