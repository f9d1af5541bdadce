"""Latency verdicts that a busy machine does not flip, and that say which rule judged.

A backend's latency case against the same case in the baseline gets one of four verdicts:
**slower**, **faster**, **same** or **inconclusive** (the machine was too busy to tell). "Big"
always means the change passed the limit (``--max-slowdown``, 10% by default); "real" means a
one-sided Mann-Whitney U test over the two runs' rounds gives p < ``ALPHA`` (rank-based: a few
outlier rounds do not decide it).

Rules, the first whose data both runs hold (the result's ``rule`` names it):

``paired`` (runs that saved the interleaved reference, ``conformance.engine.timed_rounds``):

Three measures, each "grew" when big and real: the call's **wall time**; its wall time
**relative to the reference rounds** timed just before and after each call (fixed code, PyTorch
eager, that met the same neighbours in the same instants, so what a slower or busier machine
adds mostly cancels); and its wall time **less its run delay** (every thread's time runnable
but off a core, ``_unwaited``: what the call would take had no wait cost anything).

1. **slower** on a machine not busier than at the baseline (``conformance.report.contention``:
   other competing processes' share of the cores, steal, the case's own threads waiting for a
   core) when the wall time less its waiting grew, the median wall time grew past the limit, and
   the reference rounds did not slow by half the limit (a slower machine) unless the call slowed
   more than they did (the relative measure up, U test); or, without run delays, when the wall
   time and the relative measure grew.
   Where both grew but the waiting accounts for it, **inconclusive**.
2. **same** when the wall time's median is *confidently below* the baseline's grown by the
   limit (a seeded bootstrap of the median ratio, p < ``ALPHA``) and the relative measure did
   not grow, on a machine no calmer than the baseline's. Load only adds wall time, so a
   runtime whose wall time held did not get slower, however busy the machine; but a baseline
   that met a busier machine than this run had its rounds stretched, and a slowdown could
   hide behind that.
3. **inconclusive** otherwise, with the reason: both grew on a busier machine; only one grew
   (the reference slowed as much as the call: a slower machine; or the wall time did not
   confirm the relative measure); the baseline met a busier machine; or the rounds were too
   noisy to say either way. Never a pass: the gate answers inconclusive with its own exit
   status.

Before all three: a baseline whose own rounds met a busy machine (``contention.baseline_reasons``)
judges nothing; every case against it is **inconclusive** until it is saved again.

Previous rules, for baselines saved before the reference was interleaved (old JSON):
``cpu`` (process CPU time per call: stable under load for runtimes that block while waiting,
not for a thread pool that spins), else ``reference`` (wall time over the median of the PyTorch
reference row of each run), else ``wall``; without saved rounds, "quartiles apart" stands in
for the U test. When this run recorded contention gauges and they say busy, a slowdown those
rules find is reported as inconclusive, not slower.

The PyTorch reference row is the yardstick: its own change is shown, never judged.
"""

from __future__ import annotations

import math
import statistics

from conformance.report.contention import baseline_reasons, busier_baseline, busy_reasons

#: Significance level of the U test. asv uses 0.002 with few samples; Google Benchmark 0.05.
#: 0.01 with 30 rounds a side keeps false alarms rare while a 25% change stays detectable.
ALPHA = 0.01
MIN_ROUNDS = 3

#: Each rule in words, for the reports' "judged by" column.
RULES = {
    "paired": "wall time, and wall time relative to interleaved reference rounds, with the machine's contention",
    "cpu": "process CPU time per call (previous rule: the baseline has no interleaved reference)",
    "reference": "wall time relative to the PyTorch reference row of each run (previous rule)",
    "wall": "raw wall time (previous rule: no CPU time or reference in both runs)",
    "yardstick": "the reference itself, not judged",
}


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


def paired_ratios(row: dict) -> list[float] | None:
    """Each round's wall time over the geometric mean of the reference rounds just before and
    just after it (None when the row has no usable interleaved reference)."""
    walls, refs = row.get("data") or [], row.get("ref_times") or []
    if len(walls) < MIN_ROUNDS or len(refs) != len(walls) + 1 or min(refs) <= 0:
        return None
    return [w / math.sqrt(refs[i] * refs[i + 1]) for i, w in enumerate(walls)]


#: Bootstrap resamples for "the median grew by less than the limit" (seeded: the same rounds
#: always get the same verdict).
RESAMPLES = 2000


def within_p(before: list[float], after: list[float], limit: float) -> float:
    """Bootstrap p-value that the median of ``after`` over that of ``before`` is *not* below
    ``1 + limit``: the share of resampled median ratios at or above it. Medians, not ranks: a
    few contended rounds in the tail do not make a held runtime look uncertain."""
    import numpy as np

    rng = np.random.default_rng(0)
    old, new = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    ratios = (np.median(rng.choice(new, (RESAMPLES, new.size)), axis=1)
              / np.median(rng.choice(old, (RESAMPLES, old.size)), axis=1))
    return float(np.mean(ratios >= 1.0 + limit))


def compare(before: list[float], after: list[float], limit: float) -> dict:
    """Median change of ``after`` over ``before``, the one-sided U-test p-values that it is
    slower and faster, and ``p_within``: that it is not below ``before`` grown by ``limit``."""
    return {"change": statistics.median(after) / statistics.median(before) - 1.0,
            "p_slower": u_test_p(after, before), "p_faster": u_test_p(before, after),
            "p_within": within_p(before, after, limit)}


def outran(test: dict) -> bool:
    """The call slowed more than the reference rounds around it (relative measure up, U test):
    what a uniformly slower machine does not do, however much the reference slowed."""
    return test["change"] > 0 and test["p_slower"] < ALPHA


def _grew(test: dict | None, limit: float) -> bool:
    return bool(test) and test["change"] > limit and test["p_slower"] < ALPHA


def _shrank(test: dict | None, limit: float) -> bool:
    return bool(test) and test["change"] < -limit and test["p_faster"] < ALPHA


def judge(old: dict, new: dict, old_rows: list[dict], new_rows: list[dict], limit: float) -> dict:
    """Compare one latency case across two runs: the change, the verdict, the rule that
    judged and why (see the module docstring)."""
    raw_change = new["median"] / old["median"] - 1.0
    if new.get("reference"):
        return {"change": raw_change, "raw_change": raw_change, "verdict": "reference", "p_value": None,
                "basis": RULES["yardstick"], "rule": "yardstick", "busy": [], "why": f"{raw_change:+.0%} wall time; "
                "the reference itself, not judged"}
    before, after = paired_ratios(old), paired_ratios(new)
    if before and after and len(old.get("data") or []) >= MIN_ROUNDS:
        result = _judge_paired(old, new, before, after, limit)
    else:
        result = _judge_previous(old, new, old_rows, new_rows, limit)
    result["raw_change"] = raw_change
    return result


def _judge_paired(old: dict, new: dict, before: list[float], after: list[float], limit: float) -> dict:
    wall, ratio = compare(old["data"], new["data"], limit), compare(before, after, limit)
    unwaited = _unwaited(old), _unwaited(new)
    own = compare(*unwaited, limit) if None not in unwaited else None
    busy, busier_base, busy_base = busy_reasons(new, old), busier_baseline(new, old), baseline_reasons(old)
    ref = statistics.median(new["ref_times"]) / statistics.median(old["ref_times"]) - 1.0
    ref_own = _reference_unwaited_change(old, new)
    slower_machine = (ref if ref_own is None else ref_own) > limit / 2
    both = (f"{wall['change']:+.0%} wall time (U test p={wall['p_slower']:.2g}), "
            f"{ratio['change']:+.0%} relative to the reference rounds around each call (p={ratio['p_slower']:.2g})"
            + (f", {own['change']:+.0%} less its waiting for a core (p={own['p_slower']:.2g})" if own else ""))
    grew_wall, grew_ratio, grew_own = _grew(wall, limit), _grew(ratio, limit), _grew(own, limit)
    verdict = "inconclusive"
    if busy_base:
        why = f"the baseline was saved on a busy machine ({'; '.join(busy_base)}): save it again on a quieter one"
    elif grew_own and wall["change"] > limit and not busy and (not slower_machine or outran(ratio)):
        verdict, why = "slower", "the machine was not busier than at the baseline"
    elif grew_wall and grew_ratio:
        waited = None if own is None or grew_own else _waited(old, new, own)
        verdict, why = ("inconclusive", f"the machine was busy: {'; '.join(busy)}") if busy else (
            ("inconclusive", waited) if waited else ("slower", "the machine was not busier than at the baseline"))
    elif busier_base:
        why = f"the baseline met a busier machine than this run ({'; '.join(busier_base)}): a slowdown could hide"
    elif wall["p_within"] < ALPHA and not grew_ratio and not grew_own:
        verdict = "faster" if _shrank(wall, limit) and _shrank(ratio, limit) and not busy else "same"
        why = f"median wall time below +{limit:.0%} (bootstrap p={wall['p_within']:.2g})"
    elif busy and (grew_wall or grew_ratio or grew_own):
        why = f"the machine was busy: {'; '.join(busy)}"
    elif grew_wall or (grew_own and wall["change"] > limit):
        why = (f"the reference rounds ran {ref:+.0%} too: the machine was slower, not (provably) the runtime"
               if slower_machine else "the relative measure did not confirm it")
    elif grew_ratio or grew_own:
        why = (f"but not the wall time: the reference rounds ran {ref:+.0%} (a baseline saved on a busier "
               "machine?)" if ref < -limit else "but the wall time did not confirm it")
    else:
        why = f"too noisy to tell either way: wall time neither above nor below +{limit:.0%} (p<{ALPHA:g})"
    return {"change": ratio["change"], "verdict": verdict, "p_value": ratio["p_slower"], "basis": RULES["paired"],
            "rule": "paired", "busy": busy or busier_base or busy_base, "wall_change": wall["change"],
            "reference_change": ref, "own_change": own["change"] if own else None, "why": f"{both}; {why}"}


def _unwaited(row: dict) -> list[float] | None:
    """Each round's wall time less its run delay (every thread's time runnable but off a core):
    what the call would have taken had no wait for a core cost anything. A call stalls at most
    as long as its threads wait, so this never shows load as a slowdown (under heavy load it
    undershoots); beside a few busy neighbours it was the steadiest of the measures (measured: 25%
    more work, +21% to +27% with p < 0.001 in 8 reruns where the wall time's p was 0.03-0.09)."""
    walls, delays = row.get("data") or [], row.get("run_delay") or []
    if len(delays) != len(walls) or len(walls) < MIN_ROUNDS or any(d is None for d in delays):
        return None
    return [w - d for w, d in zip(walls, delays)]


def _reference_unwaited_change(old: dict, new: dict) -> float | None:
    """The change of the reference rounds' median less their own waiting for a core: how much
    slower the machine itself ran (contention from neighbours taken out; None where either run
    did not record the reference's run delays)."""
    def unwaited(row: dict) -> list[float] | None:
        times, delays = row.get("ref_times") or [], row.get("ref_run_delay") or []
        if len(delays) != len(times) or not times or any(d is None for d in delays):
            return None
        return [t - d for t, d in zip(times, delays)]

    before, after = unwaited(old), unwaited(new)
    if before is None or after is None or statistics.median(before) <= 0:
        return None
    return statistics.median(after) / statistics.median(before) - 1.0


def _waited(old: dict, new: dict, own: dict) -> str:
    """Why the growth is the machine's: the threads' extra waiting for a core accounts for it."""
    extra = statistics.median(new["run_delay"]) - statistics.median(old["run_delay"])
    return (f"its threads waited for a core {extra * 1e3:.2g} ms more per call, enough to account for the "
            f"growth (wall time less that waiting: {own['change']:+.0%}): contention, not (provably) the runtime")


def _basis(old: dict, new: dict, old_rows: list[dict], new_rows: list[dict]):
    """(rule, baseline samples, this run's samples, baseline centre, this run's centre)."""
    if (old.get("cpu") or []) and len(old["cpu"]) >= MIN_ROUNDS and len(new.get("cpu") or []) >= MIN_ROUNDS:
        return "cpu", old["cpu"], new["cpu"], statistics.median(old["cpu"]), statistics.median(new["cpu"])
    cal_old, cal_new = calibration(old, old_rows), calibration(new, new_rows)
    rule, s_old, s_new = ("reference", cal_old, cal_new) if cal_old and cal_new else ("wall", 1.0, 1.0)
    before = [t / s_old for t in old["data"]] if old.get("data") else None
    after = [t / s_new for t in new["data"]] if new.get("data") else None
    return rule, before, after, old["median"] / s_old, new["median"] / s_new


_MEASURES = {"cpu": "CPU time per call", "reference": "wall time relative to the PyTorch reference of each run",
             "wall": "wall time"}


def _judge_previous(old: dict, new: dict, old_rows: list[dict], new_rows: list[dict], limit: float) -> dict:
    """The previous release's rules, with this run's contention gauges (when recorded) turning
    a slowdown on a busy machine into inconclusive."""
    rule, before, after, centre_old, centre_new = _basis(old, new, old_rows, new_rows)
    change = centre_new / centre_old - 1.0
    p_value = None
    if before and after and len(before) >= MIN_ROUNDS and len(after) >= MIN_ROUNDS:
        p_value, p_faster = u_test_p(after, before), u_test_p(before, after)
        slower, faster = p_value < ALPHA, p_faster < ALPHA
        test = f"U test p={min(p_value, p_faster):.2g}"
    else:
        k_old, k_new = centre_old / old["median"], centre_new / new["median"]  # the same scaling as the medians
        slower, faster = new["q1"] * k_new > old["q3"] * k_old, new["q3"] * k_new < old["q1"] * k_old
        test = "quartiles apart" if slower or faster else "quartiles overlap"
    busy = busy_reasons(new, old) if new.get("contention") else []
    verdict = "slower" if change > limit and slower else "faster" if change < -limit and faster else "same"
    wall = f"; wall time {new['median'] / old['median'] - 1.0:+.0%}" if rule == "cpu" else ""
    why = f"{change:+.0%} {_MEASURES[rule]}; {test}{wall}"
    if verdict == "slower" and busy:
        verdict, why = "inconclusive", f"{why}; the machine was busy: {'; '.join(busy)}"
    return {"change": change, "verdict": verdict, "p_value": p_value, "basis": _MEASURES[rule], "rule": rule,
            "busy": busy, "why": why + f" [{RULES[rule]}]"}
