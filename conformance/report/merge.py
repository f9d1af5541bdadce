"""Merging the ``parity.json`` of several runs (shards of one selection, or runs of other
runtimes) into one, from which one report and one gate verdict are built.

A merge is refused, with one line saying why (``MergeError``), when:

* a case is in two runs with different results (pass in one, fail in the other);
* the runs used different versions of the suite or of a runtime they both ran (unless told to
  accept them: ``accept_versions``), or a different ``--decimal``;
* a shard of a sharded selection is missing, or two shards were dealt from different plans.

Runs on different CPUs merge; the merged file names each case's machine, and the report says
per case which CPU ran it (OpenVINO's default precision, for one, follows the CPU).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conformance.engine.machine import describe
from conformance.engine.record import SCHEMA_VERSION

#: Keys of a runtime's facts that describe the machine, not the version (a job with more cores).
_NOT_VERSIONS = ("threads",)


class MergeError(Exception):
    """The runs cannot be merged (one line, for the command's stderr)."""


def load(path: Path) -> tuple[Path, dict]:
    """(folder, parity.json) of a run: ``path`` is a reports folder or its ``parity.json``."""
    path = Path(path)
    file = path / "parity.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except OSError:
        raise MergeError(f"{path}: no parity.json there (pass the reports folder of each shard)") from None
    except ValueError as exc:
        raise MergeError(f"{file}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise MergeError(f"{file}: not a parity.json (no 'cases' list)")
    if int(data.get("schema_version", 1)) > SCHEMA_VERSION:
        raise MergeError(f"{file}: schema version {data['schema_version']} is newer than this suite reads "
                         f"({SCHEMA_VERSION}); merge with the newer suite")
    return file.parent, data


def merge(runs: list[tuple[Path, dict]], *, accept_versions: bool = False) -> dict:
    """One ``parity.json`` payload from ``runs`` ((folder, parity.json) each); ``MergeError``
    when they cannot be merged (see the module docstring)."""
    if not runs:
        raise MergeError("nothing to merge: name at least one reports folder")
    _check_decimal(runs)
    if not accept_versions:
        _check_versions(runs)
    _check_shards(runs)
    cases = _merge_cases(runs)
    metas = [(folder, data.get("meta") or {}) for folder, data in runs]
    machines = {m["machine"]["id"]: m["machine"] for _, m in metas if m.get("machine")}
    header = list(dict.fromkeys(line for _, m in metas for line in m.get("header", [])))
    run_ids = sorted(str(m.get("run_id", "")) for _, m in metas)
    meta = {
        "decimal": metas[0][1].get("decimal", 3), "header": header,
        "run_id": "merge-" + hashlib.sha256(" ".join(run_ids).encode()).hexdigest()[:8],
        "wall_s": max((float(m.get("wall_s") or 0.0) for _, m in metas), default=0.0),
        # a merged run is a whole run: a later --shard may balance by its durations
        "shard": {"index": 1, "count": 1, "merged": len(runs)},
        "machines": machines, "cpus_differ": len({m.get("cpu_id") for m in machines.values()}) > 1,
        "versions": _union_versions(metas),
        "runs": [{"folder": str(folder), "run_id": m.get("run_id"), "shard": (m.get("shard") or {}),
                  "machine": (m.get("machine") or {}).get("id"), "wall_s": m.get("wall_s")} for folder, m in metas],
    }
    return {"schema_version": SCHEMA_VERSION, "meta": meta, "cases": cases}


def _check_decimal(runs) -> None:
    decimals = {(d.get("meta") or {}).get("decimal", 3) for _, d in runs}
    if len(decimals) > 1:
        raise MergeError(f"the runs used different --decimal ({', '.join(map(str, sorted(decimals)))}): "
                         "their verdicts are not comparable")


def _comparable(value):
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in _NOT_VERSIONS}
    return value


def _check_versions(runs) -> None:
    """Every version two runs both name must agree (a runtime only one run tested is fine)."""
    seen: dict[str, tuple[object, Path]] = {}
    for folder, data in runs:
        for key, value in ((data.get("meta") or {}).get("versions") or {}).items():
            value = _comparable(value)
            if key in seen and seen[key][0] != value:
                before, where = seen[key]
                raise MergeError(f"runs of different versions: {key} is {_text(before)} in {where} but "
                                 f"{_text(value)} in {folder} (pass --accept-versions to merge anyway)")
            seen.setdefault(key, (value, folder))


def _text(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {v}" for k, v in value.items()) + "}"
    return repr(value)


def _check_shards(runs) -> None:
    """The shards of each sharded selection are all there, once, dealt from one plan."""
    selections: dict[tuple, dict[int, tuple[str, Path]]] = {}
    for folder, data in runs:
        shard = (data.get("meta") or {}).get("shard") or {}
        count = int(shard.get("count", 1))
        if count <= 1:
            continue
        key = (shard.get("selection", ""), count)
        have = selections.setdefault(key, {})
        index = int(shard["index"])
        if index in have and have[index][1] != folder:
            raise MergeError(f"shard {index}/{count} is there twice: {have[index][1]} and {folder}")
        plans = {p for p, _ in have.values()}
        if plans and shard.get("plan") not in plans:
            other = next(iter(have.values()))[1]
            raise MergeError(f"shards {folder} and {other} were dealt from different plans (different "
                             "--shard-durations files?): their union would not be the selection")
        have[index] = (shard.get("plan"), folder)
    for (selection, count), have in selections.items():
        missing = [i for i in range(1, count + 1) if i not in have]
        if missing:
            got = ", ".join(f"{i}/{count}" for i in sorted(have))
            raise MergeError(f"shard {', '.join(f'{i}/{count}' for i in missing)} of selection {selection} is "
                             f"missing (given: {got})")


def _merge_cases(runs) -> list[dict]:
    """Every case once; one in two runs must have the same result in both."""
    merged: dict[str, tuple[dict, Path]] = {}
    for folder, data in runs:
        for case in data["cases"]:
            nodeid = case.get("nodeid")
            if nodeid in merged:
                other, where = merged[nodeid]
                if other.get("outcome") != case.get("outcome"):
                    raise MergeError(f"{nodeid} is {other.get('outcome')} in {where} but {case.get('outcome')} "
                                     f"in {folder}: the runs disagree")
                continue
            merged[nodeid] = (case, folder)
    return [case for case, _ in merged.values()]


def _union_versions(metas) -> dict:
    found = {}
    for _, meta in metas:
        for key, value in (meta.get("versions") or {}).items():
            found.setdefault(key, value)
    return found


def cpu_notes(parity: dict) -> dict[str, str]:
    """machine id -> a line naming its CPU, when the runs' CPUs differ (else empty)."""
    meta = parity.get("meta") or {}
    machines = meta.get("machines") or {}
    if len({m.get("cpu_id") for m in machines.values()}) <= 1:
        return {}
    return {key: describe(info) for key, info in machines.items()}
