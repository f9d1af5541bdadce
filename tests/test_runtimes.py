"""The optional runtimes' plumbing, with or without the runtimes installed: names, the
missing-extra usage error, extras, conversion caching, converter failures, and conditional
expected-failure entries."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from conformance.backends import RUNTIMES, BackendError, load_backend
from conformance.backends import _runtime
from conformance.report import expected

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parent.parent
# The Python packages each extra brings, as the backends look them up.
MODULES = {"openvino": ["openvino"], "tract": ["tract"], "mnn": ["MNN", "_tools"], "ncnn": ["ncnn", "pnnx"],
           "executorch": ["executorch"], "litert": ["litert_torch", "ai_edge_litert"]}


def _extras() -> dict[str, list[str]]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _extra_of(name: str) -> str:
    return RUNTIMES[name][0]  # each runtime's module is named after its extra


def _hide(monkeypatch, extra: str) -> None:
    """Make ``extra``'s packages look uninstalled (a None entry in sys.modules hides a module)."""
    for module in MODULES[extra]:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_missing_runtime_is_one_line_naming_its_extra(monkeypatch, name):
    extra = _extra_of(name)
    _hide(monkeypatch, extra)
    with pytest.raises(BackendError) as info:
        load_backend(name)
    assert str(info.value) == f'runtime {name!r} needs the {extra} extra: pip install "conformance[{extra}]"'


def test_every_runtime_has_an_extra_and_all_holds_them():
    extras = _extras()
    names = {_extra_of(name) for name in RUNTIMES}
    assert names == set(MODULES) and names <= set(extras)
    assert extras["all"] == [f"conformance[{','.join(sorted(names, key=list(extras).index))}]"]


def test_missing_runtime_on_the_command_line_is_a_usage_error(pytester, monkeypatch):
    _hide(monkeypatch, "openvino")
    result = pytester.runpytest_inprocess("-p", "conformance.plugin", "--backend", "openvino")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert 'runtime \'openvino\' needs the openvino extra: pip install "conformance[openvino]"' in err, err
    assert "Traceback" not in err + result.stdout.str()


def test_failing_carries_the_exception_type_and_message():
    with pytest.raises(BackendError, match=r"^rt: compile failed: ValueError: bad graph | second line$"):
        with _runtime.failing("rt", "compile"):
            raise ValueError("bad graph\nsecond line")


def test_conversion_cache_converts_each_model_once_and_remembers_refusals():
    cache = _runtime.ConversionCache()
    calls = []

    def convert(tag):
        calls.append(tag)
        if tag == "bad":
            raise BackendError("rt: converter refused")
        return f"converted {tag}"

    for data in (b"one", b"one", b"two", b"one"):
        assert cache.get(cache.key(data), lambda d=data: convert(d.decode())) == f"converted {data.decode()}"
    for _ in range(2):
        with pytest.raises(BackendError, match="converter refused"):
            cache.get(cache.key(b"bad"), lambda: convert("bad"))
    assert calls == ["one", "two", "bad"] and cache.conversions == 3
    assert cache.key(b"one", "fp16=1") != cache.key(b"one", "fp16=0")


def test_run_tool_failure_and_timeout_are_one_line(tmp_path):
    script = "import sys; print('step 1'); print('it broke', file=sys.stderr); sys.exit(3)"
    with pytest.raises(BackendError, match=r"^rt: conv failed \(exit 3\): step 1 \| it broke$"):
        _runtime.run_tool("rt", "conv", [sys.executable, "-c", script], cwd=str(tmp_path))
    with pytest.raises(BackendError, match="did not finish in 1 s"):
        _runtime.run_tool("rt", "conv", [sys.executable, "-c", "import time; time.sleep(30)"],
                          cwd=str(tmp_path), timeout=1)


def test_scratch_gives_fresh_names_and_close_removes_them():
    scratch = _runtime.Scratch("test")
    folder, file = Path(scratch.folder()), Path(scratch.file(".onnx"))
    assert folder.is_dir() and not file.exists() and file.parent == folder.parent
    file.write_bytes(b"x")
    scratch.close()
    assert not folder.parent.exists()


# Conditional expected failures ------------------------------------------------------------------

def test_cpu_flags_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n")
    assert expected.cpu_flags.__wrapped__(info) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert expected.cpu_flags.__wrapped__(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize("when, holds", [
    ("", True),
    ("cpu:avx512_bf16", True),
    ("cpu:amx_bf16", False),
    ("cpu:amx_bf16 or cpu:avx512_bf16", True),
    ("not cpu:avx512_bf16", False),
    ("not cpu:amx_bf16", True),
    ("env:MODE=fast*", True),
    ("env:MODE=slow", False),
    ("env:UNSET=", True),
])
def test_condition_holds(when, holds):
    assert expected.condition_holds(when, frozenset({"avx2", "avx512_bf16"}), {"MODE": "fastest"}) is holds


ROWS = [{"case": "superres", "backend": "openvino-default", "exporter": "torchscript", "opset": 17,
         "nodeid": "n1", "status": "pass", "max_abs": 1e-4}]


def _write(tmp_path, when: str) -> Path:
    path = tmp_path / "expected.toml"
    path.write_text(f'[[xfail]]\ncase = "superres"\nbackend = "openvino-default"\nwhen = "{when}"\n'
                    'reason = "bf16 by default"\n')
    return path


def test_entry_whose_condition_fails_is_inactive_not_applied_not_stale(tmp_path):
    exp = expected.load(_write(tmp_path, "cpu:no_such_flag_anywhere"))
    assert exp.xfails == [] and [e.when for e in exp.inactive] == ["cpu:no_such_flag_anywhere"]
    assert exp.xfail_for({**ROWS[0], "status": "fail"}) is None
    assert exp.stale(ROWS) == []


def test_entry_whose_condition_holds_but_case_passes_is_stale(tmp_path):
    exp = expected.load(_write(tmp_path, "not cpu:no_such_flag_anywhere"))
    assert exp.inactive == [] and exp.xfail_for({**ROWS[0], "status": "fail"}).reason == "bf16 by default"
    stale = exp.stale(ROWS)
    assert len(stale) == 1 and "when not cpu:no_such_flag_anywhere" in stale[0]["entry"]


@pytest.mark.parametrize("when", ["avx512_bf16", "cpu:", "gpu:x", "env:NAME", "cpu:a and cpu:b"])
def test_bad_condition_is_one_line(tmp_path, when):
    with pytest.raises(expected.ExpectedError, match=r"xfail #1: bad condition .* use cpu:FLAG or env:NAME=GLOB"):
        expected.load(_write(tmp_path, when))


def test_checked_in_entries_name_runtime_targets_and_load():
    exp = expected.load()
    entries = exp.xfails + exp.tolerances + exp.inactive
    names = {b for e in entries for b in ((e.backend,) if isinstance(e.backend, str) else e.backend)}
    defaults = {b for b in names if b.endswith("-default")}
    assert defaults == {n for n in RUNTIMES if n.endswith("-default")}
    assert all(e.reason.strip() for e in entries)
