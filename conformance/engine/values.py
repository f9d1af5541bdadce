"""The values one example passes between its steps: the target it runs on, what was drawn for it,
and its outcome (or the error that ended it). Plain data: the harness makes them, the driver,
the case check, the diagnosis and the reports read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable

import numpy as np
import onnx

from conformance.backends.base import Backend
from conformance.draw.spec import Case
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe
from conformance.engine.compare import CompareResult
from conformance.formats.onnx_export import ExportTarget, ProgramFormat


@dataclass(frozen=True)
class Target:
    """One runtime under test, fed one format (an ONNX exporter at an opset, or the runtime's
    own program format), at one place (this host, or a device over ADB: the backend's)."""

    backend: Backend
    export: ExportTarget | ProgramFormat

    @property
    def id(self) -> str:
        return f"{self.backend.name}-{self.export.id}"

    @property
    def place(self) -> str:
        return getattr(self.backend, "place", "host")

    def __repr__(self) -> str:
        return f"Target({self.id})"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis' printer expands dataclasses
        printer.text(repr(self))


@dataclass(frozen=True)
class Example:
    """Everything drawn for one example (printed by hypothesis, enough to replay it)."""

    structure: Hashable
    weights: WeightRecipe
    inputs: InputRecipe
    feed: str  # "initializers" (weights baked in) or "inputs" (weights fed at run time)
    deployment: Deployment = Deployment(static=False, runs=1)  # static export? runs per session


@dataclass
class Outcome:
    case: Case
    target: Target
    example: Example
    result: CompareResult
    model: onnx.ModelProto | None  # what an ONNX runtime ran (for reproducers); None for programs
    expected: list[np.ndarray] = field(default_factory=list)
    actual: list[np.ndarray] = field(default_factory=list)
    reproducer: str | None = None  # folder written for a failure
    fed_inputs: list[np.ndarray] = field(default_factory=list)  # all model inputs, weights included
    oracle: Callable[[], list[np.ndarray]] | None = None  # the float64 run, computed on demand
    worst_output: int = 0  # the output ``result`` describes
    run_index: int = 0  # which run of the prepared session (deployments run it several times)
    wrote_inputs: tuple[int, ...] = ()  # inputs the run wrote into (``result`` then compares input i)
    overlap: str = ""  # how the run overlapped others ("" when run alone)
    placement: Callable[[], dict | None] | None = None  # the session's node -> where it ran, if it says


class WouldExport(Exception):
    """The example needs an artifact not made yet (refused while shrinking: see the driver)."""


class ExampleError(Exception):
    """A runtime or exporter error while running one example, with what is known of it."""

    def __init__(self, error: Exception, model: onnx.ModelProto | None, inputs: list[np.ndarray],
                 expected: list[np.ndarray]):
        super().__init__(str(error))
        self.error, self.model, self.inputs, self.expected = error, model, inputs, expected
