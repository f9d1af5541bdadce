"""``conformance gate``: the pre-release step. Runs the parity and latency cases in a pytest
subprocess (progress streamed), writes JUnit XML and the reports, compares with a baseline,
prints a short verdict with the report's path, and exits 1 (FAIL) when a parity case fails
(other than a listed expected failure) or a case got slower than the baseline beyond the
threshold, 3 (INCONCLUSIVE) when nothing failed but the machine was too busy to judge a latency
case (rerun it on a quieter machine; never a pass), 0 (PASS) only when everything held.
Arguments after ``--`` go to pytest (``-- --device SERIAL -k conv``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
PLUGIN = "conformance.pytest.reports"


def register(subparsers) -> None:
    parser = subparsers.add_parser("gate", help="pre-release gate: parity + latency cases, reports, baseline check",
                                   description=__doc__)
    parser.add_argument("--baseline", metavar="NAME", help="compare with this saved run. Default: no comparison")
    parser.add_argument("--save-baseline", metavar="NAME", help="keep this run as a numbered baseline NAME")
    parser.add_argument("--max-slowdown", type=float, default=10.0, metavar="PCT",
                        help="fail when a backend's latency grew by more than PCT%% and a Mann-Whitney U test "
                             "finds the change significant (p < 0.01), in wall time and relative to the PyTorch "
                             "rounds timed around it, on a machine no busier than at the baseline; on a busier "
                             "one the case is INCONCLUSIVE (exit 3). Default: 10")
    parser.add_argument("--allow-missing", action="store_true",
                        help="list the baseline's cases this run did not run without failing. "
                             "Default: each one fails the gate")
    parser.add_argument("--reports", default="reports", metavar="DIR", help="where reports go. Default: reports/")
    parser.add_argument("--expected-failures", metavar="FILE",
                        help="known failures and tolerances (TOML). Default: conformance/expected_failures.toml")
    parser.add_argument("--cases", metavar="PATH",
                        help="what pytest collects (unless pytest args name paths). Default: cases/ in a "
                             "checkout, else the installed package's (--pyargs conformance.cases)")
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="passed to pytest unchanged")
    parser.set_defaults(func=run)


def pytest_command(args) -> list[str]:
    """The pytest command line the gate runs."""
    reports = Path(args.reports)
    cmd = [sys.executable, "-m", "pytest", "-p", PLUGIN, f"--reports={reports}",
           f"--junitxml={reports / 'junit.xml'}", f"--max-slowdown={args.max_slowdown}",
           "--benchmark-save-data",  # raw rounds: the U test and the distributions need them
           # beside the reports, so `conformance report --reports DIR` finds this run's timings
           f"--benchmark-storage={reports / 'benchmarks'}", "--benchmark-autosave"]
    if getattr(args, "allow_missing", False):
        cmd.append("--allow-missing")
    for option, value in (("--baseline", args.baseline), ("--save-baseline", args.save_baseline),
                          ("--expected-failures", args.expected_failures)):
        if value:
            cmd.append(f"{option}={value}")
    extra = list(args.pytest_args)
    names_path = any(not a.startswith("-") and Path(a.split("::")[0]).exists() for a in extra)
    return cmd + extra + ([] if names_path else _cases(args.cases))


def _cases(given: str | None) -> list[str]:
    """The cases to collect: as given; the checkout's cases/ when the gate runs in one; else
    the installed package's, so the gate works from any folder."""
    if given:
        return [given]
    if (Path("cases") / "test_operators.py").is_file():
        return ["cases"]
    return ["--pyargs", "conformance.cases"]


def stream(cmd: list[str]) -> int:
    """Run ``cmd``, copying its output line by line (pytest's progress) as it comes."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
        except KeyboardInterrupt:
            proc.terminate()
            raise
        return proc.wait()


def read_report(reports: Path, since: float) -> dict | None:
    """This run's report.json (None when pytest did not get to write one)."""
    path = reports / "report.json"
    try:
        if path.stat().st_mtime < since:
            return None
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run(args) -> int:
    from conformance.report.options import check

    # Before the run, not after it: a typo in --baseline must not cost a whole run.
    problem = check(reports=Path(args.reports), baseline=args.baseline, max_slowdown=args.max_slowdown)
    if problem:
        print(f"conformance gate: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    cmd = pytest_command(args)
    print("conformance gate: " + " ".join(cmd[1:]), flush=True)
    started = time.time()
    rc = stream(cmd)
    report = read_report(Path(args.reports), started - 1)
    code = verdict(rc, report, Path(args.reports))
    for saved in sorted(Path(args.reports, "baselines").glob("[0-9]*_*")):
        if saved.stat().st_mtime >= started - 1:
            print(f"  {'saved:':9}{saved}  (compare later runs with --baseline {saved.name[5:]})")
    return code


def verdict(rc: int, report: dict | None, reports: Path) -> int:
    """Print the short verdict; the gate's exit status."""
    if report is None:
        reason = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests ran"}.get(rc, f"exit {rc}")
        print(f"\nconformance gate: FAIL — pytest stopped before writing a report ({reason}); see the output above")
        return rc or EXIT_FAIL
    v = report["verdict"]
    word = v.get("word") or ("PASS" if v["ok"] else "FAIL")
    if rc != 0 and not (word == "INCONCLUSIVE" and rc == 1):  # pytest exits 1 for an inconclusive verdict too
        word = "FAIL"
    print(f"\nconformance gate: {word} — {v['headline']}")
    for nodeid in v["failed"][:10]:
        print(f"  FAILED {nodeid}")
    for nodeid in v.get("errors", [])[:10]:
        print(f"  FAILED {nodeid}")
    from conformance.report.view import rule_of

    for change in latency_changes(report):
        print(f"  {change['verdict'].upper() if change['verdict'] in LOUD else change['verdict']:12} "
              f"{change['fullname']} [{rule_of(change)} rule]: {change['why']} "
              f"(limit {change['threshold']:.0%})")
    missing = v.get("missing", [])
    for nodeid in missing:
        print(f"  MISSING {nodeid}")
    if missing:
        print(f"  {len(missing)} baseline case{'s' if len(missing) != 1 else ''} not run in this run"
              + ("; allowed by --allow-missing" if not v.get("missing_fails")
                 else ": run the baseline's selection, or pass --allow-missing"))
    if v.get("hint"):
        print(f"  note: {v['hint']}")
    if word == "FAIL" and v["ok"] and rc != 0:
        print(f"  pytest exited {rc}: a test outside the parity verdict failed or errored (see above)")
    if v["stale"]:
        print(f"  {v['stale']} stale expected-failure entr{'y' if v['stale'] == 1 else 'ies'} (see the report)")
    for label, name in (("report", "report.html"), ("summary", "summary.md"), ("junit", "junit.xml")):
        print(f"  {label + ':':9}{reports / name}")
    job_summary(reports / "summary.md")
    return {"PASS": EXIT_OK, "INCONCLUSIVE": EXIT_INCONCLUSIVE}.get(word, EXIT_FAIL)


#: Latency verdicts printed in capitals: the ones that keep the gate from passing.
LOUD = ("slower", "inconclusive")


def latency_changes(report: dict) -> list[dict]:
    """The latency cases compared with the baseline, the ones that stop a pass first (the
    verdict's own list when the report has no comparison, as in older reports)."""
    changes = [c for c in ((report.get("comparison") or {}).get("latency") or []) if c["verdict"] != "reference"]
    if not changes:
        changes = ([{"verdict": "slower", **c} for c in report["verdict"].get("slower", [])]
                   + [{"verdict": "inconclusive", **c} for c in report["verdict"].get("inconclusive", [])])
    return sorted(changes, key=lambda c: c["verdict"] not in LOUD)


def job_summary(summary: Path) -> None:
    """On GitHub Actions, the Markdown summary becomes the job's summary page."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target and summary.exists():
        with open(target, "a") as f:
            f.write(summary.read_text())
