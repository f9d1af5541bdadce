"""Latency verdicts that machine noise does not flip.

The rule (the way ``asv compare`` and Google Benchmark's ``compare.py`` decide, with pyperf's
calibration idea):

1. **Normalize by a calibration measured in the same run.** Each backend's round times are
   divided by the median of the PyTorch reference's rounds in the same group of the same run
   (the same network, timed minutes apart on the same machine). A machine that is busier, or
   slower, than when the baseline was saved slows the reference as well, and the ratio stays.
   The reference itself is the yardstick: its own change is shown, never judged. A group without
   a reference is compared on raw times (and says so).
2. **A slowdown must be big.** The median of the normalized rounds grew by more than the limit
   (``--max-slowdown``, 10% by default).
3. **A slowdown must be real.** A one-sided Mann-Whitney U test over the two runs' normalized
   rounds gives p < ``ALPHA`` (0.01): the rounds of this run are larger than the baseline's more
   often than chance allows. Rank-based, so a few outlier rounds (a page fault, another process
   waking up) do not decide it.

Without raw rounds (``--benchmark-save-data`` off) the test falls back to "quartiles apart":
this run's first quartile above the baseline's third.
"""

from __future__ import annotations

#: Significance level of the U test. asv uses 0.002 with few samples; Google Benchmark 0.05.
#: 0.01 with 30+ rounds a side keeps false alarms rare while a 25% change stays detectable.
ALPHA = 0.01


def calibration(row: dict, rows: list[dict]) -> float | None:
    """The median of the PyTorch reference in ``row``'s group of the same run (None: no
    reference, or ``row`` is the reference)."""
    if row.get("reference"):
        return None
    ref = next((r for r in rows if r["group"] == row["group"] and r.get("reference") and r.get("median")), None)
    return ref["median"] if ref else None


def _samples(row: dict, scale: float) -> list[float] | None:
    data = row.get("data")
    return [t / scale for t in data] if data else None


def u_test_p(after: list[float], before: list[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``after`` tends to be larger than ``before``."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(after, before, alternative="greater").pvalue)


def judge(old: dict, new: dict, old_rows: list[dict], new_rows: list[dict], limit: float) -> dict:
    """Compare one latency case across two runs; returns the change and verdict with its reason."""
    cal_old, cal_new = calibration(old, old_rows), calibration(new, new_rows)
    normalized = cal_old is not None and cal_new is not None
    s_old, s_new = (cal_old, cal_new) if normalized else (1.0, 1.0)
    change = (new["median"] / s_new) / (old["median"] / s_old) - 1.0
    raw_change = new["median"] / old["median"] - 1.0
    before, after = _samples(old, s_old), _samples(new, s_new)
    if before and after and len(before) >= 3 and len(after) >= 3:
        p_slower, p_faster = u_test_p(after, before), u_test_p(before, after)
        slower, faster = p_slower < ALPHA, p_faster < ALPHA
        test = f"U test p={min(p_slower, p_faster):.2g}"
    else:
        p_slower = p_faster = None
        slower = new["q1"] / s_new > old["q3"] / s_old
        faster = new["q3"] / s_new < old["q1"] / s_old
        test = "quartiles apart" if slower or faster else "quartiles overlap"
    if new.get("reference"):
        verdict = "reference"
    elif change > limit and slower:
        verdict = "slower"
    elif change < -limit and faster:
        verdict = "faster"
    else:
        verdict = "same"
    basis = "vs the PyTorch reference of each run" if normalized else (
        "the reference itself (not judged)" if new.get("reference") else "raw times: no reference in this group")
    return {"change": change, "raw_change": raw_change, "verdict": verdict, "p_value": p_slower,
            "normalized": normalized, "why": f"{change:+.0%} {basis}; {test}"}
