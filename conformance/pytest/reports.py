"""pytest plugin for reports, baselines and expected failures (brought by the suite's plugin
through its ``pytest_plugins``; inert until the suite wakes up, see ``activation``).

* a parity failure listed in the expected-failures file becomes an xfail (with its reason), and
  a listed tolerance override loosens that case's decimal;
* after the run, ``reports/`` gets ``report.json``, ``summary.md``, ``report.html`` and plots,
  built from the recorder and pytest-benchmark's JSON (plus this machine's peak GFLOP/s);
* ``--save-baseline NAME`` keeps the run, ``--baseline NAME`` compares with a kept one; a case
  slower than ``--max-slowdown`` (and beyond its noise) makes the run exit non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conformance.report import options
from conformance.report.baseline import BaselineError
from conformance.pytest.activation import SESSION_KEY, option


@dataclass
class ReportState:
    """What the plugin gathers during one run."""

    expectations: object  # conformance.report.expected.Expectations
    reports: Path
    baseline: str | None
    save_as: str | None
    max_slowdown: float
    allow_missing: bool = False
    run_id: str = ""
    errors: list[str] = field(default_factory=list)  # tests that failed (a latency case that crashed)
    bench: dict | None = None
    peak: dict | None = None
    report: dict | None = None
    paths: dict = field(default_factory=dict)
    saved: Path | None = None
    error: str | None = None


STATE = pytest.StashKey[ReportState]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance-report", "conformance reports, baselines and expected failures")
    option(group, "--save-baseline", metavar="NAME",
                    help="keep this run as the next numbered baseline NAME under REPORTS/baselines. Default: off")
    option(group, "--baseline", metavar="NAME",
                    help="compare with baseline NAME (newest of that name; or NNNN, NNNN_NAME, a folder). Default: off")
    option(group, "--max-slowdown", type=float, default=options.DEFAULT_MAX_SLOWDOWN * 100, metavar="PCT",
                    help="a backend's latency case that grew by more than PCT%% vs the baseline, significantly "
                         "(Mann-Whitney U, p < 0.01) on a machine no busier than at the baseline, fails the run; "
                         "on a busier one the case is inconclusive, which fails it too (docs/gate.md). Default: 10")
    option(group, "--allow-missing", action="store_true",
                    help="baseline cases this run did not run are listed but do not fail it. Default: they fail it")
    option(group, "--expected-failures", metavar="FILE",
                    help="known failures and tolerance overrides (TOML). Default: conformance/expected_failures.toml")


def check_options(config) -> None:
    """The report options' problems, as a usage error, before anything runs."""
    reports = Path(config.getoption("reports", None) or "reports")  # the harness plugin's --reports
    problem = options.check(reports=reports, baseline=config.getoption("baseline"),
                            max_slowdown=config.getoption("max_slowdown"),
                            hypothesis_profile=config.getoption("hypothesis_profile", None))
    if problem:
        raise pytest.UsageError(problem)


def activate(config, session) -> None:
    """Plan this run's reports (called when the suite wakes up; until then this plugin is inert).
    The expected failures are the session's: loaded once, applied once as each case ends."""
    pct = config.getoption("max_slowdown")
    config.stash[STATE] = ReportState(session.expectations, Path(config.getoption("reports", None) or "reports"),
                                      config.getoption("baseline"), config.getoption("save_baseline"), pct / 100,
                                      config.getoption("allow_missing"), session.run_id)
    config.pluginmanager.register(_Failures(config.stash[STATE]), "conformance-report-failures")


class _Failures:
    """Notes every failed test, so the verdict says what pytest's exit status says (a latency
    case that crashed is no parity record). Bound to the run's state: the hook gets no config."""

    def __init__(self, state: ReportState):
        self.state = state

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.state.errors.append(report.nodeid)


def _conformance_session(config):
    return config.stash.get(SESSION_KEY, None)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Store this machine's peak GFLOP/s in pytest-benchmark's JSON, and keep the JSON."""
    state = config.stash.get(STATE, None)
    if state is None:  # not the suite's run: another project's benchmarks are left as they are
        return
    if state.peak is None:
        from conformance.report.latency_rows import measure_peak_gflops

        state.peak = measure_peak_gflops()
    output_json["conformance_peak"] = state.peak
    output_json["conformance_run_id"] = state.run_id  # pairs this JSON with the run's parity.json
    if state.bench is None or output_json["benchmarks"][:1] and "data" in output_json["benchmarks"][0].get("stats", {}):
        state.bench = output_json


def _parity_json(config) -> dict | None:
    """The run's records, as ``parity.json`` holds them: the one source of the report."""
    conf = _conformance_session(config)
    if conf is None or not conf.recorder.records:
        return None
    return conf.parity_payload()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Build and write the reports (pytest-benchmark has saved its JSON by now)."""
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None:
        return
    from conformance.report import build, junit

    parity = _parity_json(config)
    if hasattr(config, "workerinput") or (parity is None and state.bench is None):
        return
    try:
        state.report = build.build_report(parity=parity, bench=state.bench,
                                          expectations=state.expectations, reports=state.reports,
                                          baseline=state.baseline, max_slowdown=state.max_slowdown,
                                          allow_missing=state.allow_missing, errors=state.errors)
        state.paths = build.write_report(state.report, state.reports)
        junit.add_verdict(getattr(config.option, "xmlpath", None), state.report)
        if state.save_as:
            state.saved = build.save_run(state.reports, state.save_as, state.report, parity, state.bench)
    except BaselineError as exc:
        state.error = str(exc)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if not state.report["verdict"]["ok"] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if state.error:
        terminalreporter.section("conformance report", red=True)
        terminalreporter.write_line(f"ERROR: {state.error}", red=True)
        return
    if state.report is None:
        return
    verdict = state.report["verdict"]
    terminalreporter.section("conformance report", green=verdict["ok"], red=not verdict["ok"])
    for change in verdict["slower"]:
        terminalreporter.write_line(
            f"SLOWER {change['fullname']}: {change['before'] * 1e3:.3g} ms -> {change['after'] * 1e3:.3g} ms "
            f"({change['why']}; limit {change['threshold']:.0%})", red=True)
    for change in verdict.get("inconclusive", []):
        terminalreporter.write_line(f"INCONCLUSIVE {change['fullname']}: {change['why']}", yellow=True)
    for nodeid in verdict.get("missing", []):
        terminalreporter.write_line(f"MISSING {nodeid} (in the baseline, not run"
                                    + (")" if verdict["missing_fails"] else "; allowed)"), red=verdict["missing_fails"])
    if verdict.get("hint"):
        terminalreporter.write_line(f"note: {verdict['hint']}", yellow=True)
    for stale in state.report["stale"]:
        terminalreporter.write_line(f"STALE expected-failure entry {stale['entry']}: {stale['why']}", yellow=True)
    word = verdict.get("word") or ("PASS" if verdict["ok"] else "FAIL")
    terminalreporter.write_line(f"{word}: {verdict['headline']}", green=verdict["ok"], red=not verdict["ok"])
    terminalreporter.write_line(f"report: {state.paths.get('html')}  (summary: {state.paths.get('markdown')})")
    if state.saved:
        terminalreporter.write_line(f"baseline saved: {state.saved}")
