"""Do latency verdicts flip on machine noise, and do they catch a real slowdown?

Times SuperResolutionNet(3) the way the latency case does (``conformance.engine.timed_rounds``:
each backend round between two PyTorch eager rounds, CPU time, run delay and contention gauges),
for two backend kinds:

* ``onnxruntime``: the project's ONNX Runtime backend (``conformance.backends.onnxrt``);
* ``onnxruntime.backend``: ONNX Runtime through the ONNX backend API with default options
  (``conformance.backends.onnx_api``), whose thread pool spins while it waits.

Per backend it saves one run as the baseline (no load started), then ``--reruns`` reruns of each
scenario:

* unchanged, under each load: none, one busy process, one busy process per core, and a
  memory-bandwidth hog; every SLOWER is a false failure;
* the runtime doing 25% more work, no load started: every SLOWER is a catch;
* the runtime doing 50% more work under one busy process: SLOWER or INCONCLUSIVE, never SAME.

"More work" is a wrapper that, after each call, runs the same model on a square crop of the input
whose call was measured (on the quiet machine, before the phase) to take that share of a full
call's time: the same kind of work on the same threads. (A crop with that share of the pixels
took only 8-25% longer: a call has fixed costs.) Each rerun is judged by the gate's
rule (``conformance.report.baseline.compare_latency``) and by the previous release's (the same
data without the new fields: CPU time per call and a U test).

    .venv/bin/python benchmarks/latency_noise.py [--size 128] [--rounds 30] [--reruns 10] [--save runs.json]
    .venv/bin/python benchmarks/latency_noise.py --rejudge runs.json   # judge saved runs again
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the suite sets it (cases/conftest.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.engine import timed_rounds  # noqa: E402
from conformance.pytest.timing import ROUNDS, WARMUP  # noqa: E402
from conformance.models.superres import SuperResolutionNet  # noqa: E402
from conformance.report.baseline import compare_latency  # noqa: E402
from conformance.report.latency_rows import latency_rows  # noqa: E402

GROUP = "superres-x3"
BUSY = "while True: pass"
MEMORY_HOG = "import numpy as np\na = np.ones(2**25)\nb = np.empty_like(a)\nwhile True: np.copyto(b, a)"
LOADS = {"none": [], "one busy process": [BUSY], "one busy process per core": [BUSY] * (os.cpu_count() or 2),
         "memory-bandwidth hog": [MEMORY_HOG]}
#: (scenario, load, extra work): what each phase runs.
SCENARIOS = [("unchanged", load, 0.0) for load in LOADS] + [
    ("25% more work", "none", 0.25), ("50% more work", "one busy process", 0.5)]
NEW_FIELDS = ("reference_times", "run_delay", "contention", "reference_workload", "reference_run_delay")


def onnx_model(module: torch.nn.Module, size: int):
    """The module exported by TorchScript at opset 17, with free height and width."""
    import io

    import onnx

    buffer = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(1, 1, size, size),), buffer, dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {2: "h", 3: "w"}})
    return onnx.load_from_string(buffer.getvalue())


def backend_session(kind: str, model):
    if kind == "onnxruntime":
        from conformance.backends.onnxrt import OnnxRuntimeBackend

        return OnnxRuntimeBackend().prepare(model)
    from conformance.backends.onnx_api import OnnxApiBackend

    return OnnxApiBackend(kind).prepare(model)


def calibrated_side(session, x: np.ndarray, work: float) -> int:
    """The side of the square input whose call takes ``work`` of a full call's time (measured:
    a call has fixed costs, so 25% of the pixels took only 8-25% longer)."""
    def median_time(arr, n=15):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            session.run([arr])
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    full = median_time(x)
    sides = range(4, x.shape[-1] + 1, 4)
    return min(sides, key=lambda s: abs(median_time(x[..., :s, :s].copy()) / full - work))


def one_run(session, module, x: np.ndarray, rounds: int, extra_work: float = 0.0, side: int | None = None) -> dict:
    """One run's timings, shaped like pytest-benchmark's JSON (with raw rounds)."""
    tensor = torch.from_numpy(x)
    side = side or round(x.shape[-1] * extra_work ** 0.5)
    extra = x[..., :side, :side].copy() if extra_work else None

    def reference():
        with torch.no_grad():
            module(tensor)

    def backend():
        session.run([x])
        if extra is not None:
            session.run([extra])

    measured = timed_rounds.measure(backend, rounds, WARMUP, reference)
    info = {"backend": "backend", **timed_rounds.extra_info(measured, "PyTorch eager SuperResolutionNet(3)")}
    return {"benchmarks": [_bench(measured["times"], info)]}


def _bench(data: list[float], extra_info: dict) -> dict:
    q1, median, q3 = statistics.quantiles(data, n=4)
    return {"group": GROUP, "name": "test_latency[backend]", "fullname": "latency_noise::test_latency[backend]",
            "extra_info": extra_info,
            "stats": {"median": statistics.median(data), "q1": q1, "q3": q3, "iqr": q3 - q1, "min": min(data),
                      "max": max(data), "ops": 1 / statistics.median(data), "rounds": len(data), "data": data}}


def previous_format(run: dict) -> dict:
    """The run as the previous release saved it (no interleaved reference, no gauges)."""
    benches = [{**b, "extra_info": {k: v for k, v in b["extra_info"].items() if k not in NEW_FIELDS}}
               for b in run["benchmarks"]]
    return {**run, "benchmarks": benches}


def judge(base: dict, run: dict, limit: float) -> dict:
    return compare_latency(latency_rows(base), latency_rows(run), limit)[0]


def start_load(load: str) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", code]) for code in LOADS[load]]
    time.sleep(0.5 if procs else 0)  # let them get going
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
        proc.wait()


def measure_all(args) -> dict:
    """Every backend's baseline and reruns: {backend: {"baseline": run, "phases": [...]}}."""
    torch.manual_seed(0)
    module = SuperResolutionNet(3).eval()
    model = onnx_model(module, args.size)
    x = np.random.default_rng(0).uniform(0, 255, (1, 1, args.size, args.size)).astype(np.float32)
    saved = {"size": args.size, "rounds": args.rounds, "cpus": os.cpu_count(), "backends": {}}
    for kind in args.backends:
        session = backend_session(kind, model)
        base = quietest([one_run(session, module, x, args.rounds) for _ in range(args.baseline_tries)])
        gauges = base["benchmarks"][0]["extra_info"]["contention"]
        print(f"\n{kind}: baseline saved while other processes used {gauges['others_share'] or 0:.0%} of the cores "
              f"(the quietest of {args.baseline_tries} runs)")
        phases = []
        for scenario, load, work in [SCENARIOS[i] for i in args.scenarios]:
            side = calibrated_side(session, x, work) if work else None  # measured before any load starts
            procs = start_load(load)
            try:
                runs = [one_run(session, module, x, args.rounds, work, side) for _ in range(args.reruns)]
            finally:
                stop_load(procs)
            phases.append({"scenario": scenario, "load": load, "work": work, "side": side, "runs": runs})
            report_phase(kind, base, phases[-1], args.max_slowdown / 100)
        saved["backends"][kind] = {"baseline": base, "phases": phases}
    return saved


def quietest(runs: list[dict]) -> dict:
    """The run whose timed rounds met the fewest other processes: "save a baseline on a quiet
    machine", on a machine that is never quiet."""
    return min(runs, key=lambda r: r["benchmarks"][0]["extra_info"]["contention"]["others_share"] or 0.0)


def report_phase(kind: str, base: dict, phase: dict, limit: float, echo: bool = True) -> dict:
    """Print each rerun's verdict (``echo``); returns the tallies for the table."""
    if echo:
        print(f"\n{kind}: {phase['scenario']}, load: {phase['load']}")
    gate, old = Counter(), Counter()
    for i, run in enumerate(phase["runs"]):
        change = judge(base, run, limit)
        previous = judge(previous_format(base), previous_format(run), limit)
        gate[change["verdict"]] += 1
        old[previous["verdict"]] += 1
        gauges = run["benchmarks"][0]["extra_info"]["contention"]
        if echo:
            print(f"  {i + 1:2d}: {change['verdict']:12s} [{change['rule']}] {change['why']} | others "
                  f"{gauges['others_share'] or 0:.0%} | previous rule: {previous['verdict']}")
    return {"gate": gate, "old": old}


def table(saved: dict, limit: float, rejudge: bool = False) -> str:
    lines = ["| backend | scenario | load | gate: SLOWER / INCONCLUSIVE / same | previous rule: SLOWER |",
             "|---|---|---|---:|---:|"]
    for kind, data in saved["backends"].items():
        for phase in data["phases"]:
            tally = report_phase(kind, data["baseline"], phase, limit, echo=rejudge)
            n = len(phase["runs"])
            gate = tally["gate"]
            lines.append(f"| {kind} | {phase['scenario']} | {phase['load']} | "
                         f"{gate['slower']} / {gate['inconclusive']} / {n - gate['slower'] - gate['inconclusive']} "
                         f"| {tally['old']['slower']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="input side (1x1xSxS). Default: 128")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"timed rounds per run. Default: {ROUNDS} (the suite's)")
    parser.add_argument("--reruns", type=int, default=10, help="reruns per scenario. Default: 10")
    parser.add_argument("--max-slowdown", type=float, default=10.0, help="the gate's limit, percent. Default: 10")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "onnxruntime.backend"])
    parser.add_argument("--scenarios", type=int, nargs="+", default=list(range(len(SCENARIOS))),
                        help="which scenarios, by number: " + ", ".join(f"{i} {s.replace('%', '%%')} ({load})" for i, (s, load, _)
                                                                       in enumerate(SCENARIOS)) + ". Default: all")
    parser.add_argument("--baseline-tries", type=int, default=3,
                        help="runs to pick the baseline from (the quietest). Default: 3")
    parser.add_argument("--save", metavar="FILE", help="write every run's timings here (for --rejudge)")
    parser.add_argument("--rejudge", metavar="FILE", help="judge the runs saved in FILE again, measure nothing")
    args = parser.parse_args()
    started = time.time()
    if args.rejudge:
        saved = json.loads(Path(args.rejudge).read_text())
    else:
        print(f"SuperResolutionNet(3) at 1x1x{args.size}x{args.size}; {args.rounds} rounds (+{WARMUP} warm-up) "
              f"per run; limit {args.max_slowdown:g}%; torch {torch.__version__}, {torch.get_num_threads()} "
              f"threads; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
        saved = measure_all(args)
        if args.save:
            Path(args.save).write_text(json.dumps(saved))
    print("\n" + table(saved, args.max_slowdown / 100, rejudge=bool(args.rejudge)))
    print(f"\n{time.time() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
