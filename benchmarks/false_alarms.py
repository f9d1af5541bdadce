"""No false alarms: a correct runtime passes several default runs, each with another seed.

Runs ``pytest -m parity`` (the ``dev`` profile: random, not derandomized) N times with
``--hypothesis-seed`` 1..N and no example database, against correct runtimes (ONNX Runtime and
its ORT format by default), and prints each run's verdict, examples, failures and the closest
pass as a share of the tolerance.

    .venv/bin/python benchmarks/false_alarms.py [--runs 5] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(seed: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as reports:
        cmd = [sys.executable, "-m", "pytest", "-m", "parity", "-q", "-p", "no:cacheprovider",
               "--hypothesis-profile", "dev", f"--hypothesis-seed={seed}", "--benchmark-disable",
               f"--reports={reports}", *extra]
        # No CI variable at all: where one is set (even empty) hypothesis loads its derandomized profile.
        env = {**{k: v for k, v in os.environ.items() if k != "CI"}, "PYTHONPATH": str(REPO)}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        record = Path(reports) / "parity.json"
        if not record.is_file():  # the run died before writing its record (a crash, or killed)
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            return {"seed": seed, "exit": proc.returncode, "wall": wall, "examples": 0, "cases": 0,
                    "failed": [f"the run itself (exit {proc.returncode}, no parity.json)"],
                    "closest": 0.0, "messages": ["\n".join(tail)], "per_backend": {}}
        cases = json.loads(record.read_text())["cases"]
    failed = [c["nodeid"] for c in cases if c["outcome"] == "failed"]
    margins = [c["worst"]["margin"] for c in cases if c.get("worst") and c["worst"]["ok"]]
    return {"seed": seed, "exit": proc.returncode, "wall": wall, "examples": sum(c["examples"] for c in cases),
            "cases": len(cases), "failed": failed, "closest": max(margins, default=0.0),
            "messages": [c["message"] for c in cases if c["outcome"] == "failed"], "per_backend": per_backend(cases)}


def per_backend(cases: list[dict]) -> dict[str, list[int]]:
    """Runtime -> [cases run, examples, cases failed] (skipped cases left out)."""
    found: dict[str, list[int]] = {}
    for c in cases:
        if c["outcome"] == "skipped":
            continue
        row = found.setdefault(c["backend"], [0, 0, 0])
        row[0] += 1
        row[1] += c["examples"]
        row[2] += c["outcome"] == "failed"
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    alarms = 0
    totals: dict[str, list[int]] = {}
    for seed in range(1, args.runs + 1):
        r = one_run(seed, extra)
        alarms += bool(r["failed"])
        print(f"seed {seed}: exit {r['exit']}, {r['examples']} examples in {r['cases']} cases, "
              f"{len(r['failed'])} failed, closest pass {r['closest']:.1%} of the tolerance, {r['wall']:.0f} s",
              flush=True)
        for nodeid, message in zip(r["failed"], r["messages"]):
            print(f"  FAILED {nodeid}\n    " + "\n    ".join(message.splitlines()[:6]))
        for backend, row in r["per_backend"].items():
            total = totals.setdefault(backend, [0, 0, 0])
            for i, n in enumerate(row):
                total[i] += n
    for backend, (cases, examples, failed) in sorted(totals.items()):
        print(f"{backend}: {cases} cases, {examples} examples, {failed} failed")
    print(f"{alarms} of {args.runs} runs raised an alarm")
    return 1 if alarms else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
