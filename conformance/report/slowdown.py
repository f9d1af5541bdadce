"""Latency verdicts that machine noise does not flip.

The rule (the way ``asv compare`` and Google Benchmark's ``compare.py`` decide, with pyperf's
calibration idea). A backend's case is **slower** than the baseline only when both hold:

1. **Big**: its median grew by more than the limit (``--max-slowdown``, 10% by default);
2. **Real**: a one-sided Mann-Whitney U test over the two runs' rounds gives p < ``ALPHA``
   (0.01). Rank-based, so a few outlier rounds (a page fault, a neighbour waking up) do not
   decide it.

What is compared, in order of preference:

* **process CPU time per call** (all threads), recorded beside each host round by
  ``conformance.pytest.timing.time_session``. Other processes on a busy machine stretch wall time
  (a call waits for a core) but barely change the CPU time the call itself spends, so a loaded
  machine does not fail the gate while a runtime that does more work does. Measured with
  ``benchmarks/latency_noise.py``. It cannot see a runtime that lost parallelism (the same work on
  fewer threads): the wall-time change is shown beside it for a person to judge.
* else the wall time **normalized by the PyTorch reference** of the same group and run
  (a machine slower than when the baseline was saved slows the reference as well);
* else raw wall times; without saved rounds, "quartiles apart" stands in for the U test.

The PyTorch reference is the yardstick: its own change is shown, never judged.
"""

from __future__ import annotations

import statistics

#: Significance level of the U test. asv uses 0.002 with few samples; Google Benchmark 0.05.
#: 0.01 with 30 rounds a side keeps false alarms rare while a 25% change stays detectable.
ALPHA = 0.01
MIN_ROUNDS = 3


def calibration(row: dict, rows: list[dict]) -> float | None:
    """The median of the PyTorch reference in ``row``'s group of the same run (None: no
    reference, or ``row`` is the reference)."""
    if row.get("reference"):
        return None
    ref = next((r for r in rows if r["group"] == row["group"] and r.get("reference") and r.get("median")), None)
    return ref["median"] if ref else None


def u_test_p(after: list[float], before: list[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``after`` tends to be larger than ``before``."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(after, before, alternative="greater").pvalue)


def _basis(old: dict, new: dict, old_rows: list[dict], new_rows: list[dict]):
    """(name, baseline samples, this run's samples, baseline centre, this run's centre)."""
    if (old.get("cpu") or []) and len(old["cpu"]) >= MIN_ROUNDS and len(new.get("cpu") or []) >= MIN_ROUNDS:
        return "CPU time per call", old["cpu"], new["cpu"], statistics.median(old["cpu"]), statistics.median(new["cpu"])
    cal_old, cal_new = calibration(old, old_rows), calibration(new, new_rows)
    if cal_old and cal_new:
        name, s_old, s_new = "wall time relative to the PyTorch reference of each run", cal_old, cal_new
    else:
        name, s_old, s_new = "wall time", 1.0, 1.0
    before = [t / s_old for t in old["data"]] if old.get("data") else None
    after = [t / s_new for t in new["data"]] if new.get("data") else None
    return name, before, after, old["median"] / s_old, new["median"] / s_new


def judge(old: dict, new: dict, old_rows: list[dict], new_rows: list[dict], limit: float) -> dict:
    """Compare one latency case across two runs; returns the change and verdict with its reason."""
    name, before, after, centre_old, centre_new = _basis(old, new, old_rows, new_rows)
    change = centre_new / centre_old - 1.0
    raw_change = new["median"] / old["median"] - 1.0
    p_value = None
    if before and after and len(before) >= MIN_ROUNDS and len(after) >= MIN_ROUNDS:
        p_value, p_faster = u_test_p(after, before), u_test_p(before, after)
        slower, faster = p_value < ALPHA, p_faster < ALPHA
        test = f"U test p={min(p_value, p_faster):.2g}"
    else:
        k_old, k_new = centre_old / old["median"], centre_new / new["median"]  # the same scaling as the medians
        slower, faster = new["q1"] * k_new > old["q3"] * k_old, new["q3"] * k_new < old["q1"] * k_old
        test = "quartiles apart" if slower or faster else "quartiles overlap"
    if new.get("reference"):
        verdict, name = "reference", "the reference itself, not judged"
    elif change > limit and slower:
        verdict = "slower"
    elif change < -limit and faster:
        verdict = "faster"
    else:
        verdict = "same"
    wall = f"; wall time {raw_change:+.0%}" if name == "CPU time per call" else ""
    return {"change": change, "raw_change": raw_change, "verdict": verdict, "p_value": p_value, "basis": name,
            "why": f"{change:+.0%} {name}; {test}{wall}"}
