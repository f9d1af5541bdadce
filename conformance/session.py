"""The state of one conformance run: validated options, backends, targets, harness."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance.backends import Backend, BackendError, load_backends
from conformance.export import EXPORTERS, ExportTarget, default_opsets, newest_opset, support_verdict
from conformance.parity import Harness, Target


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


@dataclass
class ConformanceSession:
    backends: list[Backend]
    exporters: list[str]
    opsets: list[int] | None  # None: each exporter's defaults (export.default_opsets)
    decimal: int
    reports: Path
    harness: Harness = field(init=False)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.harness = Harness(self.decimal, reproducers=self.reports / "reproducers")

    @classmethod
    def from_options(cls, *, backends: list[str], ort_provider: str, exporters: list[str],
                     opsets: list[str], decimal: int, reports: Path, devices: list[str] | None = None,
                     device_options: dict | None = None) -> "ConformanceSession":
        if not 0 <= decimal <= 12:
            raise UsageError(f"--decimal {decimal} is out of range; use 0-12")
        options = device_options or {}
        try:
            loaded = load_backends(backends, ort_provider=ort_provider, devices=devices or (),
                                   adb=options.get("adb"), device_dir=options.get("device_dir"),
                                   runner_cmd=options.get("runner_cmd"),
                                   device_timeout=options.get("timeout", 30.0))
        except BackendError as exc:
            raise UsageError(str(exc)) from None
        return cls(
            backends=loaded,
            exporters=_parse_exporters(exporters) if exporters else list(EXPORTERS),
            opsets=_parse_opsets(opsets) if opsets else None,
            decimal=decimal,
            reports=reports,
        )

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)

    def export_targets(self) -> list[ExportTarget]:
        return [ExportTarget(e, o) for e in self.exporters for o in self.opsets_for(e)]

    def opsets_for(self, exporter: str) -> list[int]:
        return self.opsets if self.opsets is not None else default_opsets(exporter)

    def targets(self) -> list[Target]:
        return [Target(b, t) for b in self.backends for t in self.export_targets()]

    def primary_export(self) -> ExportTarget | None:
        """The export used where the exporter does not matter (latency, the 16-block SRResNet):
        TorchScript at opset 17 when selected, else the first supported pair."""
        supported = [t for t in self.export_targets() if not self.unsupported(t)]
        preferred = ExportTarget("torchscript", 17)
        return preferred if preferred in supported else (supported[0] if supported else None)

    @staticmethod
    def unsupported(target: ExportTarget) -> str | None:
        return support_verdict(target)

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
        return lines

    def summary_lines(self) -> list[str]:
        recorder = self.harness.recorder
        if not recorder.records:
            return []
        wall = time.perf_counter() - self.started
        failed = [r for r in recorder.records.values() if r.outcome == "failed"]
        worst = max((r.worst.margin for r in recorder.records.values() if r.worst is not None and r.worst.ok),
                    default=0.0)
        busy = recorder.seconds or wall  # the parity cases' own time, not the other tests'
        exports = f"; {self.harness.exports.exports} exports" if self.harness.exports.exports else ""
        lines = [
            f"{recorder.examples} examples in {len(recorder.records)} parity cases, {busy:.1f} s in them "
            f"({recorder.examples / busy:.1f} examples/s); {wall:.1f} s wall{exports}",
            f"closest pass used {worst:.1%} of the tolerance ({1.5 * 10 ** -self.decimal:.3g})",
        ]
        for rec in failed:
            failing = rec.worst is not None and not rec.worst.ok
            detail = rec.worst.summary() if failing else (rec.message.strip().splitlines() or [""])[-1]
            lines.append(f"FAILED {rec.case} on {rec.backend} [{rec.exporter} opset {rec.opset}]: {detail}")
        return lines

    def write_reports(self) -> Path:
        path = self.reports / "parity.json"
        meta = {"decimal": self.decimal, "header": self.header_lines(), "wall_s": time.perf_counter() - self.started}
        self.harness.recorder.write(path, meta)
        return path

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
