"""Parity rows: one per parity test (case x backend x exporter x opset), from ``parity.json``
and the outcomes pytest reported, with expected failures applied.

A row is a plain dict (it goes straight into ``report.json`` and baselines)::

    nodeid, test, case, kind, backend, exporter, opset, status (pass/fail/xfail/skip),
    examples, failures, decimal, tolerance, max_abs, max_rel, ulp, margin, worst_index,
    oracle, histogram, message, reason (of an xfail), reproducer
"""

from __future__ import annotations

from pathlib import Path

from conformance.engine.compare import tolerance
from conformance.engine.placement import violated
from conformance.engine.reproducer import reproducer_dir

_STATUS = {"passed": "pass", "failed": "fail", "skipped": "skip", "xfailed": "xfail"}
#: The backend of a parity-marked test that checks the suite itself rather than a backend.
SUITE = "(suite)"


def test_name(nodeid: str) -> str:
    """``cases/test_models.py::test_model[...]`` -> ``test_model``."""
    return nodeid.split("::")[-1].split("[")[0]


def parity_rows(parity: dict, outcomes: dict[str, dict] | None = None, *,
                reproducers: Path | None = None) -> list[dict]:
    """Merge the recorder's cases with pytest's outcomes (a test that failed before recording an
    example, a backend that crashed, still gets a row)."""
    outcomes = outcomes or {}
    decimal = int(parity.get("meta", {}).get("decimal", 3))
    rows = {rec["nodeid"]: _from_record(rec, decimal) for rec in parity.get("cases", [])}
    for nodeid, seen in outcomes.items():
        row = rows.setdefault(nodeid, _from_outcome(nodeid, seen, decimal))
        row["status"] = _status(seen.get("outcome"), seen.get("xfail"))
        row["reason"] = seen.get("xfail") or ""
        row["message"] = seen.get("message") or row.get("message", "")
    for row in rows.values():
        folder = reproducer_dir(reproducers, row["nodeid"]) if reproducers else None
        row["reproducer"] = str(folder) if folder and row["status"] in ("fail", "xfail") and folder.exists() else ""
    return sorted(rows.values(), key=_order)


def _order(row: dict):
    return (row["kind"] != "operator", row["test"], row["case"], row["backend"], row["exporter"], row["opset"])


def _status(outcome: str | None, xfail: str | None) -> str:
    if xfail:
        return "xfail"
    return _STATUS.get(outcome or "", "skip")


def _from_record(rec: dict, decimal: int) -> dict:
    worst = rec.get("worst") or {}
    row_decimal = int(worst.get("decimal", decimal))
    return {
        "nodeid": rec["nodeid"], "test": test_name(rec["nodeid"]), "case": rec["case"], "kind": rec["kind"],
        "backend": rec["backend"], "exporter": rec["exporter"], "opset": rec["opset"],
        "status": _status(rec.get("outcome"), None),
        "examples": rec.get("examples", 0), "failures": rec.get("failures", 0),
        "shrink_steps": rec.get("shrink_steps", 0), "place": rec.get("place", "host"),
        "error_type": rec.get("error_type", ""), "error": rec.get("error", ""),
        "summary": rec.get("summary", ""), "example": rec.get("example", ""),
        "host_diff": rec.get("host_diff"), "machine": rec.get("machine", ""), "shard": rec.get("shard", ""),
        "seconds": rec.get("seconds", 0.0),
        "cause": (rec.get("diagnosis") or {}).get("cause", ""),
        "placement": (rec.get("placement") or {}).get("counts"),
        "placement_check": _placement_check((rec.get("placement") or {}).get("expected")),
        "placement_missed": violated((rec.get("placement") or {}).get("expected")),
        "decimal": row_decimal, "tolerance": tolerance(row_decimal),
        "max_abs": worst.get("max_abs"), "max_rel": worst.get("max_rel"), "ulp": worst.get("ulp"),
        "margin": worst.get("margin"), "worst_index": worst.get("worst_index"),
        "oracle": worst.get("oracle"), "histogram": worst.get("histogram"),
        "shape_error": worst.get("shape_error"), "message": rec.get("message", ""),
        "reason": rec.get("reason", "") if rec.get("outcome") == "xfailed" else "",
        # int8 cases: the verdict in quantization steps of the output's scale
        "qtol": worst.get("qtol"), "max_steps": worst.get("max_steps"), "mean_steps": worst.get("mean_steps"),
        "sqnr": worst.get("sqnr"),
    }


def _placement_check(expected: dict | None) -> str:
    """One phrase on an expected placement: met, or which nodes ran elsewhere ("" when none)."""
    if not expected:
        return ""
    want = " or ".join(expected["on"])
    if expected.get("unknown"):
        return f"expected {want}: cannot be checked ({expected['unknown']})"
    outside = expected.get("outside") or {}
    if not outside:
        return f"expected {want}: met"
    names = ", ".join(f"{node} on {where}" for node, where in list(outside.items())[:3])
    return f"expected {want}: {len(outside)} node(s) elsewhere ({names}{', ...' if len(outside) > 3 else ''})"


def _from_outcome(nodeid: str, seen: dict, decimal: int) -> dict:
    """A row for a test the recorder never saw (it failed or skipped before its first example)."""
    return {
        "nodeid": nodeid, "test": test_name(nodeid), "case": seen.get("case", "?"),
        "kind": seen.get("kind", "operator"), "backend": seen.get("backend", "?"),
        "exporter": seen.get("exporter", "?"), "opset": seen.get("opset", 0),
        "status": "skip", "examples": 0, "failures": 0, "decimal": decimal, "tolerance": tolerance(decimal),
        "max_abs": None, "max_rel": None, "ulp": None, "margin": None, "worst_index": None,
        "oracle": None, "histogram": None, "shape_error": None, "message": "", "reason": "",
    }


#: Tests that run every case of their kind: their rows are labelled with the case alone.
GENERIC_TESTS = ("test_operator", "test_model", "test_quantized_operator", "test_quantized_model")  # int8: own columns


def row_label(row: dict) -> str:
    """The matrix row a test belongs to: its case, qualified by a special-purpose test's name
    (``superres · tutorial input`` for ``test_superres_tutorial_input``)."""
    if row["test"] in GENERIC_TESTS:
        return row["case"]
    what = row["test"].removeprefix("test_").removeprefix(f"{row['case']}_").replace("_", " ")
    return f"{row['case']} · {what}"


def column_label(row: dict) -> str:
    """``backend · exporter · opset N``; a runtime's own format has no opset (``executorch · pte``),
    the cat pipeline neither exporter nor opset (its column is the runtime alone), and an int8
    column is judged in steps, not decimal-3."""
    if str(row["exporter"]).startswith("int8-"):
        fmt = row["exporter"].removeprefix("int8-")
        return f"{row['backend']} · int8 {fmt}" + (f" · opset {row['opset']}" if row["opset"] else "")
    parts = [row["backend"]]
    if row.get("exporter") not in (None, "", "-"):
        parts.append(row["exporter"])
    if row.get("opset"):
        parts.append(f"opset {row['opset']}")
    return " · ".join(parts)


def matrix(rows: list[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """(row labels, column labels, {(row, column): row}) in a stable, readable order."""
    rows = [r for r in rows if r["backend"] != SUITE]
    cells: dict[tuple[str, str], dict] = {}
    row_labels: list[str] = []
    for row in rows:
        key = (row_label(row), column_label(row))
        if key[0] not in row_labels:
            row_labels.append(key[0])
        if key not in cells or _severity(row) > _severity(cells[key]):
            cells[key] = row
    columns = sorted({column_label(r) for r in rows},
                     key=lambda c: next((r["backend"], r["exporter"], int(r["opset"] or 0))
                                        for r in rows if column_label(r) == c))
    return row_labels, columns, cells


def _severity(row: dict) -> tuple:
    rank = {"skip": 0, "pass": 1, "xfail": 2, "fail": 3}[row["status"]]
    return rank, row.get("margin") or 0.0


def suite_checks(rows: list[dict]) -> str:
    """One line on the suite's self-checks (parity-marked tests without a backend), or ''."""
    checks = [r for r in rows if r["backend"] == SUITE]
    if not checks:
        return ""
    tally = counts(checks)
    return (f"Suite self-checks ({', '.join(sorted({r['test'] for r in checks}))}): "
            f"{tally['pass']} passed, {tally['fail']} failed, {tally['skip']} skipped")


def counts(rows: list[dict]) -> dict[str, int]:
    result = {"pass": 0, "fail": 0, "xfail": 0, "skip": 0}
    for row in rows:
        result[row["status"]] += 1
    return result


def cell_text(row: dict | None) -> str:
    """Short cell text: share of the tolerance used, or how many times over it a failure was."""
    if row is None:
        return ""
    status, margin = row["status"], row.get("margin")
    if status == "skip":
        return "–"
    if status == "xfail":
        return "xfail"
    if status == "fail" and (margin or 0) < 1 and row.get("placement_missed"):
        return "✗ placement"  # the numbers matched; where the nodes ran did not
    if margin is None:
        return "✗ error" if status == "fail" else "✓"
    if row.get("qtol") and row.get("max_steps") is not None:  # an int8 case: steps, not a share of decimal-3
        steps = f"{row['max_steps']:.0f}/{row['qtol']} step{'s' if row['qtol'] != 1 else ''}"
        return f"✗ {steps}" if status == "fail" else f"✓ {steps}"
    if status == "fail":
        return f"✗ {margin:.1f}×" if margin != float("inf") else "✗ shape"
    return f"✓ {margin:.0%}" if margin >= 0.005 else "✓ <1%"
