"""Reports of a conformance run: parity and latency reports with plots, baselines, expected
failures, and the pytest plugin that produces them (``conformance.pytest.reports``)."""
