"""Start-up cost of the installed plugin on another project's run: median wall time of
``pytest`` over a folder with one hypothesis test, with the plugin and with
``-p no:conformance.plugin``, side by side (interleaved, 7 runs each).

    python benchmarks/plugin_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST = "from hypothesis import given, strategies as st\n\n@given(st.integers())\ndef test_x(x):\n    pass\n"


def main(runs: int = 7) -> None:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "test_unrelated.py").write_text(TEST)
        times = {"plugin": [], "no plugin": []}
        for _ in range(runs):
            for label, extra in (("plugin", []), ("no plugin", ["-p", "no:conformance.plugin"])):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra,
                                "test_unrelated.py"], cwd=folder, capture_output=True, check=True)
                times[label].append(time.perf_counter() - start)
    for label, values in times.items():
        print(f"{label:>10}: median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})")
    print(f"difference of medians: {statistics.median(times['plugin']) - statistics.median(times['no plugin']):+.2f} s")


if __name__ == "__main__":
    main()
