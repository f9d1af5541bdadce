"""The state of a pytest run's --model cases: options, the reference, loaded models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conformance.backends.base import Backend, BackendError
from conformance.engine.deadline import CaseTimeout, Deadline
from conformance.byom.drive import drive
from conformance.byom.model_file import ModelError
from conformance.byom.onnx_inputs import parse_dim_specs
from conformance.byom.model_check import ModelCheck


@dataclass
class ByomSession:
    models: list[str]
    reference_spec: str
    dims: dict[str, tuple[int, int]]
    case_timeout: float
    max_elements: int
    _reference: Backend | None = None
    _checks: dict[tuple[str, int], ModelCheck | ModelError] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config) -> "ByomSession":
        """Validated options; ModelError (a usage error) for malformed ones."""
        timeout, bound = config.getoption("case_timeout"), config.getoption("max_elements")
        if not timeout > 0:
            raise ModelError(f"--case-timeout {timeout}: must be positive")
        if bound < 1:
            raise ModelError(f"--max-elements {bound}: must be at least 1")
        return cls(models=list(dict.fromkeys(config.getoption("model"))),
                   reference_spec=config.getoption("reference"),
                   dims=parse_dim_specs(config.getoption("dim")), case_timeout=timeout, max_elements=bound)

    @property
    def reference(self) -> Backend:
        """The reference backend, loaded on first use (a bad name fails the cases that need it)."""
        if self._reference is None:
            from conformance.backends import load_backend

            try:
                self._reference = load_backend(self.reference_spec)
            except BackendError as exc:
                raise ModelError(f"--reference {self.reference_spec}: {exc}") from None
        return self._reference

    def model_check(self, path: str, decimal: int) -> ModelCheck:
        """The loaded model, once per run (a bad model raises the same ModelError every time)."""
        key = (path, decimal)
        if key not in self._checks:
            try:
                from conformance.backends.onnx_reference import second_reference

                check = ModelCheck(Path(path), self.reference, self.dims, self.max_elements, decimal,
                                   second=second_reference(self.reference.name))
                check.prepare_reference(self.case_timeout)
                self._checks[key] = check
            except (ModelError, CaseTimeout) as exc:
                exc = exc if isinstance(exc, ModelError) else ModelError(f"{path}: the reference: {exc}")
                self._checks[key] = exc
        found = self._checks[key]
        if isinstance(found, ModelError):
            raise found
        return found

    def check(self, path: str, backend: Backend, parity) -> None:
        """The body of a --model case: draw, run, record; fail with one screen on a problem."""
        __tracebackhide__ = True
        from hypothesis import settings

        from conformance.draw import profiles

        record = parity.record
        try:
            check, problem = self.model_check(path, parity.harness.decimal), None
        except ModelError as exc:
            check, problem = None, str(exc)
        if problem is None:
            verdict = drive(check, backend, max_examples=profiles.model_examples(),
                            deadline=Deadline(parity.case_timeout), database=settings.default.database,
                            derandomize=settings.default.derandomize, key=record.nodeid, name=record.nodeid,
                            reproducers=parity.reproducers, record=record)
            problem = verdict.problem(self.reference.name)
            if verdict.error is not None:
                record.error_type = type(verdict.error).__name__
                record.error = getattr(verdict.error, "detail", None) or str(verdict.error)
        else:
            record.error_type, record.error = "ModelError", problem
        if problem:  # outside any except block: no "during handling" chain in the report
            record.message, record.summary = problem, problem.splitlines()[0]
            pytest.fail(problem, pytrace=False)
