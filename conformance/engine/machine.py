"""Which machine ran a test: host name, CPU model and the CPU features that change results.

Runtimes pick kernels by CPU feature: OpenVINO's default precision follows the CPU (bf16 where
``avx512_bf16`` or AMX is present), oneDNN and XNNPACK take other code paths with AVX-512 or
VNNI. Shards merged from several machines therefore say per case which CPU ran it.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import socket
from pathlib import Path

#: CPU flags (as /proc/cpuinfo names them) that select other kernels or precisions.
RELEVANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                  "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
                  "asimd", "asimdhp", "asimddp", "sve", "sve2", "bf16", "i8mm")


def _cpuinfo() -> tuple[str, list[str]]:
    """(model name, flags) from /proc/cpuinfo; ('', []) where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "", []
    model, flags = "", []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "CPU part") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
    return model, flags


@functools.lru_cache(maxsize=None)
def machine_info() -> dict:
    """This machine: ``{"id", "host", "cpu", "arch", "flags", "cpu_id"}``.

    ``cpu_id`` names the CPU model and its relevant flags (equal ids compute alike); ``id`` adds
    the host name (``host/cpu_id``)."""
    model, flags = _cpuinfo()
    model = model or platform.processor() or platform.machine()
    relevant = sorted(f for f in set(flags) if f in RELEVANT_FLAGS)
    cpu_id = hashlib.sha256(f"{model}|{platform.machine()}|{' '.join(relevant)}".encode()).hexdigest()[:8]
    host = socket.gethostname() or platform.node() or "unknown"
    return {"id": f"{host}/{cpu_id}", "host": host, "cpu": model, "arch": platform.machine(),
            "flags": relevant, "cpu_id": cpu_id}


def describe(info: dict) -> str:
    """One line: ``host: CPU model (arch; flags)``."""
    flags = ", ".join(info.get("flags") or []) or "no listed flags"
    return f"{info.get('host', '?')}: {info.get('cpu', '?')} ({info.get('arch', '?')}; {flags})"
