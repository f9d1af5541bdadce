"""Make pytest's JUnit XML say what the gate's verdict says.

pytest writes ``junit.xml`` before the report's verdict exists, so a latency slowdown (decided
after every case ran, against the baseline) and baseline cases this run never ran would be
invisible to a CI system reading JUnit. ``add_verdict`` marks the slower latency test failed
(or adds a testcase for it), marks an inconclusive one (the machine too busy to judge it) as an
error, and adds one testcase per missing baseline case: failed, or skipped with
``--allow-missing``. The suite's ``failures``/``errors``/``skipped``/``tests`` counts follow.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.engine.record import atomic_write

MISSING_CLASS = "conformance.baseline.missing"


def _names(nodeid: str) -> tuple[str, str]:
    """pytest's (classname, name) for a node id: ``a/b.py::C::t[x]`` -> (``a.b.C``, ``t[x]``)."""
    parts = nodeid.split("::")
    module = parts[0].removesuffix(".py").replace("/", ".")
    return ".".join([module, *parts[1:-1]]), parts[-1]


def _suite(root: ET.Element) -> ET.Element:
    return root if root.tag == "testsuite" else root.find("testsuite")


def _bump(suite: ET.Element, key: str) -> None:
    suite.set(key, str(int(suite.get(key, "0")) + 1))


def _testcase(suite: ET.Element, classname: str, name: str) -> ET.Element:
    for case in suite.iter("testcase"):
        if case.get("classname") == classname and case.get("name") == name:
            return case
    _bump(suite, "tests")
    return ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")


def add_verdict(path: str | Path | None, report: dict) -> bool:
    """Add the verdict's slowdowns and missing cases to the JUnit file at ``path`` (when there
    is one); returns whether the file was changed."""
    verdict = report["verdict"]
    missing = verdict.get("missing") or []
    inconclusive = verdict.get("inconclusive") or []
    if not path or not Path(path).is_file() or not (verdict["slower"] or missing or inconclusive):
        return False
    tree = ET.parse(path)
    suite = _suite(tree.getroot())
    if suite is None:
        return False
    for change in verdict["slower"]:
        case = _testcase(suite, *_names(change["fullname"]))
        if case.find("failure") is None:
            _bump(suite, "failures")
        failure = ET.SubElement(case, "failure", message=f"slower than the baseline: {change['why']}")
        failure.text = (f"median {change['before'] * 1e3:.3g} ms -> {change['after'] * 1e3:.3g} ms; "
                        f"limit {change['threshold']:.0%}")
    for change in inconclusive:  # not a pass: an error (could not be judged), not a failure
        case = _testcase(suite, *_names(change["fullname"]))
        if case.find("error") is None and case.find("failure") is None:
            _bump(suite, "errors")
            ET.SubElement(case, "error", message=f"latency inconclusive against the baseline: {change['why']}")
    for nodeid in missing:
        case = _testcase(suite, MISSING_CLASS, nodeid)
        if verdict.get("missing_fails"):
            _bump(suite, "failures")
            ET.SubElement(case, "failure", message="in the baseline, not run (pass --allow-missing to allow)")
        else:
            _bump(suite, "skipped")
            ET.SubElement(case, "skipped", type="pytest.skip", message="in the baseline, not run (allowed)")
    atomic_write(Path(path), ET.tostring(tree.getroot(), encoding="unicode"))
    return True


def from_rows(path: Path, rows: list[dict], *, name: str = "conformance") -> None:
    """A JUnit file of parity rows (what ``conformance merge`` writes: the shards' own JUnit
    files each hold a share, this one the merged set): one testcase per row."""
    failures = sum(r["status"] == "fail" for r in rows)
    skipped = sum(r["status"] in ("skip", "xfail") for r in rows)
    suite = ET.Element("testsuite", name=name, tests=str(len(rows)), failures=str(failures), errors="0",
                       skipped=str(skipped), time=f"{sum(r.get('seconds') or 0.0 for r in rows):.3f}")
    for row in rows:
        classname, test = _names(row["nodeid"])
        case = ET.SubElement(suite, "testcase", classname=classname, name=test, time=f"{row.get('seconds') or 0:.3f}")
        if row["status"] == "fail":
            failure = ET.SubElement(case, "failure", message=(row.get("summary") or "parity failure")[:500])
            failure.text = row.get("message") or ""
        elif row["status"] in ("skip", "xfail"):
            reason = row.get("reason") or ("expected failure" if row["status"] == "xfail" else "skipped")
            ET.SubElement(case, "skipped", type="pytest.xfail" if row["status"] == "xfail" else "pytest.skip",
                          message=reason[:500])
    root = ET.Element("testsuites")
    root.append(suite)
    atomic_write(Path(path), '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode"))
