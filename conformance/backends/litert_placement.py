"""Which ops of a ``.tflite`` LiteRT's delegate took, read from the interpreter after delegation.

Once its tensors are allocated, an interpreter lists the model's own ops (``_get_ops_details``:
index, op name, input and output tensors) followed by one ``DELEGATE`` node per partition the
delegate took. A partition's node reads the partition's inputs (activations and constants) and
writes its outputs; the ops it replaced are the ones between the two. They are found by walking
back from the delegate node's outputs through the ops that produced them, stopping at the
delegate node's inputs. Every op not reached stays on TFLite's builtin kernels.

A ``DELEGATE`` node does not name its delegate. The interpreter is made without
``experimental_delegates``, so the delegate applied is the default one of the builtin op
resolver: XNNPACK (``INFO: Created TensorFlow Lite XNNPACK delegate for CPU``).
"""

from __future__ import annotations

DEFAULT_DELEGATE = "XNNPACK"
BUILTIN = "builtin"


def delegation(interpreter, delegate: str = DEFAULT_DELEGATE) -> dict[str, str]:
    """``"op N (KIND)" -> delegate or "builtin"`` for each op of the model's primary subgraph."""
    ops = interpreter._get_ops_details()  # the only listing of nodes the Python API offers
    own = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): op["index"] for op in own for t in op["outputs"] if t >= 0}
    by_index = {op["index"]: op for op in own}
    taken: set[int] = set()
    for node in ops:
        if node["op_name"] == "DELEGATE":
            taken |= _replaced(node, producer, by_index)
    return {f"op {op['index']} ({op['op_name']})": delegate if op["index"] in taken else BUILTIN for op in own}


def _replaced(node: dict, producer: dict[int, int], by_index: dict[int, dict]) -> set[int]:
    """The ops between a delegate node's inputs and its outputs: those it replaced."""
    boundary = {int(t) for t in node["inputs"]}
    pending, found = [int(t) for t in node["outputs"]], set()
    while pending:
        tensor = pending.pop()
        op = producer.get(tensor)
        if tensor in boundary or op is None or op in found:
            continue
        found.add(op)
        pending.extend(int(t) for t in by_index[op]["inputs"] if t >= 0)
    return found
