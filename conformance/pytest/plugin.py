"""The pytest plugin: options, markers, fixtures, parametrization over targets, header, summary.

Installed, it is loaded into every pytest run of the environment, so it stays inert until the
run is the suite's (``activation.asked``: the run reaches the suite's cases or was given one of
its options) or a case of the suite asks for one of its fixtures. Only then is the run's
``ConformanceSession`` made (backends loaded, hypothesis profile chosen, reports planned). The
work is done by the library (``engine``, ``formats``, ``backends``); state lives on
``config.stash``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conformance import private_apis
from conformance.draw import profiles
from conformance.engine import inflight
from conformance.engine.deadline import DEFAULT_CASE_TIMEOUT
from conformance.pytest import activation
from conformance.pytest.activation import SESSION_KEY, option

#: ONNX Runtime, and the same runtime on the ORT-format model (what ONNX Runtime Mobile loads).
ONNX_DEFAULT_BACKENDS = ("onnxruntime", "onnxruntime-ort")
#: The default runtimes: the ONNX pair and ExecuTorch (XNNPACK), each phone runtime's desktop
#: build. ExecuTorch joins where its extra is installed, for the suite's own cases on this host:
#: ``--model`` files are ONNX, which ExecuTorch does not take, and a ``--device`` run compares
#: the device with the ONNX pair here.
DEFAULT_BACKENDS = ONNX_DEFAULT_BACKENDS + ("executorch",)

#: Parameters this plugin gives the suite's own cases (never another project's tests).
CASE_PARAMETERS = ("target", "backend", "export_target", "latency_runner")

# Registered through the ``pytest11`` entry point, this module brings the other plugins with it.
pytest_plugins = ["conformance.pytest.reports", "conformance.pytest.model_files",
                  "conformance.pytest.weights", "conformance.pytest.shards", "conformance.pytest.artifacts",
                  "conformance.pytest.devices"]


def _split(values):
    """Repeated options that may also be comma-separated: ``--opset 9,11 --opset 17``."""
    return [v.strip() for raw in values or [] for v in str(raw).split(",") if v.strip()]


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "cross-backend numerical conformance")
    option(group, "--backend", action="append", metavar="NAME",
                    help="runtime under test (repeatable): onnxruntime, onnxruntime-ort (the ORT format, as for "
                         "mobile), openvino, tract, mnn, ncnn, executorch, litert (each with its extra: "
                         "pip install 'conformance[NAME]'; NAME-default for the runtime's default settings, "
                         "executorch-portable, litert-reference), or a plug-in: an ONNX-backend-API module/class "
                         "such as 'onnxruntime.backend' or 'pkg.mod:Class', or a class with export/load taking a "
                         "torch program. Default: onnxruntime, onnxruntime-ort and (where installed, without "
                         "--device or --model) executorch")
    option(group, "--ort-provider", default="CPUExecutionProvider", metavar="PROVIDER",
                    help="execution provider of the built-in onnxruntime backend. Default: CPUExecutionProvider")
    option(group, "--exporter", action="append", metavar="NAME",
                    help="torch.onnx exporter(s): torchscript, dynamo (repeatable or comma-separated). Default: both")
    option(group, "--opset", action="append", metavar="N",
                    help="opset(s) to export at (repeatable or comma-separated). "
                         "Default: 9, 11, 13, 17 and the newest each exporter supports")
    option(group, "--decimal", type=int, default=3, metavar="N",
                    help="parity to N decimals: |actual - expected| < 1.5 * 10**-N. Default: 3")
    option(group, "--reports", default="reports", metavar="DIR",
                    help="where parity.json and failure reproducers go. Default: reports/")
    option(group, "--device", action="append", metavar="SERIAL",
                    help="add an Android device over ADB as a backend (repeatable); SERIAL may be HOST:PORT, "
                         "connected with 'adb connect' when adb does not know it yet. Default: none")
    option(group, "--adb", metavar="PATH", help="the adb client to use. Default: adb on PATH "
                    "(ANDROID_ADB_SERVER_PORT is honoured)")
    option(group, "--device-dir", metavar="DIR", default="/data/local/tmp/conformance",
                    help="work folder on the device. Default: /data/local/tmp/conformance")
    option(group, "--device-runner", metavar="CMD",
                    help="command that starts a runner speaking docs/device-runner-protocol.md on the "
                         "device, in the work folder where runner.py is pushed (Termux: 'python3 "
                         "runner.py'). Default: push the runtime bundle for the device's ABI (once) "
                         "and start runner.py with its own Python")
    option(group, "--device-runtime", action="append", metavar="NAME",
                    help="runtime on each --device (repeatable): onnxruntime (ONNX models), litert "
                         "(.tflite programs converted here, one per input shape: needs the litert "
                         "extra). Default: onnxruntime")
    option(group, "--device-timeout", type=float, default=30.0, metavar="S",
                    help="timeout of every adb call and runner request, seconds. Default: 30")
    option(group, "--case-timeout", type=float, default=DEFAULT_CASE_TIMEOUT, metavar="S",
                    help="seconds one parity case may take; a runtime that hangs fails its case and the run "
                         f"goes on. Default: {DEFAULT_CASE_TIMEOUT:g}")
    option(group, "--quantized", action="store_true", default=False,
                    help="run every int8 case (each operator and model quantized by PT2E and by ONNX Runtime's "
                         "quantize_static, on every runtime that takes the format), judged in quantization steps. "
                         "Default: a small int8 share")
    option(group, "--expect-placement", action="append", metavar="BACKEND=WHERE",
                    help="every node of BACKEND's cases must run at WHERE (globs; WHERE|WHERE for several), e.g. "
                         "executorch=XnnpackBackend, litert=XNNPACK, onnxruntime=CPUExecutionProvider, openvino=f32; "
                         "a node elsewhere fails its case (repeatable; also [[placement]] in the expected-failures "
                         "file). Default: none")
    option(group, "--feed", default="both", choices=("initializers", "inputs", "both"),
                    help="how weights reach ONNX runtimes: as constant initializers (as deployed), as graph "
                         "inputs fed at run time (another kernel path), or both. Default: both")


@pytest.hookimpl(tryfirst=True)  # before hypothesis' plugin loads --hypothesis-profile
def pytest_configure(config):
    config.addinivalue_line("markers", "parity: a numerical parity case (backend vs PyTorch)")
    config.addinivalue_line("markers", "benchmark: a latency case (pytest-benchmark)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    profiles.register_named(config.getoption("hypothesis_profile", None))
    if activation.asked(config):
        activate(config)


def activate(config):
    """Wake the suite up for this run (once): choose the hypothesis profile, load the backends,
    open the run's session and the report, ``--model`` and ``--weights`` state. A bad option is
    a usage error."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        return session
    from conformance.pytest import threads

    for line in threads.settle():  # before torch loads its OpenMP runtime
        config.issue_config_time_warning(pytest.PytestConfigWarning(f"conformance: {line}"), stacklevel=2)
    # Imported by pytest as this plugin's pytest_plugins (importing them earlier would keep
    # pytest from rewriting their asserts).
    from conformance.pytest import artifacts, model_files, reports, shards, weights
    from conformance.pytest.session import ConformanceSession, UsageError
    from conformance.pytest.shards import SHARD_KEY

    devices = _split(config.getoption("device"))
    backends, left_out = default_backends(config, devices)
    reports.check_options(config)
    shards.activate(config)
    profiles.apply_default(config.getoption("hypothesis_profile", None), devices)
    try:
        session = ConformanceSession.from_options(
            backends=backends,
            ort_provider=config.getoption("ort_provider"),
            exporters=_split(config.getoption("exporter")),
            opsets=_split(config.getoption("opset")),
            decimal=config.getoption("decimal"),
            reports=Path(config.getoption("reports")),
            case_timeout=config.getoption("case_timeout"),
            feed=config.getoption("feed"),
            expected_failures=config.getoption("expected_failures", None),
            expect_placement=config.getoption("expect_placement") or [],
            devices=devices,
            device_options=dict(adb=config.getoption("adb"), device_dir=config.getoption("device_dir"),
                                runner_cmd=config.getoption("device_runner"),
                                timeout=config.getoption("device_timeout"),
                                runtimes=_split(config.getoption("device_runtime")),
                                progress=_device_progress(config)),
            shard_plan=config.stash.get(SHARD_KEY, None),
        )
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    session.header_notes += left_out
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(_Hooks(session), "conformance-session")
    reports.activate(config, session)
    artifacts.activate(config)
    model_files.activate(config)
    weights.activate(config)
    return session


def default_backends(config, devices: list[str]) -> tuple[list[str], list[str]]:
    """The runtimes under test (``--backend``, else the defaults) and a header line for each
    default left out, saying why."""
    named = _split(config.getoption("backend"))
    if named:
        return named, []
    if devices or config.getoption("model", None):
        return list(ONNX_DEFAULT_BACKENDS), []
    import importlib.util

    if importlib.util.find_spec("executorch") is None:
        return list(ONNX_DEFAULT_BACKENDS), ["conformance: executorch is not installed, so the default runtimes are "
                                             "onnxruntime and onnxruntime-ort (pip install 'conformance[executorch]')"]
    return list(DEFAULT_BACKENDS), []


def _device_progress(config):
    """Lines of a runtime bundle's push, shown on the terminal while a case's output is captured."""
    def say(line: str) -> None:
        capman = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if capman is None or reporter is None:
            print(line, file=sys.stderr, flush=True)
            return
        with capman.global_and_fixture_disabled():
            reporter.write_line(line)

    return say


def pytest_generate_tests(metafunc):
    """Parametrize the suite's own cases over the run's targets (waking the suite up if a case
    of it is collected without having been asked for)."""
    if not any(p in metafunc.fixturenames for p in CASE_PARAMETERS) or not activation.is_case(metafunc.definition.path):
        return
    session = activate(metafunc.config)
    if "target" in metafunc.fixturenames:
        targets = session.targets()
        metafunc.parametrize("target", targets, ids=[t.id for t in targets])
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", session.backends, ids=[b.name for b in session.backends])
    if "export_target" in metafunc.fixturenames:
        exports = session.export_targets()
        metafunc.parametrize("export_target", exports, ids=[t.id for t in exports])
    if "latency_runner" in metafunc.fixturenames:
        # Names, not objects: pytest-benchmark saves params in its JSON.
        metafunc.parametrize("latency_runner", ["pytorch"] + [b.name for b in session.backends])


def pytest_collection_modifyitems(config, items):
    """The runtimes of a (case, format) run one after another: they draw the same examples, so
    they share PyTorch's outputs (``conformance.engine.references``) and read side by side.
    Stable: the first test of each group keeps its place, and nothing else moves."""
    if SESSION_KEY not in config.stash:
        return
    from conformance.pytest.casecheck import draw_key

    def group(item) -> str:
        target = _params(item).get("target")
        return draw_key(item.nodeid, target) if target is not None else item.nodeid

    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(group(item), index)
    items.sort(key=lambda item: first[group(item)])


@pytest.fixture(scope="session")
def conformance_session(request):
    """The run's ``ConformanceSession``: validated options, backends and targets."""
    return activate(request.config)


@pytest.fixture(scope="session")
def harness(conformance_session):
    """The run's ``Harness``: the artifact cache shared by every case (self-checks, latency)."""
    return conformance_session.harness


@pytest.fixture
def parity(request, conformance_session):
    """The running test's ``CaseCheck``: runs a case on a target into the test's record."""
    return conformance_session.case_check(request.node.nodeid)


class _Hooks:
    """The per-run hooks, bound to the run's ``ConformanceSession``."""

    def __init__(self, session):
        self.session = session
        self.header_shown = False

    def pytest_unconfigure(self, config):
        self.session.close()

    def pytest_report_header(self, config):
        self.header_shown = True
        return self.session.header_lines()

    def pytest_collection_finish(self, session):
        """Woken up by a collected case after the header was printed: print it now."""
        terminal = session.config.pluginmanager.get_plugin("terminalreporter")
        if not self.header_shown and terminal is not None and not hasattr(session.config, "workerinput"):
            for line in self.session.header_lines():
                terminal.write_line(line)
        self.header_shown = True

    def pytest_runtest_setup(self, item):
        """Open the record of a parity test, then skip (exporter, opset) pairs the exporter cannot
        honour, before any example is drawn (the skip is recorded too)."""
        params = _params(item)
        if item.get_closest_marker("parity") is not None:
            self.session.open_record(item.nodeid, params, item.originalname)
        target = params.get("target")
        export = target.export if target is not None else params.get("export_target")
        if export is not None:
            reason = self.session.unsupported(export)
            if reason:
                pytest.skip(f"unsupported: {reason}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """Close the record with pytest's outcome (a listed expected failure becomes an xfail)
        and ship it on the report: under xdist that carries it to the controller."""
        report = (yield).get_result()
        record = self.session.recorder.get(item.nodeid)
        if item.get_closest_marker("parity") is None or record is None or report.when == "teardown":
            return
        if report.when == "setup" and report.passed:
            # The open record goes to the xdist controller now: should the worker die during the
            # case (a runtime that crashes, or holds the GIL past --case-timeout), the controller
            # still has the case and closes it as failed.
            report.conformance_record = record.to_json()
            return
        text = str(report.longrepr) if report.failed else ""
        reason = private_apis.skip_reason(report) if report.skipped else ""
        outcome = report.outcome
        if report.failed and report.when == "call":
            entry = self.session.expectations.xfail_for(record.to_json())
            if entry is not None:
                private_apis.mark_expected_failure(report, f"expected failure: {entry.reason}")
                outcome, reason = "xfailed", entry.reason
        self.session.recorder.close(item.nodeid, outcome, call.duration if report.when == "call" else 0.0,
                                    message=text, reason=reason)
        report.conformance_record = record.to_json()

    def pytest_runtest_logreport(self, report):
        """On the xdist controller: take the record a worker shipped."""
        if getattr(report, "node", None) is None:
            return  # not the xdist controller: this process keeps its own records
        data = getattr(report, "conformance_record", None)
        if data is not None:
            self.session.recorder.take(data)
            return
        record = self.session.recorder.get(report.nodeid)
        if report.failed and record is not None and record.outcome == "running":  # its worker died
            last = inflight.take(self.session.reports, report.nodeid)  # what it was running then
            self.session.recorder.close_as_ended(report.nodeid, str(report.longrepr), last or "")

    def pytest_terminal_summary(self, terminalreporter, config):
        lines = self.session.summary_lines()
        if not lines:
            return
        terminalreporter.section("conformance")
        for line in lines:
            terminalreporter.write_line(line)
        if config.getoption("hypothesis_show_statistics", False):
            for line in self.session.statistics_lines():
                terminalreporter.write_line(line)
        if not hasattr(config, "workerinput"):
            terminalreporter.write_line(f"parity results: {self.session.write_reports()}")


def _params(item) -> dict:
    return dict(getattr(getattr(item, "callspec", None), "params", {}))
