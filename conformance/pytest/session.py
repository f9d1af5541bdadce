"""The state of one conformance run: validated options, backends, targets, harness."""

from __future__ import annotations

import json
import platform
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from conformance.backends import Backend, BackendError, ProgramBackend, load_backends
from conformance.formats.onnx_export import (EXPORTERS, ExportTarget, ProgramFormat, default_opsets, newest_opset,
                                support_verdict)
from conformance.engine.harness import FEEDS, Harness, Target
from conformance.engine.record import Recorder, atomic_write


class UsageError(Exception):
    """A bad command-line option: reported as a usage error, without a traceback."""




def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _parse_opsets(values: list[str]) -> list[int]:
    newest = max(newest_opset(e) for e in EXPORTERS)
    valid = range(7, newest + 1)
    opsets = []
    for value in values:
        try:
            opset = int(value)
        except ValueError:
            opset = None
        if opset not in valid:
            raise UsageError(f"--opset {value!r} is not a valid opset; valid: {valid.start}-{valid.stop - 1}")
        opsets.append(opset)
    return sorted(set(opsets))


def _parse_exporters(values: list[str]) -> list[str]:
    for value in values:
        if value not in EXPORTERS:
            raise UsageError(f"--exporter {value!r} is unknown; valid: {', '.join(EXPORTERS)}")
    return [e for e in EXPORTERS if e in values]


def _placement_options(values: list[str], backends: list[Backend]) -> list:
    """The ``--expect-placement`` entries; one naming no backend of the run is a typo."""
    import fnmatch

    from conformance.report import expected

    found = []
    for value in values:
        try:
            entry = expected.placement_option(value)
        except expected.ExpectedError as exc:
            raise UsageError(str(exc)) from None
        if not any(fnmatch.fnmatchcase(b.name, entry.backend) for b in backends):
            raise UsageError(f"--expect-placement {value!r}: no backend of this run matches {entry.backend!r} "
                             f"(backends: {', '.join(b.name for b in backends)})")
        found.append(entry)
    return found


@dataclass
class ConformanceSession:
    backends: list[Backend]
    exporters: list[str]
    opsets: list[int] | None  # None: each exporter's defaults (export.default_opsets)
    decimal: int
    reports: Path
    case_timeout: float | None = None
    feeds: tuple[str, ...] = FEEDS
    expectations: object = None  # conformance.report.expected.Expectations
    harness: Harness = field(init=False)
    recorder: Recorder = field(default_factory=Recorder)
    started: float = field(default_factory=time.perf_counter)
    #: Pairs this run's parity.json, benchmark JSON and report.json (``conformance report``).
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    shard_plan: object = None  # conformance.pytest.shards.ShardPlan: which share of the selection ran

    def __post_init__(self) -> None:
        from conformance.engine.machine import machine_info

        shard = str(self.shard_plan.spec) if self.shard_plan is not None else "1/1"
        self.recorder.stamp = {"shard": shard, "machine": machine_info()["id"], "run_id": self.run_id}
        if self.expectations is None:
            from conformance.report.expected import Expectations

            self.expectations = Expectations()
        self.harness = Harness(self.decimal, tolerance_for=self._tolerance_for)
        self.header_notes: list[str] = []  # lines the header adds (a default runtime left out, and why)

    def _tolerance_for(self, case_name: str, target: Target, nodeid: str) -> int | None:
        """A checked-in tolerance override for this case, if any."""
        return self.expectations.decimal_for({
            "case": case_name, "backend": target.backend.name, "exporter": target.export.exporter,
            "opset": target.export.opset, "nodeid": nodeid})

    @classmethod
    def from_options(cls, *, backends: list[str], ort_provider: str, exporters: list[str],
                     opsets: list[str], decimal: int, reports: Path, devices: list[str] | None = None,
                     device_options: dict | None = None, case_timeout: float | None = None,
                     feed: str = "both", expected_failures: str | None = None,
                     shard_plan: object = None, expect_placement: list[str] = ()) -> "ConformanceSession":
        from conformance.report import expected

        if not 0 <= decimal <= 12:
            raise UsageError(f"--decimal {decimal} is out of range; use 0-12")
        if case_timeout is not None and not case_timeout > 0:
            raise UsageError(f"--case-timeout {case_timeout:g} must be a positive number of seconds")
        try:
            expectations = expected.load(expected_failures)
        except expected.ExpectedError as exc:
            raise UsageError(str(exc)) from None
        options = device_options or {}
        try:
            loaded = load_backends(backends, ort_provider=ort_provider, devices=devices or (),
                                   adb=options.get("adb"), device_dir=options.get("device_dir"),
                                   runner_cmd=options.get("runner_cmd"),
                                   device_timeout=options.get("timeout", 30.0),
                                   device_progress=options.get("progress"),
                                   device_runtimes=options.get("runtimes") or ("onnxruntime",))
        except BackendError as exc:
            raise UsageError(str(exc)) from None
        expectations.placements[:0] = _placement_options(expect_placement, loaded)
        return cls(
            backends=loaded,
            exporters=_parse_exporters(exporters) if exporters else list(EXPORTERS),
            opsets=_parse_opsets(opsets) if opsets else None,
            decimal=decimal,
            reports=reports,
            case_timeout=case_timeout,
            feeds=FEEDS if feed == "both" else (feed,),
            expectations=expectations,
            shard_plan=shard_plan,
        )

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)

    def export_targets(self) -> list[ExportTarget]:
        return [ExportTarget(e, o) for e in self.exporters for o in self.opsets_for(e)]

    def opsets_for(self, exporter: str) -> list[int]:
        return self.opsets if self.opsets is not None else default_opsets(exporter)

    def targets(self) -> list[Target]:
        """Every (format, runtime, place): ONNX runtimes get each exporter x opset; a runtime
        that takes a torch program gets its own format."""
        return [t for b in self.backends for t in self.targets_of(b)]

    def targets_of(self, backend: Backend) -> list[Target]:
        if isinstance(backend, ProgramBackend):
            return [Target(backend, ProgramFormat(backend.format))]
        return [Target(backend, t) for t in self.export_targets()]

    def open_record(self, nodeid: str, params: dict, test_name: str):
        """Open the record of a parity test, labelled from its parameters."""
        case = params.get("case") or params.get("onnx_model")
        target = params.get("target") or params.get("qtarget")  # qtarget: an int8 case
        backend = target.backend if target is not None else params.get("backend") or params.get("model_backend")
        fmt = target.export if target is not None else params.get("export_target")
        if fmt is None and "backend" in params:  # a test on the primary export (the 16-block SRResNet)
            fmt = self.primary_export() if not isinstance(backend, ProgramBackend) else ProgramFormat(backend.format)
        if "onnx_model" in params:
            fmt = ProgramFormat("onnx-file")
        name = getattr(case, "name", None) or (Path(case).stem if isinstance(case, str) else test_name)
        backend_name = getattr(backend, "name", None) or params.get("backend_name") or "(suite)"  # the cat pipeline
        kind = "onnx-file" if "onnx_model" in params else "pipeline" if case is None and "backend_name" in params \
            else "operator"
        return self.recorder.open(
            nodeid, case=name, kind=getattr(case, "kind", kind),
            backend=backend_name, exporter=getattr(fmt, "exporter", "-"),
            opset=getattr(fmt, "opset", 0), place=getattr(backend, "place", "host"))

    def case_check(self, nodeid: str):
        """The ``parity`` fixture of one test: runs cases into its record."""
        from conformance.pytest.casecheck import CaseCheck

        record = self.recorder.get(nodeid)
        if record is None:  # a test without the parity marker that still runs a case
            record = self.recorder.open(nodeid, case="?", kind="operator", backend="?", exporter="-", opset=0)
        return CaseCheck(self.harness, record, case_timeout=self.case_timeout, feeds=self.feeds,
                         reproducers=self.reports / "reproducers", qtol_for=self._qtol_for,
                         placement_for=self.expectations.placement_for)

    def _qtol_for(self, case_name: str, target: Target, nodeid: str) -> int | None:
        """A checked-in qtol override for this int8 case, if any."""
        return self.expectations.qtol_for({
            "case": case_name, "backend": target.backend.name, "exporter": target.export.exporter,
            "opset": target.export.opset, "nodeid": nodeid})

    def primary_export(self) -> ExportTarget | None:
        """The export used where the exporter does not matter (latency, the 16-block SRResNet):
        TorchScript at opset 17 when selected, else the first supported pair."""
        supported = [t for t in self.export_targets() if not self.unsupported(t)]
        preferred = ExportTarget("torchscript", 17)
        return preferred if preferred in supported else (supported[0] if supported else None)

    @staticmethod
    def unsupported(target) -> str | None:
        return support_verdict(target) if isinstance(target, ExportTarget) else None

    def header_lines(self) -> list[str]:
        import onnx
        import onnxruntime
        import torch

        lines = [
            f"conformance: torch {torch.__version__}, onnx {onnx.__version__}, "
            f"onnxruntime {onnxruntime.__version__}; CPU: {cpu_name()}",
            "conformance: " + "; ".join(
                f"{e} exporter at opsets {', '.join(map(str, self.opsets_for(e)))}" for e in self.exporters
            ) + f"; "
            f"decimal={self.decimal}",
        ]
        for backend in self.backends:
            facts = ", ".join(f"{k} {v}" for k, v in backend.versions().items())
            lines.append(f"conformance: backend {backend.name}: {facts}")
        return lines + self.header_notes

    def summary_lines(self) -> list[str]:
        recorder = self.recorder
        if not recorder.records:
            return []
        wall = time.perf_counter() - self.started
        failed = [r for r in recorder.records.values() if r.outcome == "failed"]
        shrink = sum(r.shrink_steps for r in recorder.records.values())
        worst = max((r.worst.margin for r in recorder.records.values() if r.worst is not None and r.worst.ok
                     and not hasattr(r.worst, "qtol")), default=0.0)
        busy = recorder.seconds or wall  # the parity cases' own time, not the other tests'
        exports = f"; {self.harness.exports.exports} exports" if self.harness.exports.exports else ""
        shrunk = f"; {shrink} shrink steps" if shrink else ""
        left = sum(r.left_out for r in recorder.records.values())
        shrunk += f"; {left} examples left out (outside what the runtime takes)" if left else ""
        lines = [
            f"{recorder.examples} examples in {len(recorder.records)} parity cases, {busy:.1f} s in them "
            f"({recorder.examples / busy:.1f} examples/s); {wall:.1f} s wall{exports}{shrunk}",
            f"closest pass used {worst:.1%} of the tolerance ({1.5 * 10 ** -self.decimal:.3g})",
        ]
        refs = self.harness.references
        if refs.hits:
            lines.insert(1, f"PyTorch references: {refs.misses} computed, {refs.hits} reused by another runtime "
                            "on the same example")
        from conformance.pytest.quantized import quantized_summary

        lines += quantized_summary(recorder.records.values())
        lines += [failed_line(rec) for rec in failed]
        return lines

    def statistics_lines(self) -> list[str]:
        """Per parity case, what hypothesis' own statistics would say (``--hypothesis-show-statistics``):
        its tests run inside the suite's case check, where hypothesis' pytest plugin does not look."""
        lines = ["hypothesis statistics of the parity cases:"]
        for rec in self.recorder.records.values():
            if rec.outcome == "skipped":
                continue
            per = f", {rec.seconds / rec.examples * 1e3:.1f} ms per example" if rec.examples else ""
            lines.append(f"  {rec.nodeid}: {rec.examples} examples ({rec.failures} failing, {rec.left_out} left out), "
                         f"{rec.shrink_steps} shrink steps, {rec.seconds:.2f} s{per}; {rec.outcome}")
        return lines

    def run_meta(self) -> dict:
        """What ``conformance merge`` checks across shards: the shard, the machine, the versions."""
        from conformance.engine.machine import machine_info

        return {"shard": self.shard_plan.meta() if self.shard_plan is not None else None,
                "machine": machine_info(), "versions": self.versions()}

    def versions(self) -> dict:
        """The suite's and every runtime's versions (shards of different versions do not merge)."""
        from importlib.metadata import PackageNotFoundError, version

        import onnx
        import onnxruntime
        import torch

        from conformance.report.build import git_commit

        try:
            suite = version("conformance")
        except PackageNotFoundError:
            suite = "unknown"
        found = {"suite": suite, "commit": git_commit() or "", "torch": torch.__version__,
                 "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
        for backend in self.backends:
            found[f"backend {backend.name}"] = backend.versions()
        return found

    def parity_payload(self) -> dict:
        """``parity.json``'s content: the records and the run's facts, built in this one place
        (the file and every report read it)."""
        meta = {"decimal": self.decimal, "header": self.header_lines(), "run_id": self.run_id,
                "wall_s": time.perf_counter() - self.started, **self.run_meta()}
        return self.recorder.payload(meta)

    def write_reports(self) -> Path:
        path = self.reports / "parity.json"
        atomic_write(path, json.dumps(self.parity_payload(), indent=1, default=str))
        return path

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


def failed_line(rec) -> str:
    """The terminal summary's line of a failed case: what, on which runtime, in which format."""
    where = f"{rec.exporter} opset {rec.opset}" if rec.opset else rec.exporter
    where = f" [{where}]" if where not in ("", "-") else ""  # the cat pipeline: its runtime alone
    test = rec.nodeid.split("::")[-1].split("[")[0]
    what = rec.case if test in ("test_operator", "test_model", rec.case) else f"{rec.case} ({test})"
    return f"FAILED {what} on {rec.backend}{where}: {rec.summary}"
