"""A device's outputs against the same runtime on this host: what the device's CPU changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class HostDiff:
    """The device's outputs against the same runtime on this host, for one run (or the worst
    of several). ``host`` names that runtime and this host's CPU (``onnxruntime 1.32.0 on
    x86_64``); ``differing`` counts elements that are not bit-identical (NaN == NaN)."""

    max_abs: float
    differing: int
    elements: int
    host: str

    def to_dict(self) -> dict:
        return {"max_abs": self.max_abs, "differing": self.differing, "elements": self.elements,
                "host": self.host}


def host_diff(device: Sequence[np.ndarray], host: Sequence[np.ndarray], host_name: str,
              ) -> HostDiff | None:
    """Compare outputs elementwise; None when their shapes or counts disagree."""
    if len(device) != len(host) or any(d.shape != h.shape for d, h in zip(device, host)):
        return None
    max_abs, differing, elements = 0.0, 0, 0
    for d, h in zip(device, host):
        d64, h64 = np.asarray(d, np.float64), np.asarray(h, np.float64)
        same = (d64 == h64) | (np.isnan(d64) & np.isnan(h64))
        with np.errstate(invalid="ignore"):  # inf - inf where both are inf: counted as same
            gap = np.abs(d64 - h64)[~same]
        max_abs = max(max_abs, float(gap.max()) if gap.size else 0.0)
        differing += int((~same).sum())
        elements += d64.size
    return HostDiff(max_abs, differing, elements, host_name)
