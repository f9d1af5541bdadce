"""Was the machine busier during a run's timed rounds than when the baseline was saved?

Reads the gauges ``conformance.engine.timed_rounds`` saves beside each host latency case:
the share of the case's cores that other processes at its priority used (niced neighbours
yield within a tick and are not counted), the share the hypervisor stole, and the run
delay of the case's own threads (time runnable but waiting for a core) per call. Each gauge
that moved past its margin since the baseline is one reason, in words, to answer
"inconclusive: the machine was busy" instead of "slower". A baseline saved before these gauges
existed counts as a quiet one (gauge 0), so a busy run against it is still recognised.
"""

from __future__ import annotations

import statistics

#: Other processes at this process's priority used this much more of its cores than at the
#: baseline (0.25 of 2 cores is half a core taken from a 2-thread runtime)...
OTHERS_MARGIN = 0.25
#: ...or this much of them, whatever the baseline saw (a baseline saved on a busy machine
#: must not make a busy rerun look comparable).
OTHERS_BUSY = 0.5
#: The hypervisor stole this much more of all cores than at the baseline.
STEAL_MARGIN = 0.05
#: The case's threads waited for a core this much longer per call, as a share of the call's
#: wall time, than at the baseline...
DELAY_MARGIN = 0.5
#: ...or this long, whatever the baseline saw: together as long as the call took.
DELAY_BUSY = 1.0


def delay_share(row: dict) -> float | None:
    """Median over rounds of run delay / wall time (None without recorded delays)."""
    delays, walls = row.get("run_delay") or [], row.get("data") or []
    shares = [d / w for d, w in zip(delays, walls) if d is not None and w]
    return statistics.median(shares) if shares else None


def _gauge(row: dict | None, key: str) -> float | None:
    value = ((row or {}).get("contention") or {}).get(key)
    return float(value) if value is not None else None


def busy_reasons(new: dict, old: dict | None) -> list[str]:
    """Why this run's timed rounds met a busier machine than the baseline's (empty: not busier)."""
    reasons = []
    for key, margin, ceiling, what in (("others_share", OTHERS_MARGIN, OTHERS_BUSY, "other processes used"),
                                       ("steal_share", STEAL_MARGIN, None, "the hypervisor stole")):
        now, then = _gauge(new, key), _gauge(old, key)
        if now is not None and (now - (then or 0.0) > margin or (ceiling is not None and now > ceiling)):
            reasons.append(f"{what} {now:.0%} of the cores (baseline {_pct(then)})")
    now, then = delay_share(new), delay_share(old or {})
    if now is not None and (now - (then or 0.0) > DELAY_MARGIN or now > DELAY_BUSY):
        reasons.append(f"its threads waited for a core {now:.0%} of each call (baseline {_pct(then)})")
    return reasons


def busier_baseline(new: dict, old: dict) -> list[str]:
    """Why the baseline's rounds met a busier machine than this run's (by the same margins)."""
    reasons = []
    now, then = _gauge(new, "others_share"), _gauge(old, "others_share")
    if now is not None and then is not None and then - now > OTHERS_MARGIN:
        reasons.append(f"other processes used {then:.0%} of the cores then, {now:.0%} now")
    now, then = delay_share(new), delay_share(old)
    if now is not None and then is not None and then - now > DELAY_MARGIN:
        reasons.append(f"its threads waited for a core {then:.0%} of each call then, {now:.0%} now")
    return reasons


def baseline_reasons(old: dict) -> list[str]:
    """Why the baseline's own timed rounds met a busy machine (absolute limits only; empty
    when calm or not recorded). Against such a baseline no verdict is safe: its rounds were
    stretched by an unknown amount, so a slower runtime could look the same."""
    reasons = []
    others, steal, delay = _gauge(old, "others_share"), _gauge(old, "steal_share"), delay_share(old)
    if others is not None and others > OTHERS_BUSY:
        reasons.append(f"other processes used {others:.0%} of the cores")
    if steal is not None and steal > STEAL_MARGIN:
        reasons.append(f"the hypervisor stole {steal:.0%} of the cores")
    if delay is not None and delay > DELAY_BUSY:
        reasons.append(f"its threads waited for a core {delay:.0%} of each call")
    return reasons


def _pct(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:.0%}"
