"""Parity records from pytest-xdist workers, merged into the controller's recorder.

Each worker has its own ``Recorder``; only the controller writes ``reports/parity.json`` (one
writer, so the file is never written concurrently), so without this the controller's file would
hold no cases. A worker hands its records over in ``workeroutput`` (xdist's channel back to the
controller) at the end of its session, and the controller merges them when the worker goes down,
before the terminal summary and the report are written.
"""

from __future__ import annotations

import json

import pytest

from conformance.compare import CompareResult, OracleVerdict
from conformance.record import CaseRecord

KEY = "conformance_parity_records"


def record_from_json(data: dict) -> CaseRecord:
    """The inverse of ``CaseRecord.to_json``."""
    data = dict(data)
    worst = data.pop("worst", None)
    record = CaseRecord(**data)
    if worst is not None:
        worst = {k: v for k, v in worst.items() if k != "margin"}
        oracle = worst.pop("oracle", None)
        worst["worst_index"] = tuple(worst.get("worst_index") or ())
        record.worst = CompareResult(**worst, oracle=OracleVerdict(**oracle) if oracle else None)
    return record


class XdistRecords:
    """Hooks: workers send their records, the controller merges them."""

    def __init__(self, recorder_of):
        self._recorder_of = recorder_of  # config -> Recorder (or None without the conformance plugin)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        config = session.config
        recorder = self._recorder_of(config)
        if recorder is not None and hasattr(config, "workeroutput"):
            config.workeroutput[KEY] = json.dumps([r.to_json() for r in recorder.records.values()], default=str)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        recorder = self._recorder_of(node.config)
        payload = getattr(node, "workeroutput", {}).get(KEY)
        if recorder is None or not payload:
            return
        for data in json.loads(payload):
            recorder.records[data["nodeid"]] = record_from_json(data)
