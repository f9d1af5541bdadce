"""Where ONNX Runtime ran each node: the execution provider per node of the optimized graph.

Read from the runtime, never guessed: one run of a twin session with profiling on. ONNX Runtime's
profiler writes a Chrome-trace JSON in which every executed node is a ``"cat": "Node"`` event
named ``<node>_kernel_time`` whose ``args`` carry ``op_name`` and ``provider``. The node names
are those of the graph as optimized, so a graph rewrite shows in them: on x86 ONNX Runtime 1.32
turns SuperResolutionNet's Conv + Relu pairs into NCHWc Convs named after the Relu's output
(``/relu/Relu_output_0_nchwc (Conv)``) and adds a ``ReorderOutput`` back to NCHW.

The twin costs one session and one run (a few ms for an operator), and is made only when the
placement is asked for, i.e. once for the outcome a case reports, never per example.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from conformance.backends.base import BackendError

_SUFFIX = "_kernel_time"


def nodes_of_profile(events: list[dict]) -> dict[str, str]:
    """``"node (op)" -> provider`` for every node event of a profile (a node run twice, as in a
    loop's body, once)."""
    found = {}
    for event in events:
        name, args = event.get("name", ""), event.get("args") or {}
        if event.get("cat") != "Node" or not name.endswith(_SUFFIX) or "provider" not in args:
            continue
        found[f"{name.removesuffix(_SUFFIX)} ({args.get('op_name', '?')})"] = args["provider"]
    return found


def profiled_placement(make: Callable[[str], object], feed: Mapping[str, np.ndarray], who: str) -> dict[str, str]:
    """Run ``feed`` once on ``make(prefix)`` (an InferenceSession like the one under test, with
    ``enable_profiling`` on and ``profile_file_prefix=prefix``) and read the providers back from
    its profile. The profile goes to a private folder, removed afterwards."""
    from conformance.backends.ortformat import fast_tmp

    folder = tempfile.mkdtemp(prefix="conformance-ort-profile-", dir=fast_tmp())
    try:
        try:
            session = make(str(Path(folder) / "profile"))
            session.run(None, dict(feed))
            path = session.end_profiling()
        except Exception as exc:  # ORT raises its own Fail/InvalidArgument/... types
            raise BackendError.wrap(who, "a profiled run (to read where each node ran)", exc) from exc
        return nodes_of_profile(json.loads(Path(path).read_text()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
