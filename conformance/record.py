"""What the run found, per test: examples, failures, the worst comparison. Feeds the terminal
summary and ``reports/parity.json``."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from conformance.compare import CompareResult


@dataclass
class CaseRecord:
    nodeid: str
    case: str
    kind: str
    backend: str
    exporter: str
    opset: int
    examples: int = 0
    failures: int = 0
    outcome: str = "unknown"  # passed / failed / skipped, from pytest's report
    seconds: float = 0.0  # the test's own run time (pytest's call duration)
    worst: CompareResult | None = None
    message: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["worst"] = None if self.worst is None else {**asdict(self.worst), "margin": self.worst.margin}
        return data


@dataclass
class Recorder:
    records: dict[str, CaseRecord] = field(default_factory=dict)

    def add(self, nodeid: str, outcome) -> None:
        rec = self.records.get(nodeid)
        if rec is None:
            t = outcome.target
            rec = self.records[nodeid] = CaseRecord(
                nodeid, outcome.case.name, outcome.case.kind, t.backend.name, t.export.exporter, t.export.opset
            )
        rec.examples += 1
        result = outcome.result
        if not result.ok:
            rec.failures += 1
        # A failure replaces any pass; a later failure replaces an earlier one, because hypothesis
        # replays the shrunk example last: the report then shows what the message and the
        # reproducer show. Among passes, the largest error is kept.
        if rec.worst is None or not result.ok or (rec.worst.ok and result.max_abs > rec.worst.max_abs):
            rec.worst = result

    def is_new_worst(self, nodeid: str, result: CompareResult) -> bool:
        """True when ``result`` is further from the reference than anything seen in the test."""
        rec = self.records.get(nodeid)
        return rec is None or rec.worst is None or (rec.worst.ok and result.max_abs > rec.worst.max_abs)

    def set_outcome(self, nodeid: str, outcome: str, message: str = "", seconds: float = 0.0) -> None:
        if nodeid in self.records:
            rec = self.records[nodeid]
            rec.outcome, rec.message, rec.seconds = outcome, message, rec.seconds + seconds

    @property
    def examples(self) -> int:
        return sum(r.examples for r in self.records.values())

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.records.values())

    def write(self, path: Path, meta: dict) -> None:
        payload = {"meta": meta, "cases": [r.to_json() for r in self.records.values()]}
        atomic_write(path, json.dumps(payload, indent=1, default=str))


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
