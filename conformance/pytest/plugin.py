"""The pytest plugin: options, parametrization over targets, report header, summary (thin).

State lives in one ``ConformanceSession`` on ``config.stash``; the work is done by the library
modules (``parity``, ``export``, ``backends``, ``compare``).
"""

from __future__ import annotations

import os

# Torch's OpenMP threads spin after each op and starve whatever runs next on a small machine
# (ONNX Runtime's own threads, an adb server, a loopback device): measured here, a device
# parity loop ran at 38 examples/s with spinning and 725/s without. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# numpy's OpenBLAS threads make the small QRs of orthogonal weight init ~20x slower beside
# torch and ONNX Runtime threads (26 ms vs 1.2 ms for a 576x64 QR here); heavy math is torch's.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from conformance.engine import inflight  # noqa: E402
from conformance.pytest import profiles  # noqa: E402
from conformance.engine.deadline import DEFAULT_CASE_TIMEOUT  # noqa: E402
from conformance.pytest.session import SESSION_KEY, ConformanceSession, UsageError  # noqa: E402
#: ONNX Runtime, and the same runtime on the ORT-format model (what ONNX Runtime Mobile loads).
DEFAULT_BACKENDS = ("onnxruntime", "onnxruntime-ort")

profiles.register()

# Registered through the ``pytest11`` entry point, this module brings the other plugins with it.
pytest_plugins = ["conformance.pytest.reports", "conformance.pytest.model_files",
                  "conformance.pytest.weights"]


def _split(values):
    """Repeated options that may also be comma-separated: ``--opset 9,11 --opset 17``."""
    return [v.strip() for raw in values or [] for v in str(raw).split(",") if v.strip()]


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "cross-backend numerical conformance")
    group.addoption("--backend", action="append", metavar="NAME",
                    help="runtime under test (repeatable): onnxruntime, onnxruntime-ort (the ORT format, as for "
                         "mobile), openvino, tract, mnn, ncnn, executorch, litert (each with its extra: "
                         "pip install 'conformance[NAME]'; NAME-default for the runtime's default settings, "
                         "executorch-portable, litert-reference), or a plug-in: an ONNX-backend-API module/class "
                         "such as 'onnxruntime.backend' or 'pkg.mod:Class', or a class with export/load taking a "
                         "torch program. Default: onnxruntime and onnxruntime-ort")
    group.addoption("--ort-provider", default="CPUExecutionProvider", metavar="PROVIDER",
                    help="execution provider of the built-in onnxruntime backend. Default: CPUExecutionProvider")
    group.addoption("--exporter", action="append", metavar="NAME",
                    help="torch.onnx exporter(s): torchscript, dynamo (repeatable or comma-separated). Default: both")
    group.addoption("--opset", action="append", metavar="N",
                    help="opset(s) to export at (repeatable or comma-separated). "
                         "Default: 9, 11, 13, 17 and the newest each exporter supports")
    group.addoption("--decimal", type=int, default=3, metavar="N",
                    help="parity to N decimals: |actual - expected| < 1.5 * 10**-N. Default: 3")
    group.addoption("--reports", default="reports", metavar="DIR",
                    help="where parity.json and failure reproducers go. Default: reports/")
    group.addoption("--device", action="append", metavar="SERIAL",
                    help="add an Android device over ADB as a backend (repeatable); SERIAL may be HOST:PORT, "
                         "connected with 'adb connect' when adb does not know it yet. Default: none")
    group.addoption("--adb", metavar="PATH", help="the adb client to use. Default: adb on PATH "
                    "(ANDROID_ADB_SERVER_PORT is honoured)")
    group.addoption("--device-dir", metavar="DIR", default="/data/local/tmp/conformance",
                    help="work folder on the device. Default: /data/local/tmp/conformance")
    group.addoption("--device-runner", metavar="CMD",
                    help="command that starts a runner speaking docs/device-runner-protocol.md on the "
                         "device. Default: push conformance/device/runner.py and run it with python3")
    group.addoption("--device-timeout", type=float, default=30.0, metavar="S",
                    help="timeout of every adb call and runner request, seconds. Default: 30")
    group.addoption("--case-timeout", type=float, default=DEFAULT_CASE_TIMEOUT, metavar="S",
                    help="seconds one parity case may take; a runtime that hangs fails its case and the run "
                         f"goes on. Default: {DEFAULT_CASE_TIMEOUT:g}")
    group.addoption("--quantized", action="store_true", default=False,
                    help="run every int8 case (each operator and model quantized by PT2E and by ONNX Runtime's "
                         "quantize_static, on every runtime that takes the format), judged in quantization steps. "
                         "Default: a small int8 share")
    group.addoption("--feed", default="both", choices=("initializers", "inputs", "both"),
                    help="how weights reach ONNX runtimes: as constant initializers (as deployed), as graph "
                         "inputs fed at run time (another kernel path), or both. Default: both")


def pytest_configure(config):
    config.addinivalue_line("markers", "parity: a numerical parity case (backend vs PyTorch)")
    config.addinivalue_line("markers", "benchmark: a latency case (pytest-benchmark)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    if not config.getoption("hypothesis_profile", None):
        from hypothesis import settings

        settings.load_profile(profiles.default_profile(_split(config.getoption("device"))))
    try:
        session = ConformanceSession.from_options(
            backends=_split(config.getoption("backend")) or list(DEFAULT_BACKENDS),
            ort_provider=config.getoption("ort_provider"),
            exporters=_split(config.getoption("exporter")),
            opsets=_split(config.getoption("opset")),
            decimal=config.getoption("decimal"),
            reports=Path(config.getoption("reports")),
            case_timeout=config.getoption("case_timeout"),
            feed=config.getoption("feed"),
            expected_failures=config.getoption("expected_failures", None),
            devices=_split(config.getoption("device")),
            device_options=dict(adb=config.getoption("adb"), device_dir=config.getoption("device_dir"),
                                runner_cmd=config.getoption("device_runner"),
                                timeout=config.getoption("device_timeout")),
        )
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(_Hooks(session), "conformance-session")


@pytest.fixture(scope="session")
def conformance_session(request) -> ConformanceSession:
    """The run's validated options, backends and targets."""
    return request.config.stash[SESSION_KEY]


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

    def __init__(self, session: ConformanceSession):
        self.session = session

    def pytest_unconfigure(self, config):
        self.session.close()

    def pytest_report_header(self, config):
        return self.session.header_lines()

    def pytest_generate_tests(self, metafunc):
        if "target" in metafunc.fixturenames:
            targets = self.session.targets()
            metafunc.parametrize("target", targets, ids=[t.id for t in targets])
        if "backend" in metafunc.fixturenames:
            backends = self.session.backends
            metafunc.parametrize("backend", backends, ids=[b.name for b in backends])
        if "export_target" in metafunc.fixturenames:
            exports = self.session.export_targets()
            metafunc.parametrize("export_target", exports, ids=[t.id for t in exports])
        if "latency_runner" in metafunc.fixturenames:
            # Names, not objects: pytest-benchmark saves params in its JSON.
            metafunc.parametrize("latency_runner", ["pytorch"] + [b.name for b in self.session.backends])

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
        reason = report.longrepr[2] if report.skipped and isinstance(report.longrepr, tuple) else ""
        outcome = report.outcome
        if report.failed and report.when == "call":
            entry = self.session.expectations.xfail_for(record.to_json())
            if entry is not None:
                report.outcome, report.wasxfail = "skipped", f"expected failure: {entry.reason}"
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
            record.error_type = "ProcessEnded"
            record.error = str(report.longrepr)
            record.summary = ("the test process ended during this case: a runtime crashed, or held the GIL "
                              "past --case-timeout (its stack is in the run's output)")
            last = inflight.take(self.session.reports, report.nodeid)  # what it was running then
            message = record.summary
            if last:
                record.example = last.split(": ", 1)[-1]
                message += f"\n  {last}"
            self.session.recorder.close(report.nodeid, "failed", 0.0, message=f"{message}\n{record.error}")

    def pytest_sessionstart(self, session):
        self.session.started = time.perf_counter()

    def pytest_terminal_summary(self, terminalreporter, config):
        lines = self.session.summary_lines()
        if not lines:
            return
        terminalreporter.section("conformance")
        for line in lines:
            terminalreporter.write_line(line)
        if not hasattr(config, "workerinput"):
            terminalreporter.write_line(f"parity results: {self.session.write_reports()}")


def _params(item) -> dict:
    return dict(getattr(getattr(item, "callspec", None), "params", {}))
