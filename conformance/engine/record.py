"""One record per parity test: the single source of every report.

A record is opened when a parity test starts (with the labels of its case and target) and
closed when pytest reports the test's outcome; in between, the core counts the examples it ran
(generate phase apart from shrink steps), keeps the closest pass, the (shrunk) failing example
or the error that ended the case, and the reproducer. The terminal summary, ``parity.json``,
``report.json``, the HTML and Markdown reports and JUnit all read these records, so they agree.
Under pytest-xdist a worker ships each closed record on its test report and the controller,
which alone writes ``reports/``, takes it in.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from conformance.engine.compare import CompareResult, OracleVerdict

#: Version of ``parity.json``'s layout. 2: records carry outcome, error type and message, the
#: drawn example, shrink steps apart from examples. Readers accept 1 (no such fields).
SCHEMA_VERSION = 2


@dataclass
class CaseRecord:
    nodeid: str
    case: str
    kind: str
    backend: str
    exporter: str  # the format's family: "torchscript"/"dynamo" (ONNX), "pte", "tflite", "onnx-file"
    opset: int  # 0 where the format has no opset
    place: str = "host"  # "host", or "adb:SERIAL"
    outcome: str = "running"  # running / passed / failed / skipped (pytest's), xfailed when listed
    examples: int = 0  # examples run in the generate phase
    shrink_steps: int = 0  # examples hypothesis ran while shrinking a failure (not examples)
    failures: int = 0  # failing examples in the generate phase
    left_out: int = 0  # examples not compared (a reference that is not finite)
    seconds: float = 0.0  # the test's own duration (setup + call)
    worst: CompareResult | None = None  # the (shrunk) failure, else the closest pass
    error_type: str = ""  # the exception that ended the case (BackendError's cause, ExportError...)
    error: str = ""  # its whole text (a runtime's own message, never cut)
    summary: str = ""  # the one line a summary shows
    message: str = ""  # the one-screen failure message
    example: str = ""  # the drawn example that failed or raised (replayable recipe)
    reproducer: str = ""  # the folder written for a failure (ONNX test-data layout)
    reason: str = ""  # why skipped, or the expected-failure entry's reason
    localization: dict | None = None  # per-layer error profile of a failing model case
    host_diff: dict | None = None  # a device's largest difference from the same runtime on this host
    shard: str = ""  # "I/N": the shard of the run that ran it ("1/1" unsharded)
    machine: str = ""  # "host/cpu_id" of the machine that ran it (conformance.engine.machine)
    run_id: str = ""  # the run (pytest session) that ran it
    diagnosis: dict | None = None  # a failure's reruns under variations and their cause (engine.diagnosis)
    placement: dict | None = None  # where the reported outcome's nodes ran: {"counts": {...}, "nodes": {...}}

    def to_json(self) -> dict:
        data = asdict(self)
        data["worst"] = None if self.worst is None else {**asdict(self.worst), "margin": self.worst.margin}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "CaseRecord":
        """The inverse of ``to_json`` (unknown keys of newer writers are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and k != "worst"}
        record = cls(**values)
        worst = data.get("worst")
        if worst:
            from conformance.engine.qcompare import QCompareResult

            kind = QCompareResult if "qtol" in worst else CompareResult  # an int8 case's verdict in steps
            worst = {k: v for k, v in worst.items() if k in {f.name for f in fields(kind)}}
            oracle = worst.pop("oracle", None)
            worst["worst_index"] = tuple(worst.get("worst_index") or ())
            record.worst = kind(**worst, oracle=OracleVerdict(**oracle) if oracle else None)
        return record

    def note(self, result: CompareResult, *, shrinking: bool) -> None:
        """Count one compared example and keep what the reports show of it."""
        if shrinking:
            self.shrink_steps += 1
        else:
            self.examples += 1
            self.failures += 0 if result.ok else 1
        # A failure replaces any pass; a later failure replaces an earlier one (the shrinker only
        # accepts smaller failing examples, so the last one is the shrunk one). Among passes the
        # largest error is kept.
        if self.worst is None or not result.ok or (self.worst.ok and result.max_abs > self.worst.max_abs):
            self.worst = result

    def is_new_worst(self, result: CompareResult) -> bool:
        """True when ``result`` is a pass further from the reference than any seen so far."""
        return result.ok and (self.worst is None or (self.worst.ok and result.max_abs > self.worst.max_abs))


@dataclass
class Recorder:
    records: dict[str, CaseRecord] = field(default_factory=dict)
    #: shard, machine and run id, set on every record this recorder opens or takes
    stamp: dict = field(default_factory=dict)

    def open(self, nodeid: str, **labels) -> CaseRecord:
        """The record of the test starting now (a rerun of the same test starts afresh)."""
        record = self.records[nodeid] = CaseRecord(nodeid, **{**labels, **self.stamp})
        return record

    def get(self, nodeid: str) -> CaseRecord | None:
        return self.records.get(nodeid)

    def close(self, nodeid: str, outcome: str, seconds: float, *, message: str = "", reason: str = "") -> None:
        """Set the outcome pytest reported; a failure the core did not explain keeps pytest's text."""
        record = self.records.get(nodeid)
        if record is None:
            return
        record.outcome, record.seconds = outcome, record.seconds + seconds
        if reason:
            record.reason = reason
        if outcome == "failed" and not record.message:
            record.message = message
            record.summary = record.summary or _last_line(message)

    def close_as_ended(self, nodeid: str, error: str, last_example: str = "") -> None:
        """Close the record of a case whose test process died under it (a runtime crashed, or
        held the GIL past the case's deadline): the controller's side of a lost worker."""
        record = self.records.get(nodeid)
        if record is None or record.outcome != "running":
            return
        record.error_type, record.error = "ProcessEnded", error
        record.summary = ("the test process ended during this case: a runtime crashed, or held the GIL "
                          "past --case-timeout (its stack is in the run's output)")
        message = record.summary
        if last_example:
            record.example = last_example.split(": ", 1)[-1]
            message += f"\n  {last_example}"
        self.close(nodeid, "failed", 0.0, message=f"{message}\n{error}")

    def take(self, data: dict) -> None:
        """A closed record from an xdist worker."""
        record = CaseRecord.from_json({**data, **self.stamp})  # the controller's run id, not the worker's
        self.records[record.nodeid] = record

    @property
    def examples(self) -> int:
        return sum(r.examples for r in self.records.values())

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.records.values())

    def payload(self, meta: dict) -> dict:
        return {"schema_version": SCHEMA_VERSION, "meta": meta, "cases": [r.to_json() for r in self.records.values()]}


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
