"""Process-wide thread-pool settings the suite's cases need (``conformance.pytest.threads``):
made when the suite wakes up, before it imports torch; again here for a run that collects the
cases without having woken it (both only set what the user left unset)."""

from conformance.pytest import threads

threads.settle()
