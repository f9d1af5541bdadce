"""``conformance merge DIR...``: one parity.json, one report (HTML, Markdown, JUnit) and one gate
verdict from the reports folders of several runs: the shards of a CI matrix (``pytest --shard
I/N``), or runs of different runtimes. Refuses, with one line and exit 2, a case with different
results in two runs, runs of different suite or runtime versions (unless --accept-versions) and
a missing shard. The baseline rule of the gate applies to the merged set: a baseline case that
no shard ran fails it (unless --allow-missing). Exits 1 when the merged verdict fails."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_REFUSED = 0, 1, 2


def register(subparsers) -> None:
    parser = subparsers.add_parser("merge", help="merge shards' reports into one report and gate verdict",
                                   description=__doc__)
    parser.add_argument("runs", nargs="+", metavar="DIR", help="reports folder of each run (or its parity.json)")
    parser.add_argument("--reports", default="reports", metavar="DIR",
                        help="where the merged reports go. Default: reports/")
    parser.add_argument("--accept-versions", action="store_true",
                        help="merge runs of different suite or runtime versions. Default: refuse them")
    parser.add_argument("--baseline", metavar="NAME", help="compare with this saved run. Default: none")
    parser.add_argument("--save-baseline", metavar="NAME", help="keep the merged run as a numbered baseline NAME")
    parser.add_argument("--allow-missing", action="store_true",
                        help="baseline cases no run ran are listed without failing. Default: each one fails")
    parser.add_argument("--max-slowdown", type=float, default=10.0, metavar="PCT",
                        help="latency limit for the baseline comparison, in percent. Default: 10")
    parser.add_argument("--expected-failures", metavar="FILE",
                        help="known failures (TOML). Default: conformance/expected_failures.toml")
    parser.set_defaults(func=run)


def _errors(folders: list[Path]) -> list[str]:
    """Tests outside the parity records that failed in a run (its report.json lists them)."""
    found = []
    for folder in folders:
        try:
            found += json.loads((folder / "report.json").read_text()).get("errors", [])
        except (OSError, ValueError, AttributeError):
            continue
    return found


def _benchmarks(runs) -> dict | None:
    """The runs' pytest-benchmark JSON (each paired by run id) as one: the first's machine
    facts, every run's benchmarks."""
    from conformance.commands.report import paired_benchmark

    merged = None
    for folder, data in runs:
        path, _ = paired_benchmark(folder, (data.get("meta") or {}).get("run_id"))
        if path is None:
            continue
        bench = json.loads(path.read_text())
        if merged is None:
            merged = bench
        else:
            merged["benchmarks"] += bench.get("benchmarks", [])
    return merged


def _copy_reproducers(folders: list[Path], out: Path) -> None:
    for folder in folders:
        source = folder / "reproducers"
        if source.is_dir() and source.resolve() != (out / "reproducers").resolve():
            shutil.copytree(source, out / "reproducers", dirs_exist_ok=True)


def run(args) -> int:
    from conformance.engine.record import atomic_write
    from conformance.report import build, expected, junit
    from conformance.report.baseline import BaselineError
    from conformance.report.merge import MergeError, load, merge

    out = Path(args.reports)
    try:
        runs = [load(Path(p)) for p in args.runs]
        parity = merge(runs, accept_versions=args.accept_versions)
        folders = [folder for folder, _ in runs]
        bench = _benchmarks(runs)
        _copy_reproducers(folders, out)
        report = build.build_report(parity=parity, bench=bench, expectations=expected.load(args.expected_failures),
                                    reports=out, baseline=args.baseline, max_slowdown=args.max_slowdown / 100,
                                    allow_missing=args.allow_missing, errors=_errors(folders))
    except (MergeError, BaselineError, expected.ExpectedError) as exc:
        print(f"conformance merge: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    atomic_write(out / "parity.json", json.dumps(parity, indent=1, default=str))
    paths = build.write_report(report, out)
    junit.from_rows(out / "junit.xml", report["parity"])
    junit.add_verdict(out / "junit.xml", report)
    saved = build.save_run(out, args.save_baseline, report, parity, bench) if args.save_baseline else None
    verdict = report["verdict"]
    cpus = report["meta"].get("cpus") or {}
    print(f"conformance merge: {len(runs)} runs, {len(parity['cases'])} cases"
          + (f", on {len(cpus)} different CPUs (the report says which ran each case)" if cpus else ""))
    print(f"{'PASS' if verdict['ok'] else 'FAIL'} — {verdict['headline']}")
    for nodeid in verdict["failed"][:10] + verdict.get("missing", [])[:10]:
        print(f"  {'FAILED' if nodeid in verdict['failed'] else 'MISSING'} {nodeid}")
    print(f"report: {paths['html']}  (summary: {paths['markdown']}, junit: {out / 'junit.xml'}, "
          f"parity: {out / 'parity.json'})" + (f"; saved {saved}" if saved else ""))
    from conformance.commands.gate import job_summary

    job_summary(paths["markdown"])
    return EXIT_OK if verdict["ok"] else EXIT_FAIL
