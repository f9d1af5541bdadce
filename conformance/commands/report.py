"""``conformance report``: rebuild the HTML/Markdown reports from saved files (the recorder's
``parity.json`` and a pytest-benchmark JSON), optionally against a baseline, without rerunning
anything. Exits 1 when the rebuilt verdict fails, like the gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="rebuild the reports from saved parity/benchmark JSON",
                                   description=__doc__)
    parser.add_argument("--reports", default="reports", metavar="DIR", help="reports folder. Default: reports/")
    parser.add_argument("--parity", metavar="FILE", help="recorder JSON. Default: DIR/parity.json")
    parser.add_argument("--benchmark", metavar="FILE",
                        help="pytest-benchmark JSON. Default: the one under DIR/benchmarks/ from the same run as "
                             "the parity file (both carry the run's id)")
    parser.add_argument("--baseline", metavar="NAME", help="compare with this saved run. Default: none")
    parser.add_argument("--save-baseline", metavar="NAME", help="keep these files as a numbered baseline NAME")
    parser.add_argument("--max-slowdown", type=float, default=10.0, metavar="PCT",
                        help="latency limit for the comparison, in percent. Default: 10")
    parser.add_argument("--expected-failures", metavar="FILE",
                        help="known failures (TOML). Default: conformance/expected_failures.toml")
    parser.set_defaults(func=run)


def _load(path: Path | None, what: str) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise SystemExit(f"conformance report: {what} {path} is not JSON: {exc}") from None


def _benchmark_files(reports: Path) -> list[Path]:
    return sorted((reports / "benchmarks").glob("*/[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: p.stat().st_mtime)


def run_id_of(parity: dict | None, reports: Path) -> str | None:
    """The run that wrote ``parity``: its own ``meta.run_id``, else that of the ``report.json``
    the report plugin wrote beside it in the same run."""
    run_id = ((parity or {}).get("meta") or {}).get("run_id")
    if run_id or parity is None:
        return run_id
    try:
        return (json.loads((reports / "report.json").read_text()).get("meta") or {}).get("run_id")
    except (OSError, ValueError):
        return None


def paired_benchmark(reports: Path, run_id: str | None) -> tuple[Path | None, str]:
    """The benchmark JSON of run ``run_id`` (not merely the newest: that may be another run's),
    and a note for the reader when the pairing is not exact."""
    files = _benchmark_files(reports)
    if run_id is None:
        newest = files[-1] if files else None
        return newest, (f"note: parity.json names no run; paired with the newest benchmark JSON {newest}"
                        if newest else "")
    for path in reversed(files):
        try:
            if json.loads(path.read_text()).get("conformance_run_id") == run_id:
                return path, ""
        except (OSError, ValueError):
            continue
    return None, (f"note: no benchmark JSON of run {run_id} under {reports / 'benchmarks'}: latency left out "
                  "(--benchmark FILE names one)" if files else "")


def run(args) -> int:
    from conformance.report import build, expected
    from conformance.report.baseline import BaselineError

    reports = Path(args.reports)
    parity = _load(Path(args.parity) if args.parity else reports / "parity.json", "parity file")
    note = ""
    if args.benchmark:
        bench_path = Path(args.benchmark)
    else:
        bench_path, note = paired_benchmark(reports, run_id_of(parity, reports))
    bench = _load(bench_path, "benchmark file")
    if note:
        print(note, file=sys.stderr)
    if parity is None and bench is None:
        print(f"conformance report: nothing to report: no parity.json or benchmark JSON under {reports}",
              file=sys.stderr)
        return 2
    try:
        expectations = expected.load(args.expected_failures)
        if parity is not None:
            expectations.apply(parity.get("cases", []))  # the run applied its own file; this one may differ
        report = build.build_report(parity=parity, bench=bench, expectations=expectations,
                                    reports=reports, baseline=args.baseline, max_slowdown=args.max_slowdown / 100)
        paths = build.write_report(report, reports)
        saved = build.save_run(reports, args.save_baseline, report, parity, bench) if args.save_baseline else None
    except (BaselineError, expected.ExpectedError) as exc:
        print(f"conformance report: {exc}", file=sys.stderr)
        return 2
    verdict = report["verdict"]
    print(f"{verdict.get('word') or ('PASS' if verdict['ok'] else 'FAIL')} — {verdict['headline']}")
    print(f"report: {paths['html']}  (summary: {paths['markdown']})" + (f"; saved {saved}" if saved else ""))
    return 0 if verdict["ok"] else 3 if verdict.get("word") == "INCONCLUSIVE" else 1  # as the gate exits
