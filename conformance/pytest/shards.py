"""``--shard I/N``: run a deterministic share of the selected tests (a CI matrix of N jobs).

The split happens after selection (``-m``, ``-k``, deselection), so the union of the N shards
is exactly the unsharded selection: every selected test is dealt to one shard, none twice.
Tests that share an artifact (one case and format on several runtimes) stay in one shard, so
an export is paid once. Groups are dealt heaviest first to the lightest shard, weighed by the
seconds a previous run's ``parity.json`` records (``--shard-durations FILE``, else the reports
folder's own ``parity.json`` when it is a complete run), and by ``weight`` for tests it lacks.

Every shard's ``parity.json`` says which shard it is, of which selection and which plan (the
digest of the whole deal): ``conformance merge`` refuses shards dealt from different plans,
which is what two jobs given different durations files would produce.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.pytest.activation import option

SHARD_KEY = pytest.StashKey["ShardPlan"]()

#: Relative cost of a test where no earlier duration is known: a model case draws a quarter of
#: the examples at ~10x the cost each; a runtime that exports its own program pays seconds per
#: structure; the dynamo exporter ~1 s per structure against TorchScript's ~30 ms.
KIND_WEIGHT = {"model": 3.0}
BACKEND_WEIGHT = {"executorch": 8.0, "executorch-portable": 12.0, "litert": 6.0, "litert-reference": 6.0,
                  "openvino": 2.0, "ncnn": 2.0, "mnn": 2.0}
EXPORTER_WEIGHT = {"dynamo": 3.0}


class ShardError(Exception):
    """A bad ``--shard`` or ``--shard-durations`` (one line)."""


@dataclass(frozen=True)
class ShardSpec:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> "ShardSpec":
        found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not found or not 1 <= int(found[1]) <= int(found[2]):
            raise ShardError(f"--shard {text!r} must be I/N with 1 <= I <= N (e.g. --shard 2/3)")
        return cls(int(found[1]), int(found[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class ShardPlan:
    """What the collection hook decided, for the run's ``parity.json``."""

    spec: ShardSpec
    durations: str = ""  # the file the weights came from, or ""
    selection: str = ""  # digest of the whole selection's node ids
    plan: str = ""  # digest of the whole deal (node id -> shard)
    selected: int = 0  # tests in this shard
    total: int = 0  # tests in the whole selection
    loads: tuple = ()  # the estimated load of each shard (seconds, or weight units)

    def meta(self) -> dict:
        return {"index": self.spec.index, "count": self.spec.count, "selection": self.selection,
                "plan": self.plan, "selected": self.selected, "total": self.total, "durations": self.durations,
                "loads": [round(x, 3) for x in self.loads]}


def group_key(nodeid: str, params: dict) -> str:
    """Tests that share an artifact get one key: the test and case, the format, not the runtime."""
    case, target = params.get("case"), params.get("target")
    if case is None or target is None:
        return nodeid
    return f"{nodeid.split('[')[0]}[{getattr(case, 'name', case)}|{target.export.id}]"


def weight(params: dict) -> float:
    """A test's relative cost without a measured duration (see the constants above)."""
    case, target = params.get("case"), params.get("target")
    value = KIND_WEIGHT.get(getattr(case, "kind", ""), 1.0)
    if target is not None:
        value *= BACKEND_WEIGHT.get(target.backend.name, 1.0)
        value *= EXPORTER_WEIGHT.get(getattr(target.export, "exporter", ""), 1.0)
    return value


def load_durations(path: Path) -> dict[str, float]:
    """node id -> seconds from a ``parity.json`` (its records' own durations)."""
    try:
        data = json.loads(Path(path).read_text())
        return {c["nodeid"]: float(c.get("seconds") or 0.0) for c in data.get("cases", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ShardError(f"--shard-durations {path}: not a readable parity.json ({type(exc).__name__}: {exc})") from None


def costs(tests: list[tuple[str, float]], durations: dict[str, float]) -> list[float]:
    """Each test's cost: its recorded duration, else its weight scaled to seconds by the tests
    that have both (so measured and estimated costs add up in the same unit)."""
    # A recorded 0 s is known too: a test skipped as unsupported costs nothing, and weighing it as
    # an unknown would give its shard fewer tests that run.
    known = [(durations[n], w) for n, w in tests if n in durations]
    scale = sum(d for d, _ in known) / sum(w for _, w in known) if known and sum(d for d, _ in known) else 1.0
    return [durations[n] if n in durations else w * scale for n, w in tests]


def assign(groups: dict[str, float], count: int) -> tuple[dict[str, int], list[float]]:
    """Deal groups (key -> cost) to ``count`` shards: heaviest first to the least loaded shard
    (ties: the lower shard, then the key's order), so the deal is the same on every machine.
    Returns (key -> shard index, 1-based) and each shard's load."""
    loads = [0.0] * count
    dealt = {}
    for key, cost in sorted(groups.items(), key=lambda kv: (-kv[1], kv[0])):
        shard = min(range(count), key=lambda i: (loads[i], i))
        dealt[key] = shard + 1
        loads[shard] += cost
    return dealt, loads


def deal(tests: list[tuple[str, str, float]], count: int, durations: dict[str, float]):
    """(node id -> shard, loads, selection digest, plan digest) for tests (node id, group, weight)."""
    cost = costs([(n, w) for n, _, w in tests], durations)
    groups: dict[str, float] = {}
    for (_, group, _), c in zip(tests, cost):
        groups[group] = groups.get(group, 0.0) + c
    dealt, loads = assign(groups, count)
    shard_of = {nodeid: dealt[group] for nodeid, group, _ in tests}
    selection = _digest("\n".join(sorted(shard_of)))
    plan = _digest("\n".join(f"{n} {s}" for n, s in sorted(shard_of.items())))
    return shard_of, loads, selection, plan


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def durations_file(given: str | None, reports: Path) -> Path | None:
    """``--shard-durations``, else the reports folder's ``parity.json`` if it is a whole run's
    (a shard's own file covers only its share: dealing by it would move tests between shards)."""
    if given:
        if not Path(given).is_file():
            raise ShardError(f"--shard-durations {given}: no such file")
        return Path(given)
    path = reports / "parity.json"
    try:
        shard = (json.loads(path.read_text()).get("meta") or {}).get("shard") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return path if int(shard.get("count", 1)) == 1 else None


# pytest hooks ---------------------------------------------------------------------------------

def pytest_addoption(parser):
    group = parser.getgroup("conformance")
    option(group, "--shard", metavar="I/N",
                    help="run shard I of N of the selected tests (deterministic, balanced by earlier durations; "
                         "merge the shards with 'conformance merge'). Default: the whole selection")
    option(group, "--shard-durations", metavar="FILE",
                    help="a parity.json whose recorded durations balance the shards. Default: REPORTS/parity.json "
                         "when it is a whole (unsharded or merged) run, else per-test weights")


def activate(config) -> None:
    """Plan this process's share when ``--shard`` is given (called as the suite wakes up, before
    its session is made: the records carry the shard). Without it nothing is dealt."""
    text = config.getoption("shard", None)
    if not text or SHARD_KEY in config.stash:
        return
    try:
        spec = ShardSpec.parse(text)
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SHARD_KEY] = ShardPlan(spec)


@pytest.hookimpl(trylast=True)  # after -m/-k and every other deselection: shards split the selection
def pytest_collection_modifyitems(config, items):
    plan = config.stash.get(SHARD_KEY, None)
    if plan is None:
        return
    tests = [(item.nodeid, group_key(item.nodeid, _params(item)), weight(_params(item))) for item in items]
    durations = {}
    try:
        source = durations_file(config.getoption("shard_durations", None),
                                Path(config.getoption("reports", None) or "reports"))
        if source is not None and plan.spec.count > 1:
            durations, plan.durations = load_durations(source), str(source)
    except ShardError as exc:
        raise pytest.UsageError(str(exc)) from None
    shard_of, loads, plan.selection, plan.plan = deal(tests, plan.spec.count, durations)
    plan.loads, plan.total = tuple(loads), len(items)
    keep = [item for item in items if shard_of[item.nodeid] == plan.spec.index]
    dropped = [item for item in items if shard_of[item.nodeid] != plan.spec.index]
    plan.selected = len(keep)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_report_header(config):
    plan = config.stash.get(SHARD_KEY, None)
    if plan is not None and plan.spec.count > 1:
        return [f"conformance: shard {plan.spec} (deal balanced by "
                f"{config.getoption('shard_durations', None) or 'REPORTS/parity.json if whole, else weights'})"]
    return []


def pytest_sessionfinish(session):
    """An xdist worker sends its deal to the controller (which collects nothing itself)."""
    plan = session.config.stash.get(SHARD_KEY, None)
    output = getattr(session.config, "workeroutput", None)
    if plan is not None and output is not None and plan.total:
        output["conformance_shard"] = plan.meta()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """On the xdist controller: take the deal a worker made."""
    data = getattr(node, "workeroutput", {}).get("conformance_shard")
    plan = node.config.stash.get(SHARD_KEY, None)
    if data and plan is not None and not plan.total:
        plan.durations, plan.selection, plan.plan = data["durations"], data["selection"], data["plan"]
        plan.selected, plan.total, plan.loads = data["selected"], data["total"], tuple(data["loads"])


def _params(item) -> dict:
    return dict(getattr(getattr(item, "callspec", None), "params", {}))
