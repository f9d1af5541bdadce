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
                        help="pytest-benchmark JSON. Default: the newest under DIR/benchmarks/")
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


def newest_benchmark(reports: Path) -> Path | None:
    """pytest-benchmark's newest saved run (files are numbered NNNN_*.json per machine)."""
    files = sorted((reports / "benchmarks").glob("*/[0-9][0-9][0-9][0-9]_*.json"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def run(args) -> int:
    from conformance.report import build, expected
    from conformance.report.baseline import BaselineError

    reports = Path(args.reports)
    parity = _load(Path(args.parity) if args.parity else reports / "parity.json", "parity file")
    bench = _load(Path(args.benchmark) if args.benchmark else newest_benchmark(reports), "benchmark file")
    if parity is None and bench is None:
        print(f"conformance report: nothing to report: no parity.json or benchmark JSON under {reports}",
              file=sys.stderr)
        return 2
    try:
        report = build.build_report(parity=parity, bench=bench, expectations=expected.load(args.expected_failures),
                                    reports=reports, baseline=args.baseline, max_slowdown=args.max_slowdown / 100)
        paths = build.write_report(report, reports)
        saved = build.save_run(reports, args.save_baseline, report, parity, bench) if args.save_baseline else None
    except (BaselineError, expected.ExpectedError) as exc:
        print(f"conformance report: {exc}", file=sys.stderr)
        return 2
    verdict = report["verdict"]
    print(f"{'PASS' if verdict['ok'] else 'FAIL'} — {verdict['headline']}")
    print(f"report: {paths['html']}  (summary: {paths['markdown']})" + (f"; saved {saved}" if saved else ""))
    return 0 if verdict["ok"] else 1
