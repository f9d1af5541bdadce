"""When the installed plugin wakes up: only for a run of the suite's cases, or one given its options.

The ``pytest11`` entry point loads the plugin into every pytest run in the environment, other
projects' suites included. Until this module says the run is the suite's, the plugins register
options, markers and fixtures and nothing else: no hypothesis profile, no environment variable,
no runtime import, no header, no report. Light on purpose: imported at every pytest start.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

#: The run's ``ConformanceSession``, shared by every plugin of the suite (set on activation).
SESSION_KEY = pytest.StashKey["ConformanceSession"]()

#: dest -> default of every option the suite's plugins add (filled by :func:`option`).
_DEFAULTS: dict[str, object] = {}


def option(group, *names, **kwargs) -> None:
    """``group.addoption`` that remembers the option's default, so :func:`asked` can tell an
    option given on the command line from one left alone."""
    group.addoption(*names, **kwargs)
    dest = kwargs.get("dest") or names[0].lstrip("-").replace("-", "_")
    _DEFAULTS[dest] = kwargs.get("default", False if kwargs.get("action") == "store_true" else None)


def cases_dir() -> Path:
    """Where the suite's cases live: ``cases/`` in a checkout, ``conformance/cases`` installed."""
    spec = importlib.util.find_spec("conformance.cases")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def asked(config) -> bool:
    """True when the run was given one of the suite's options, named one of its plugins with
    ``-p``, or its arguments (or the ini file's testpaths) reach the suite's cases."""
    if any(config.getoption(dest, default) != default for dest, default in _DEFAULTS.items()):
        return True
    if _names_a_plugin(config.invocation_params.args):
        return True
    return any(_reaches_cases(config, arg) for arg in config.args)


def _names_a_plugin(args) -> bool:
    """``-p conformance.plugin`` (or ``-p conformance.pytest.reports``...): asked for by name."""
    args = [str(a) for a in args]
    named = [b for a, b in zip(args, args[1:]) if a == "-p"] + [a[2:] for a in args if a.startswith("-p") and len(a) > 2]
    return any(name.strip().startswith("conformance.") for name in named)


def _reaches_cases(config, arg: str) -> bool:
    where = arg.split("::", 1)[0]
    if getattr(config.option, "pyargs", False) and not Path(where).exists():
        try:
            spec = importlib.util.find_spec(where)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
        where = spec.origin if not spec.submodule_search_locations else next(iter(spec.submodule_search_locations))
    path = (Path(config.invocation_params.dir) / where).resolve()
    cases = cases_dir()
    if path == cases or cases in path.parents:
        return True
    # A folder above the cases collects them in a checkout; an installed copy sits in a virtual
    # environment, which pytest does not collect, so a project holding its .venv stays inert.
    return path in cases.parents and "site-packages" not in cases.parts


def is_case(path) -> bool:
    """True for a test module of the suite's own cases (the only tests its fixtures parametrize)."""
    try:
        return cases_dir() in Path(str(path)).resolve().parents
    except (OSError, ValueError):
        return False
