"""Known failures and per-case tolerance overrides, kept as checked-in data with reasons.

The file (``conformance/expected_failures.toml`` by default) holds two kinds of entries::

    [[xfail]]                     # a failure we know about: reported, but does not fail the gate
    case = "conv2d"               # glob on the case name (required), or a list: ["relu", "prelu"]
    backend = "onnxruntime"       # optional globs (or lists) narrowing it: backend, exporter, opset, test
    exporter = "dynamo"
    reason = "why it fails, and what would fix it"    # required
    issue = "https://..."         # optional
    when = "cpu:avx512_bf16 or cpu:amx_bf16"   # optional condition (below)

    [[tolerance]]                 # a case compared at a looser decimal
    case = "srresnet"
    decimal = 2
    reason = "..."

    [[tolerance]]                 # an int8 case allowed more quantization steps (default 1)
    case = "conv2d"
    backend = "executorch"
    exporter = "int8-*"
    qtol = 2
    reason = "..."

    [[placement]]                 # where every node must run (``conformance.engine.placement``)
    backend = "executorch"        # required here; ``case`` defaults to every case
    on = "XnnpackBackend"         # globs (or a list) of the places each node may run
    reason = "the app ships the XNNPACK delegate alone"

The ``--expect-placement BACKEND=WHERE`` option adds a placement entry (``WHERE`` may list places
joined by ``|``). A node of a matching case that ran elsewhere fails the case.

``when`` makes an entry conditional: alternatives joined by `` or ``, each ``cpu:FLAG`` (the flag is
in /proc/cpuinfo's ``flags``) or ``env:NAME=GLOB`` (a setting in the environment), either one
negated by a leading ``not ``. An entry whose condition does not hold here is not applied (a
runtime's default that is exact on this machine must pass); the file lists it as inactive.

An xfail entry that matches only cases that pass, or a tolerance entry whose cases would pass at
the default tolerance, is *stale*: the report lists it so the file cannot silently rot.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "expected_failures.toml"
_KEYS = {"case", "backend", "exporter", "opset", "test", "reason", "issue", "decimal", "qtol", "when", "on"}
_GLOB_KEYS = ("case", "backend", "exporter", "opset", "test")
_KINDS = ("xfail", "tolerance", "placement")
_CPUINFO = Path("/proc/cpuinfo")


def _alternatives(patterns: str | tuple[str, ...]) -> tuple[str, ...]:
    """The globs of one field: a single one, or the list an entry gave (any one matches)."""
    return patterns if isinstance(patterns, tuple) else (patterns,)


class ExpectedError(Exception):
    """The expected-failures file cannot be read or has a bad entry (one-line message)."""


@dataclass(frozen=True)
class Entry:
    """One xfail or tolerance entry; fields other than ``reason``/``issue``/``decimal`` are globs."""

    kind: str  # "xfail", "tolerance" or "placement"
    where: str  # "FILE: xfail #2", for messages
    case: str | tuple[str, ...]  # a glob, or a list of them (any one matches)
    reason: str
    backend: str | tuple[str, ...] = "*"
    exporter: str | tuple[str, ...] = "*"
    opset: str | tuple[str, ...] = "*"
    test: str | tuple[str, ...] = "*"
    issue: str = ""
    decimal: int | None = None
    qtol: int | None = None  # int8 cases: steps of the output's scale
    when: str = ""  # condition; "" always holds
    on: tuple[str, ...] = ()  # placement entries: globs of where every node may run

    def matches(self, row: dict) -> bool:
        """Does this entry cover ``row`` (a dict with case, backend, exporter, opset, nodeid)?"""
        pairs = [(self.case, row.get("case")), (self.backend, row.get("backend")),
                 (self.exporter, row.get("exporter")), (self.opset, row.get("opset")),
                 (self.test, row.get("nodeid"))]
        return all(any(fnmatch.fnmatchcase(str(value), p) for p in _alternatives(patterns))
                   for patterns, value in pairs)

    def source(self) -> str:
        """Where a placement entry came from, as a failure names it."""
        return self.where if self.where.startswith("--") else f"{self.where}, backend={'|'.join(_alternatives(self.backend))}"

    def describe(self) -> str:
        scope = ", ".join(f"{k}={'|'.join(_alternatives(getattr(self, k)))}" for k in _GLOB_KEYS
                          if getattr(self, k) != "*")
        extra = f" decimal={self.decimal}" if self.decimal is not None else ""
        extra += f" qtol={self.qtol}" if self.qtol is not None else ""
        extra += f" when {self.when}" if self.when else ""
        return f"{self.where} ({scope}{extra}): {self.reason}"


@dataclass
class Expectations:
    """All entries of one file, with lookups by case row."""

    xfails: list[Entry] = field(default_factory=list)
    tolerances: list[Entry] = field(default_factory=list)
    path: Path | None = None
    inactive: list[Entry] = field(default_factory=list)  # entries whose ``when`` does not hold here
    placements: list[Entry] = field(default_factory=list)  # where every node of matching cases must run

    def placement_for(self, row: dict) -> Entry | None:
        """The expected placement of a case row (the first matching entry; options come first)."""
        return next((e for e in self.placements if e.matches(row)), None)

    def xfail_for(self, row: dict) -> Entry | None:
        return next((e for e in self.xfails if e.matches(row)), None)

    def apply(self, records: list[dict]) -> None:
        """Mark the failed records this file lists as expected failures: what the plugin does
        as each case ends, done on saved records when a report is rebuilt with another file."""
        for record in records:
            entry = self.xfail_for(record) if record.get("outcome") == "failed" else None
            if entry is not None:
                record["outcome"], record["reason"] = "xfailed", entry.reason

    def decimal_for(self, row: dict) -> int | None:
        entry = next((e for e in self.tolerances if e.decimal is not None and e.matches(row)), None)
        return entry.decimal if entry else None

    def qtol_for(self, row: dict) -> int | None:
        """The quantization steps an int8 case is allowed (None: the default, 1)."""
        entry = next((e for e in self.tolerances if e.qtol is not None and e.matches(row)), None)
        return entry.qtol if entry else None

    def stale(self, rows: list[dict], default_decimal: int = 3) -> list[dict]:
        """Entries that no longer describe a failing case, with why (see the module docstring).

        ``rows`` are report rows (``status`` pass/fail/xfail/skip and ``max_abs``). Entries that
        match no case that ran are not stale (the run may have been narrowed with ``-k``).
        """
        found = []
        for entry in self.xfails:
            ran = [r for r in rows if entry.matches(r) and r.get("status") in ("pass", "fail", "xfail")]
            if ran and all(r["status"] == "pass" for r in ran):
                found.append({"entry": entry.describe(), "why": f"all {len(ran)} matching cases pass"})
        tol = 1.5 * 10.0 ** -default_decimal
        for entry in self.tolerances:
            if entry.decimal is None:  # a qtol entry: int8 rows carry no decimal-3 error
                continue
            ran = [r for r in rows if entry.matches(r) and r.get("max_abs") is not None]
            if ran and all(r["max_abs"] < tol for r in ran):
                worst = max(r["max_abs"] for r in ran)
                found.append({"entry": entry.describe(),
                              "why": f"all {len(ran)} matching cases pass at decimal={default_decimal} "
                                     f"(worst error {worst:.3g})"})
        return found


def load(path: Path | str | None = None) -> Expectations:
    """Read the expectations file; a missing default file means no expectations."""
    path = Path(path) if path else DEFAULT_PATH
    if not path.exists():
        if path == DEFAULT_PATH:
            return Expectations(path=None)
        raise ExpectedError(f"expected-failures file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExpectedError(f"{path}: {exc}") from None
    unknown = set(data) - set(_KINDS)
    if unknown:
        raise ExpectedError(f"{path}: unknown table(s) {sorted(unknown)}; use [[xfail]], [[tolerance]] and [[placement]]")
    entries = [_entry(path, kind, i, raw) for kind in _KINDS for i, raw in enumerate(data.get(kind, []), 1)]
    active = [e for e in entries if condition_holds(e.when)]
    return Expectations(
        xfails=[e for e in active if e.kind == "xfail"],
        tolerances=[e for e in active if e.kind == "tolerance"],
        placements=[e for e in active if e.kind == "placement"],
        path=path,
        inactive=[e for e in entries if e not in active],
    )


@functools.lru_cache(maxsize=1)
def cpu_flags(path: Path = _CPUINFO) -> frozenset[str]:
    """The CPU's feature flags (``avx512_bf16``, ``amx_bf16``...); empty where there is no cpuinfo."""
    try:
        text = path.read_text()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 names it flags, ARM Features
            flags.update(value.split())
    return frozenset(flags)


def condition_holds(when: str, flags: frozenset[str] | None = None, env=None) -> bool:
    """Whether ``when`` (see the module docstring) holds; "" always does."""
    if not when.strip():
        return True
    flags = cpu_flags() if flags is None else flags
    env = os.environ if env is None else env
    return any(_term_holds(term.strip(), flags, env) for term in when.split(" or "))


def _term_holds(term: str, flags: frozenset[str], env) -> bool:
    negated = term.startswith("not ")
    kind, _, what = term.removeprefix("not ").strip().partition(":")
    if kind == "cpu":
        held = what in flags
    else:  # env: validated at load time
        name, _, pattern = what.partition("=")
        held = fnmatch.fnmatchcase(env.get(name, ""), pattern)
    return held != negated


def _check_condition(where: str, when) -> str:
    if not isinstance(when, str):
        raise ExpectedError(f"{where}: 'when' must be a string such as \"cpu:avx512_bf16 or cpu:amx_bf16\"")
    for term in when.split(" or "):
        kind, _, what = term.strip().removeprefix("not ").strip().partition(":")
        valid = (kind == "cpu" and re.fullmatch(r"[\w.]+", what)) or (kind == "env" and re.fullmatch(r"\w+=\S*", what))
        if not valid:
            raise ExpectedError(f"{where}: bad condition {term.strip()!r} in 'when'; "
                                f"use cpu:FLAG or env:NAME=GLOB, joined by ' or ', each optionally 'not ...'")
    return when


def placement_option(text: str) -> Entry:
    """The entry of one ``--expect-placement BACKEND=WHERE[|WHERE...]`` (globs both sides)."""
    backend, sep, on = (part.strip() for part in str(text).partition("="))
    places = tuple(p.strip() for p in on.split("|"))
    if not sep or not backend or not all(places):
        raise ExpectedError(f"--expect-placement {text!r}: use BACKEND=WHERE, e.g. executorch=XnnpackBackend, "
                            "litert=XNNPACK, onnxruntime=CPUExecutionProvider, openvino*=f32 (globs; WHERE|WHERE for several)")
    return Entry(kind="placement", where=f"--expect-placement {text}", case="*", backend=backend, on=places,
                 reason=f"--expect-placement {text}")


def _entry(path: Path, kind: str, index: int, raw: dict) -> Entry:
    where = f"{path.name}: {kind} #{index}"
    if not isinstance(raw, dict):
        raise ExpectedError(f"{where}: expected a table, got {raw!r}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ExpectedError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(_KEYS)}")
    decimal, qtol = raw.get("decimal"), raw.get("qtol")
    if kind != "tolerance" and (decimal is not None or qtol is not None):
        raise ExpectedError(f"{where}: 'decimal' and 'qtol' belong in a [[tolerance]] entry")
    if kind == "placement":
        return _placement_entry(where, raw)
    if "on" in raw:
        raise ExpectedError(f"{where}: 'on' belongs in a [[placement]] entry")
    for key in ("case", "reason"):
        if not str(raw.get(key, "")).strip():
            raise ExpectedError(f"{where}: '{key}' is required")
    if kind == "tolerance" and qtol is not None:
        if not isinstance(qtol, int) or not 1 <= qtol <= 127 or decimal is not None:
            raise ExpectedError(f"{where}: 'qtol' must be an integer 1-127 (and no 'decimal'), got {qtol!r}")
    elif kind == "tolerance" and (not isinstance(decimal, int) or not 0 <= decimal <= 12):
        raise ExpectedError(f"{where}: 'decimal' must be an integer 0-12, got {decimal!r}")
    return Entry(kind=kind, where=where, decimal=decimal, qtol=qtol, **_fields(where, raw))


def _fields(where: str, raw: dict) -> dict:
    """An entry's globs and texts (a list allowed where a glob is), its condition checked."""
    if "when" in raw:
        _check_condition(where, raw["when"])
    fields = {}
    for key, value in raw.items():
        if key in ("decimal", "qtol", "on"):
            continue
        if isinstance(value, list):
            if key not in _GLOB_KEYS or not value or not all(isinstance(v, (str, int)) for v in value):
                raise ExpectedError(f"{where}: '{key}' must be a string" + (
                    " or a non-empty list of globs" if key in _GLOB_KEYS else ""))
            fields[key] = tuple(str(v) for v in value)
        else:
            fields[key] = str(value)
    return fields


def _placement_entry(where: str, raw: dict) -> Entry:
    """A ``[[placement]]`` table: ``backend`` and ``on`` required; every case unless ``case`` says."""
    for key in ("backend", "on"):
        if key not in raw:
            raise ExpectedError(f"{where}: '{key}' is required (e.g. backend = \"executorch\", on = \"XnnpackBackend\")")
    on = raw["on"] if isinstance(raw["on"], list) else [raw["on"]]
    if not on or not all(isinstance(p, str) and p.strip() for p in on):
        raise ExpectedError(f"{where}: 'on' must be a place (a glob such as \"XnnpackBackend\") or a non-empty list of them")
    fields = {"case": "*", "reason": "", **_fields(where, raw)}
    return Entry(kind="placement", where=where, on=tuple(on), **fields)
