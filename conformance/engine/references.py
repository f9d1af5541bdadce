"""PyTorch's outputs, computed once per (module state, input) and shared by every runtime.

Every runtime of a (case, format) draws the same examples in a run (``draw_key``), and the
plugin runs those tests one after another, so ONNX Runtime and its ORT format (and any ONNX
runtime beside them) meet the same modules on the same inputs: the reference they are judged
against is computed once. Keys are the recipes an example is made from (case, structure,
weight recipe, input recipe, dtype), which fix the module's state and the input exactly; the
input itself is made afresh for each run, since a runtime may write into what it is handed.

Held arrays are read-only: a caller that wrote into a shared reference would change what the
next runtime is judged against, and now fails loudly instead. The store keeps the most recent
outputs up to ``max_bytes`` (a test's outputs are reused by the tests right after it).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np

#: What the store may hold: a 1080p SuperResolutionNet output is 75 MB in float32.
DEFAULT_MAX_BYTES = 512 * 2**20


class References:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._held: OrderedDict[Hashable, list[np.ndarray]] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        """The outputs held for ``key``, else ``compute()``'s (kept, read-only). An unhashable key
        is computed every time."""
        try:
            found = self._held.get(key)
        except TypeError:
            return compute()
        if found is not None:
            self._held.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        outputs = [np.asarray(o) for o in compute()]
        size = sum(o.nbytes for o in outputs)
        if size > self.max_bytes:
            return outputs
        for o in outputs:
            o.setflags(write=False)
        self._held[key] = outputs
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._held.popitem(last=False)
            self._bytes -= sum(o.nbytes for o in dropped)
        return outputs

    def __len__(self) -> int:
        return len(self._held)
