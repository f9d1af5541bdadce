"""The default run with an empty artifact cache (cold) and again with the first run's (warm).

Each repeat runs ``pytest -m parity`` (plus any arguments after ``--``) twice in fresh
interpreters, side by side: first with a new, empty ``--cache-dir`` (cold), then with the same
folder (warm). ``CI=true`` (the derandomized ``ci`` profile) makes both draw the same examples,
so the warm run needs the same artifacts. Prints each run's wall time, the time inside the
parity cases, the exports and cache hits, then the medians, warm/cold, and the cache's size.

    .venv/bin/python benchmarks/cache_cold_warm.py --repeats 3
    .venv/bin/python benchmarks/cache_cold_warm.py --repeats 1 -- --backend onnxruntime --backend executorch
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(cache: Path, reports: Path, extra: list[str]) -> dict:
    """One ``pytest -m parity`` run; its wall time and the numbers its summary prints."""
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pytest", "-m", "parity", "-q", "-p", "no:cacheprovider", "--benchmark-disable",
           "--cache-dir", str(cache), "--reports", str(reports), *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    out = done.stdout + done.stderr
    found = re.search(r"(\d+) examples in (\d+) parity cases, ([\d.]+) s in them.*?; ([\d.]+) s wall(?:; (\d+) exports)?",
                      out)
    hits = re.search(r"artifact cache .*?: (\d+) reused, (\d+) stored", out)
    # pytest's own last line (stderr may end in a library's warning); under pytest-xdist the
    # workers' export and cache counts are not in the controller's summary, so they read 0.
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else out.strip()[-200:]
    return {"wall": wall, "rc": done.returncode, "examples": int(found[1]) if found else 0,
            "in_cases": float(found[3]) if found else 0.0, "exports": int(found[5] or 0) if found else 0,
            "reused": int(hits[1]) if hits else 0, "stored": int(hits[2]) if hits else 0, "tail": tail}


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.art")) / 2**20


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args, extra = parser.parse_known_args(argv[: argv.index("--")] if "--" in argv else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else extra
    root = Path(tempfile.mkdtemp(prefix="conformance-cache-bench-"))
    cold, warm, sizes = [], [], []
    try:
        for i in range(args.repeats):
            cache = root / f"cache{i}"
            for label, bucket in (("cold", cold), ("warm", warm)):
                result = run(cache, root / f"reports-{label}{i}", extra)
                bucket.append(result)
                print(f"{label} #{i + 1}: {result['wall']:.1f} s wall (rc {result['rc']}), {result['in_cases']:.1f} s in "
                      f"the cases, {result['examples']} examples, {result['exports']} artifacts, "
                      f"{result['reused']} reused from disk, {result['stored']} stored | {result['tail']}", flush=True)
            sizes.append(size_mib(cache))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cold_wall = statistics.median(r["wall"] for r in cold)
    warm_wall = statistics.median(r["wall"] for r in warm)
    print(f"\nmedian of {args.repeats}: cold {cold_wall:.1f} s, warm {warm_wall:.1f} s wall; warm/cold "
          f"{warm_wall / cold_wall:.2f} (in the cases: cold {statistics.median(r['in_cases'] for r in cold):.1f} s, "
          f"warm {statistics.median(r['in_cases'] for r in warm):.1f} s); cache after a run: "
          f"{statistics.median(sizes):.1f} MiB")
    print("selection: pytest -m parity " + " ".join(extra))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
