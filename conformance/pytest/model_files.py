"""Bring-your-own-model options and cases for pytest: ``-p conformance.pytest.model_files``.

``pytest --model=MODEL.onnx`` (repeatable) adds one parity case per model and backend
(``cases/test_onnx_models.py``); ``--register=MODULE`` imports a module that calls
``conformance.register_module`` so its models join ``cases/test_models.py``. Bad models fail
their own cases with a one-screen message; bad options are usage errors.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

from conformance.byom.defaults import DEFAULT_DIM_RANGE, DEFAULT_MAX_ELEMENTS, DEFAULT_REFERENCE
from conformance.pytest.activation import SESSION_KEY, is_case, option


def pytest_addoption(parser):
    group = parser.getgroup("conformance-byom", "conformance: bring your own model")
    option(group, "--model", action="append", default=[], metavar="PATH",
                    help="an ONNX model to check on every backend (repeatable). Default: none")
    option(group, "--dim", action="append", default=[], metavar="NAME=MIN:MAX",
                    help=f"range of a symbolic input dimension of the --model files (repeatable; unnamed "
                         f"ones are INPUT[AXIS]). Default: {DEFAULT_DIM_RANGE[0]}:{DEFAULT_DIM_RANGE[1]}")
    option(group, "--reference", default=DEFAULT_REFERENCE, metavar="BACKEND",
                    help=f"the backend whose outputs are the truth for --model files. Default: {DEFAULT_REFERENCE} "
                         "(onnx's evaluator in float64)")
    option(group, "--max-elements", type=int, default=DEFAULT_MAX_ELEMENTS, metavar="N",
                    help=f"refuse --model files whose inputs could hold more elements. Default: {DEFAULT_MAX_ELEMENTS}")
    option(group, "--register", action="append", default=[], metavar="MODULE",
                    help="import MODULE (dotted name or .py file) that registers PyTorch modules as model cases")


def activate(config) -> None:
    """Import the ``--register`` modules and load the ``--model`` files (when the suite wakes up)."""
    from conformance.byom.model_file import ModelError
    from conformance.pytest.model_files_session import ByomSession

    for target in config.getoption("register"):
        _import(target)
    try:
        session = ByomSession.from_config(config)
        for path in session.models:
            _readable(path)
    except ModelError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION] = session
    if session.models and config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --model PATH` (no test paths given) runs the model-file cases alone, wherever
        # pytest starts and wherever the model lies (a model path given with a space is taken
        # for pytest's rootdir: its test paths do not count).
        import conformance.cases

        config.args[:] = [str(Path(conformance.cases.__file__).parent / "test_onnx_models.py")]


def pytest_sessionstart(session):
    """Before anything runs (and after every plugin's configure, so the backends under test are
    loaded): a reference that is also under test would be compared with itself and always pass."""
    config = session.config
    byom, conf = config.stash.get(SESSION, None), config.stash.get(SESSION_KEY, None)
    if byom is None or not byom.models or conf is None:
        return
    from conformance.byom.model_file import ModelError

    try:
        name = byom.reference.name
    except ModelError as exc:
        raise pytest.UsageError(str(exc)) from None
    if any(b.name == name for b in conf.backends):
        raise pytest.UsageError(
            f"--reference {byom.reference_spec} is also under test: it would be compared with itself and always "
            f"pass; pick another --reference (default: {DEFAULT_REFERENCE}, ONNX's own evaluator) or --backend")


SESSION = pytest.StashKey["ByomSession"]()


def _readable(path: str) -> None:
    """A --model that is missing or unreadable is a usage error (one line, exit 4) before any
    case: a file that is there but is not a valid model fails its own cases."""
    from conformance.byom.model_file import ModelError

    file = Path(path)
    if not file.exists():
        raise ModelError(f"--model {path}: no such file")
    if not file.is_file():
        raise ModelError(f"--model {path}: not a file")
    try:
        with file.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ModelError(f"--model {path}: cannot read: {exc.strerror or exc}") from None


def _import(target: str) -> None:
    """Import a dotted module name or a ``.py`` file; a failure is a usage error."""
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            spec = importlib.util.spec_from_file_location(f"conformance_registered_{path.stem}", path)
            if spec is None or not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(target)
    except Exception as exc:
        raise pytest.UsageError(f"--register {target}: {type(exc).__name__}: {exc}") from None


def pytest_generate_tests(metafunc):
    if not is_case(metafunc.definition.path) or SESSION not in metafunc.config.stash:
        return
    if "onnx_model" in metafunc.fixturenames:
        models = metafunc.config.stash[SESSION].models
        metafunc.parametrize("onnx_model", models, ids=_ids(models))
    if "model_backend" in metafunc.fixturenames:
        backends = metafunc.config.stash[SESSION_KEY].backends
        metafunc.parametrize("model_backend", backends, ids=[b.name for b in backends])


def _ids(models: list[str]) -> list[str]:
    """Readable ids: the file stem, or the path when two models share a stem."""
    stems = [Path(m).stem for m in models]
    return [s if stems.count(s) == 1 else m for s, m in zip(stems, models)]


def pytest_collection_modifyitems(config, items):
    """Without --model the model-file case has no parameters: drop it instead of skipping it."""
    if SESSION not in config.stash or config.stash[SESSION].models:
        return
    dropped = [i for i in items if "onnx_model" in getattr(i, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


@pytest.fixture(scope="session")
def byom(request):
    """The run's ``ByomSession``: the loaded --model files, the reference, the options."""
    return request.config.stash[SESSION]
