"""Loading a user's ONNX file defensively: every way it can be bad gets its own message.

A user's file may be missing, not ONNX at all, cut short, invalid, or point at external data
that is not there. Each of these raises ``ModelError`` (a usage error: exit code 2 on the
command line, a clean test failure under pytest) instead of a protobuf or checker traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError


class ModelError(Exception):
    """The model file (or the options describing it) cannot be checked; the message says why."""


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read ``path`` with its external data, verified by ``onnx.checker``.

    Raises ``ModelError`` for a missing or empty file, a file that does not parse as an ONNX
    ``ModelProto`` (not ONNX, or truncated), missing or short external data files, and a model
    that fails the checker.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: empty file, not an ONNX model")
    model = _parse(path)
    _check_external_data(model, path.parent, path)
    try:
        # The path form checks models with external data (and over 2 GB) without loading them.
        onnx.checker.check_model(str(path))
    except (onnx.checker.ValidationError, Exception) as exc:  # the C++ checker raises a few types
        raise ModelError(f"{path}: fails onnx.checker: {_first_line(exc)}") from None
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read external data: {exc}") from None
    return model


def _parse(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError:
        raise ModelError(
            f"{path}: not an ONNX model, or a truncated one (protobuf parsing failed; "
            f"{path.stat().st_size} bytes)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read: {exc}") from None
    # Protobuf parses many short byte strings (even some text) as a valid but empty message.
    if not model.ir_version or not model.HasField("graph"):
        raise ModelError(f"{path}: not an ONNX model (no ir_version or graph; truncated or another format?)")
    return model


def _external_tensors(model: onnx.ModelProto):
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if onnx.external_data_helper.uses_external_data(tensor):
            yield tensor


def _check_external_data(model: onnx.ModelProto, base: Path, path: Path) -> None:
    """Every external-data reference names a regular file under ``base`` long enough for it."""
    for tensor in _external_tensors(model):
        info = onnx.external_data_helper.ExternalDataInfo(tensor)
        location = base / info.location
        if not location.is_file():
            raise ModelError(
                f"{path}: missing external data file {info.location!r} (tensor {tensor.name!r}); "
                f"it must sit next to the model, in {base}")
        needed = (info.offset or 0) + (info.length or 0)
        if info.length and location.stat().st_size < needed:
            raise ModelError(
                f"{path}: external data file {info.location!r} is {location.stat().st_size} bytes, "
                f"tensor {tensor.name!r} needs bytes up to {needed} (truncated copy?)")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:400] if len(lines) == 1 else " ".join(lines[:3])[:400]
