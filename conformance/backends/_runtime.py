"""What the optional runtimes (OpenVINO, tract, MNN, ncnn, ExecuTorch, LiteRT) share.

The missing-extra usage error, the one way a runtime's failure becomes a ``BackendError``
(exception type plus the runtime's own message), a private scratch folder for the converters
that only write files, a conversion cache keyed by the model's bytes, and the thread count.
Nothing here imports a runtime: each backend module imports its own package lazily.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import weakref
from typing import Callable, Iterator

import onnx

from conformance.backends.base import BackendError
from conformance.backends.ortformat import fast_tmp


class Unsupported(BackendError):
    """The runtime cannot take this model at all (a documented limit, not a wrong number).

    The core may report it as a skip with this message rather than a failure.
    """


def require(runtime: str, extra: str, *modules: str) -> None:
    """Raise the one-line usage error when any of ``modules`` is not installed.

    ``find_spec`` only looks the package up: the heavy import happens when the backend is used.
    """
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise BackendError(
                f'runtime {runtime!r} needs the {extra} extra: pip install "conformance[{extra}]"'
            )


def load_module(runtime: str, module: str):
    """Import ``module`` for ``runtime``; an install that is present but broken is one line too."""
    try:
        return importlib.import_module(module)
    except Exception as exc:  # a broken install raises anything from ImportError to OSError
        raise BackendError(f"{runtime}: importing {module} failed: {type(exc).__name__}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """The message on one line: runtimes chain their causes over several lines (tract's
    "Translating node ..." is followed by the reason, "Params are not const")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " | ".join(lines)[:500] if lines else "(no message)"


@contextlib.contextmanager
def failing(runtime: str, step: str) -> Iterator[None]:
    """Turn anything ``step`` raises into ``BackendError("RUNTIME: STEP failed: Type: message")``."""
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"{runtime}: {step} failed: {type(exc).__name__}: {_one_line(exc)}") from exc


def threads(requested: int | None) -> int:
    """The thread count a runtime gets: ``requested``, else every core this process may use
    (what torch and ONNX Runtime take by default, so latency rows compare like with like)."""
    if requested:
        return int(requested)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def expect_inputs(runtime: str, count: int, inputs) -> None:
    """A session fed the wrong number of arrays says so (rather than failing deep in the runtime)."""
    if len(inputs) != count:
        raise BackendError(f"{runtime}: model takes {count} inputs, got {len(inputs)}")


def graph_inputs(model: onnx.ModelProto) -> list[str]:
    """The model's real inputs in order (older exports also list initializers as inputs)."""
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def graph_outputs(model: onnx.ModelProto) -> list[str]:
    return [o.name for o in model.graph.output]


class Scratch:
    """A private folder for one backend's converter files, removed by ``close``.

    Converters that only read and write files (pnnx writes next to its input) each get a fresh
    subfolder, so two conversions never see each other's files.
    """

    def __init__(self, prefix: str):
        self._prefix = prefix
        self._root: str | None = None
        self._count = 0

    def _next(self) -> str:
        if self._root is None:
            self._root = tempfile.mkdtemp(prefix=f"conformance-{self._prefix}-", dir=fast_tmp())
            # A backend that is never closed still leaves nothing behind at exit.
            weakref.finalize(self, shutil.rmtree, self._root, ignore_errors=True)
        self._count += 1
        return os.path.join(self._root, str(self._count))

    def folder(self) -> str:
        """A fresh empty subfolder."""
        path = self._next()
        os.mkdir(path)
        return path

    def file(self, suffix: str) -> str:
        """A fresh file name (not created) ending in ``suffix``."""
        return self._next() + suffix

    def close(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


class ConversionCache:
    """Converted artifacts keyed by the source model's bytes and the conversion settings.

    The suite prepares the same model many times (every drawn weight set is a new model only
    when weights are baked in); a converter that takes seconds runs once per distinct model.
    Failures are cached too, so a model the converter refuses is refused once.
    """

    def __init__(self) -> None:
        self._items: dict[str, object] = {}
        self.conversions = 0

    @staticmethod
    def key(data: bytes, settings: str = "") -> str:
        return hashlib.sha256(data).hexdigest() + "|" + settings

    def get(self, key: str, convert: Callable[[], object]):
        hit = self._items.get(key)
        if hit is None:
            try:
                hit = convert()
            except BackendError as exc:
                hit = exc
            self.conversions += 1
            self._items[key] = hit
        if isinstance(hit, BackendError):
            raise hit
        return hit


def run_tool(runtime: str, step: str, argv: list[str], *, cwd: str, timeout: float = 300) -> None:
    """Run a converter in its own process (a crash or a hang cannot take the test run down).

    A non-zero exit is a ``BackendError`` carrying the tool's last output lines.
    """
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BackendError(f"{runtime}: {step} did not finish in {timeout:.0f} s") from None
    except OSError as exc:
        raise BackendError(f"{runtime}: {step} could not start: {exc}") from None
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in (done.stdout + done.stderr).splitlines()[-4:] if line.strip())
        raise BackendError(f"{runtime}: {step} failed (exit {done.returncode}): {tail[-600:]}")
