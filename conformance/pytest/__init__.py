"""The pytest side: the plugin (options, markers, fixtures, hooks), the run's session, the case
check, hypothesis profiles, reports, ``--model`` files and ``--weights``. The only folder whose
modules import pytest."""
