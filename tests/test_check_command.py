"""``conformance check``: its reference is never the runtime under test, runtime errors are one
line, long checks show progress, and its timeout default is the pytest option's."""

from __future__ import annotations

import io

from byom_helpers import relu, save
from conformance.cli import build_parser
from conformance.commands import check as check_command
from test_hardening import check  # noqa: F401  (the fixture: exit code, stdout + stderr)


def test_default_reference_is_not_the_runtime_under_test(check, tmp_path):
    code, out = check(save(relu(), tmp_path / "r.onnx"))
    assert code == 0 and "PASS onnxruntime vs conformance.backends.onnx_reference: 3 examples" in out


def test_reference_under_test_is_refused_with_why(check, tmp_path):
    code, out = check(save(relu(), tmp_path / "r.onnx"), "--reference", "onnxruntime")
    assert code == 2 and out.count("\n") == 1  # refused before any example ran
    assert "--reference onnxruntime is also under test: it would be compared with itself" in out


def test_unreleased_opset_is_one_line(check, tmp_path):
    code, out = check(save(relu(opset=99), tmp_path / "r99.onnx"), "--reference", "onnxruntime",
                      "--backend", "conformance.backends.onnx_reference")
    assert code == 2 and "Opset 99" in out
    assert out.count("\n") == 2  # "preparing the reference ..." and the one error line
    assert "onnxruntime_src" not in out and "ValidateOpsetForDomain" not in out  # no C++ location or signature


def test_progress_lines_while_a_backend_is_slow():
    ticks = iter([0.0, 4.0, 11.0, 12.0, 25.0])
    out = io.StringIO()
    progress = check_command.Progress("ort", "ref", 10, every=10.0, clock=lambda: next(ticks), out=out)
    for _ in range(4):
        progress()
    lines = out.getvalue().splitlines()
    assert lines == ["  ort vs ref: 2 examples in 11 s (5.5 s each; up to 10 plus shrinking)",
                     "  ort vs ref: 4 examples in 25 s (6.2 s each; up to 10 plus shrinking)"]


def test_case_timeout_default_is_the_pytest_options():
    from conformance.engine.deadline import DEFAULT_CASE_TIMEOUT

    parsed = build_parser().parse_args(["check", "m.onnx"])
    assert parsed.case_timeout == DEFAULT_CASE_TIMEOUT


def _superres_file(tmp_path):
    import torch

    from conformance.formats.onnx_export import ExportTarget, export
    from conformance.models import SuperResolutionNet

    torch.manual_seed(0)
    model = export(SuperResolutionNet(upscale_factor=2), (torch.rand(1, 1, 12, 12),), ExportTarget("torchscript", 17))
    return save(model, tmp_path / "superres.onnx")


def test_a_failing_model_is_localized_to_its_first_diverging_node(check, tmp_path):
    code, out = check(_superres_file(tmp_path), "--backend", "slow_backend:SuperresConv2Off")
    assert code == 1 and "FAIL slow_backend.SuperresConv2Off" in out
    # the node the fault sits in, not conv3 or conv4 downstream, which only inherit its error
    assert "first diverging layer: /conv2/Conv (Conv /conv2/Conv): max abs error 0.05 alone" in out
    plots = list((tmp_path / "reports" / "reproducers").rglob("layer_errors.png"))
    assert len(plots) == 1 and plots[0].stat().st_size > 0


def test_a_passing_model_is_not_localized(check, tmp_path):
    code, out = check(_superres_file(tmp_path))
    assert code == 0 and "diverging" not in out and "PASS onnxruntime" in out
