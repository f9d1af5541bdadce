"""``--shard I/N``: the deal is a partition of the selection, deterministic, balanced."""

from __future__ import annotations

import json

import pytest

from conformance.pytest.shards import ShardError, ShardSpec, assign, deal, durations_file, load_durations


def _tests(n_groups=12, per_group=3):
    # (node id, group, weight): groups of runtimes sharing one artifact, uneven weights
    return [(f"t.py::test[{b}-case{g}]", f"case{g}", 1.0 + (g % 5)) for g in range(n_groups)
            for b in ("ort", "ov", "tract")[:per_group]]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 40])
def test_union_of_shards_is_the_selection_and_none_twice(count):
    tests = _tests()
    shard_of, loads, _, _ = deal(tests, count, {})
    assert sorted(shard_of) == sorted(n for n, _, _ in tests)
    assert set(shard_of.values()) <= set(range(1, count + 1))
    assert len(loads) == count


def test_deal_is_deterministic_whatever_the_collection_order():
    tests = _tests()
    a = deal(tests, 3, {})
    b = deal(list(reversed(tests)), 3, {})
    assert a[0] == b[0] and a[2:] == b[2:]


def test_runtimes_of_one_case_and_format_stay_in_one_shard():
    shard_of, *_ = deal(_tests(), 3, {})
    by_group = {}
    for nodeid, shard in shard_of.items():
        by_group.setdefault(nodeid.split("-")[1], set()).add(shard)
    assert all(len(shards) == 1 for shards in by_group.values())


def test_recorded_durations_balance_the_shards():
    # one group is measured 100x heavier than the weights say: it gets a shard of its own
    tests = [(f"t::x{g}", f"g{g}", 1.0) for g in range(9)]
    durations = {f"t::x{g}": 1.0 for g in range(9)}
    durations["t::x0"] = 8.0
    shard_of, loads, _, _ = deal(tests, 2, durations)
    assert sorted(loads) == [8.0, 8.0]
    assert sum(1 for s in shard_of.values() if s == shard_of["t::x0"]) == 1
    unweighted = deal(tests, 2, {})[0]
    assert unweighted != shard_of  # the durations changed the deal


def test_unmeasured_tests_are_weighted_in_seconds():
    tests = [("t::a", "a", 1.0), ("t::b", "b", 1.0), ("t::new", "new", 4.0)]
    _, loads, _, _ = deal(tests, 2, {"t::a": 10.0, "t::b": 10.0})
    assert sorted(loads) == [20.0, 40.0]  # 4 weight units at 10 s each


def test_a_test_recorded_at_zero_seconds_costs_nothing():
    # a skipped (unsupported) test took 0 s: it must not weigh as an unknown test would
    tests = [("t::a", "a", 1.0), ("t::b", "b", 1.0), ("t::skip", "skip", 5.0)]
    _, loads, _, _ = deal(tests, 2, {"t::a": 3.0, "t::b": 3.0, "t::skip": 0.0})
    assert sorted(loads) == [3.0, 3.0]


def test_assign_deals_heaviest_first_to_the_lightest_shard():
    dealt, loads = assign({"a": 5, "b": 4, "c": 3, "d": 3}, 2)
    assert dealt == {"a": 1, "b": 2, "c": 2, "d": 1} and loads == [8, 7]


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", ""])
def test_bad_shard_is_one_line(text):
    with pytest.raises(ShardError, match="--shard .* must be I/N"):
        ShardSpec.parse(text)


def test_durations_come_from_a_whole_run_only(tmp_path):
    whole = {"meta": {"shard": {"index": 1, "count": 1}}, "cases": [{"nodeid": "t::a", "seconds": 2.5}]}
    (tmp_path / "parity.json").write_text(json.dumps(whole))
    assert durations_file(None, tmp_path) == tmp_path / "parity.json"
    assert load_durations(tmp_path / "parity.json") == {"t::a": 2.5}
    whole["meta"]["shard"]["count"] = 3  # a shard's own file covers only its share
    (tmp_path / "parity.json").write_text(json.dumps(whole))
    assert durations_file(None, tmp_path) is None
    with pytest.raises(ShardError, match="no such file"):
        durations_file(str(tmp_path / "nope.json"), tmp_path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ShardError, match="not a readable parity.json"):
        load_durations(tmp_path / "bad.json")
