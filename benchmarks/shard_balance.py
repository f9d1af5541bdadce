"""Shard balance: run a selection whole, then as N shards balanced by the whole run's durations
(and, for comparison, by the per-test weights alone), and merge each set.

Prints each shard's time inside its parity cases (the part a shard's deal decides; the interpreter
start is the same for every shard) and wall time, the slowest shard over the mean (1.00 is a
perfect deal), and whether the merged shards hold the whole run's cases. The shards run one after
another on this machine, so their times compare like with like.

    .venv/bin/python benchmarks/shard_balance.py --shards 3                  # the default run
    .venv/bin/python benchmarks/shard_balance.py --shards 3 -- --exporter torchscript --opset 17
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pytest_run(reports: Path, extra: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(REPO)}
    # --no-cache: every run pays its own exports, as the whole run whose durations deal the shards did
    cmd = [sys.executable, "-m", "pytest", "-m", "parity", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
           "--no-cache", "--reports", str(reports), *extra]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, json.loads((reports / "parity.json").read_text())


def in_cases(parity: dict) -> float:
    return sum(c.get("seconds") or 0.0 for c in parity["cases"])


def shard_set(root: Path, label: str, count: int, extra: list[str], whole: dict) -> None:
    times, walls, folders = [], [], []
    for i in range(1, count + 1):
        folder = root / f"{label}-{i}"
        wall, parity = pytest_run(folder, [*extra, "--shard", f"{i}/{count}"])
        times.append(in_cases(parity))
        walls.append(wall)
        folders.append(str(folder))
        plan = parity["meta"]["shard"]
        print(f"  {label} shard {i}/{count}: {len(parity['cases'])} cases, {times[-1]:.1f} s in them, "
              f"{wall:.1f} s wall (dealt loads {plan.get('loads')})", flush=True)
    merged = subprocess.run([sys.executable, "-m", "conformance.cli", "merge", *folders, "--reports",
                             str(root / f"{label}-merged")], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    union = {c["nodeid"] for c in json.loads((root / f"{label}-merged" / "parity.json").read_text())["cases"]} \
        if merged.returncode in (0, 1) else set()
    same = union == {c["nodeid"] for c in whole["cases"]}
    mean = sum(times) / count
    print(f"{label}: slowest shard / mean = {max(times) / mean:.2f} in the cases "
          f"({max(walls) / (sum(walls) / count):.2f} wall); merge exit {merged.returncode}, "
          f"{'same cases as the whole run' if same else 'CASES DIFFER from the whole run'}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--no-weights-only", action="store_true", help="skip the set dealt by weights alone")
    parser.add_argument("--whole", metavar="FILE",
                        help="the parity.json of an earlier whole run of the same selection (skips the whole run)")
    mine = argv[: argv.index("--")] if "--" in argv else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(mine)
    root = Path(tempfile.mkdtemp(prefix="conformance-shard-bench-"))
    try:
        if args.whole:
            durations, whole = Path(args.whole), json.loads(Path(args.whole).read_text())
            wall = float(whole["meta"].get("wall_s") or 0.0)
        else:
            wall, whole = pytest_run(root / "whole", extra)
            durations = root / "whole" / "parity.json"
        print(f"whole run: {len(whole['cases'])} cases, {in_cases(whole):.1f} s in them, {wall:.1f} s wall", flush=True)
        shard_set(root, "by-durations", args.shards, [*extra, "--shard-durations", str(durations)], whole)
        if not args.no_weights_only:
            # an empty reports folder: no durations to deal by, the per-test weights alone
            shard_set(root, "by-weights", args.shards, extra, whole)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("selection: pytest -m parity " + " ".join(extra) + " (the machine was shared with other sessions)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
