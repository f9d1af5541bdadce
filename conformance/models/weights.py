"""Load SuperResolutionNet weights the way the tutorial does: from a URL or a path.

The tutorial calls ``torch.hub.load_state_dict_from_url(url, map_location=...)``. This module keeps
those semantics (a cache folder, ``check_hash``'s ``name-<sha256 prefix>.ext`` convention) on top of
``torch.hub.download_url_to_file`` so it can add what the hub call lacks: an explicit full SHA-256,
a hash check of an already-cached file, ``weights_only`` loading, and one error type
(:class:`WeightsError`) whose message says what is wrong instead of a traceback.

On a machine with network the tutorial's original checkpoint still loads::

    load_weights(TUTORIAL_URL)   # hash prefix 44c6958e is checked (it is in the file name)
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

import torch

SHIPPED = Path(__file__).with_name("weights") / "superres_x3.pth"
TUTORIAL_URL = "https://s3.amazonaws.com/pytorch/test_data/export/superres_epoch100-44c6958e.pth"
URL_SCHEMES = ("http", "https", "file")
# torch.hub's check_hash convention: "name-<hex prefix of sha256>.ext".
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")


class WeightsError(Exception):
    """A checkpoint could not be used: missing, unreadable, wrong hash or wrong architecture."""


def load_weights(spec: str | os.PathLike | None = None, *, model: torch.nn.Module | None = None,
                 cache_dir: str | os.PathLike | None = None, sha256: str | None = None,
                 map_location="cpu") -> dict[str, torch.Tensor]:
    """Return the state_dict named by ``spec``, checked against ``model``'s keys and shapes.

    ``spec`` is an http/https/file URL (downloaded once into ``cache_dir``, default torch.hub's
    ``<hub_dir>/checkpoints``), a plain path, or None for the shipped checkpoint
    (SuperResolutionNet(3) trained on scikit-image's photographs). ``sha256`` is a full digest or
    a prefix of at least 8 hex digits; without it a URL whose file name carries a hash
    (``name-<sha256 prefix>.ext``) is checked against that prefix, as ``check_hash=True`` does.
    ``model`` defaults to SuperResolutionNet(upscale_factor=3).
    """
    path = _resolve(spec, cache_dir, sha256)
    if sha256 is not None:
        _check_sha256(path, sha256)
    state_dict = _read(path, map_location)
    if model is None:
        from conformance.models.superres import SuperResolutionNet

        model = SuperResolutionNet(upscale_factor=3)
    check_compatible(state_dict, model, source=str(spec or path))
    return state_dict


def _resolve(spec, cache_dir, sha256) -> Path:
    """The local file for ``spec``, downloading a URL into the cache if it is not there yet."""
    if spec is None:
        spec = SHIPPED
    text = os.fspath(spec)
    if urlparse(text).scheme in URL_SCHEMES:
        return _download(text, cache_dir, sha256)
    path = Path(text).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}" if not path.exists()
                           else f"weights path is not a file: {path}")
    return path


def _download(url: str, cache_dir, sha256: str | None) -> Path:
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise WeightsError(f"weights URL names no file: {url}")
    if cache_dir is None:
        cache_dir = Path(torch.hub.get_dir()) / "checkpoints"
    cached = Path(cache_dir).expanduser() / name
    prefix = sha256 or _hash_prefix(name)
    if cached.is_file():
        # torch.hub trusts a cached file blindly; re-check it so a damaged cache is caught.
        if prefix:
            _check_sha256(cached, prefix, hint=f" (cached copy of {url}; delete it to download again)")
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Downloads to a temporary name and renames on success: no half file is ever cached.
        torch.hub.download_url_to_file(url, str(cached), hash_prefix=prefix, progress=False)
    except HTTPError as exc:
        raise WeightsError(f"could not download weights from {url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError) as exc:  # no network, refused connection, unreadable file: URL
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"could not download weights from {url}: {reason}") from None
    except RuntimeError as exc:
        if "invalid hash" in str(exc):
            raise WeightsError(f"weights from {url} fail the SHA-256 check: {exc}") from None
        raise
    return cached


def _hash_prefix(name: str) -> str | None:
    match = _HASH_IN_NAME.search(name)
    return match.group(1) if match else None


def _check_sha256(path: Path, expected: str, hint: str = "") -> None:
    expected = expected.lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", expected):
        raise WeightsError(f"sha256 must be 8 to 64 hex digits, got {expected!r}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(expected):
        raise WeightsError(f"weights file {path} has SHA-256 {digest}, expected {expected}...{hint}")


def _read(path: Path, map_location) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a checkpoint from a URL must not be able to run code when unpickled.
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load raises many types for damaged files; all mean "corrupt"
        raise WeightsError(_load_failure(path, exc)) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # a common training-checkpoint wrapper
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"weights file {path} does not hold a state_dict (name -> tensor), "
                           f"it holds {type(loaded).__name__}")
    return loaded


def _load_failure(path: Path, exc: Exception) -> str:
    """One line for a torch.load failure, without torch's advice to disable weights_only."""
    text = str(exc)
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. Please use|\n\n|$)", text, re.S)
    if detail and "Unsupported global" in detail.group(1):
        return (f"weights file {path} holds pickled Python objects, not only tensors "
                f"({detail.group(1).strip()}); save model.state_dict() instead")
    reason = detail.group(1).strip() if detail else (text.strip().splitlines() or [""])[0]
    if isinstance(exc, EOFError) or not reason:
        reason = "the file is empty or truncated"
    head = _head(path)
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        reason = "a zip archive (as torch.save writes) that is truncated or damaged"
    elif head and not head.startswith((b"PK", b"\x80")):
        # torch.save writes a zip archive (a pickle protocol 2+ stream before torch 1.6): this is neither
        reason = f"torch.save writes a zip archive, this file starts with {head!r}"
    if len(reason) < 12:  # a bare key or opcode ("101") says nothing on its own
        reason = f"{type(exc).__name__} {reason!r} while unpickling: the file is damaged or not from torch.save"
    return f"weights file {path} is not a readable PyTorch checkpoint: {reason}"


def _head(path: Path, size: int = 8) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def check_compatible(state_dict: dict, model: torch.nn.Module, source: str = "checkpoint") -> None:
    """Raise WeightsError naming every missing, unexpected and wrongly-shaped key."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    problems = []
    if missing := sorted(expected.keys() - got.keys()):
        problems.append(f"missing keys {missing}")
    if unexpected := sorted(got.keys() - expected.keys()):
        problems.append(f"unexpected keys {unexpected}")
    shapes = [f"{k}: checkpoint {list(got[k])} vs model {list(expected[k])}"
              for k in sorted(expected.keys() & got.keys()) if got[k] != expected[k]]
    if shapes:
        problems.append("shape mismatches " + "; ".join(shapes))
    if problems:
        raise WeightsError(f"{source} is not a checkpoint for {type(model).__name__}"
                           f"{_describe(model)}: " + "; ".join(problems))


def _describe(model) -> str:
    factor = getattr(model, "upscale_factor", None)
    return f"(upscale_factor={factor})" if factor is not None else ""


def load_model(spec: str | os.PathLike | None = None, **kwargs) -> torch.nn.Module:
    """SuperResolutionNet(3) in eval mode with the weights named by ``spec`` (see load_weights)."""
    from conformance.models.superres import SuperResolutionNet

    model = SuperResolutionNet(upscale_factor=3)
    model.load_state_dict(load_weights(spec, model=model, **kwargs))
    return model.eval()
