"""What a conformance case is: a module family, how to draw its structure and its inputs.

An operator case and a model case have the same shape: ``structures`` draws the attributes
that change the exported graph (exported once each), ``build`` makes the torch module for a
structure, ``input_shapes`` draws shapes the exported graph accepts through its dynamic axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Sequence

import torch
from hypothesis import strategies as st

# Dynamo export costs ~1 s per structure here (TorchScript ~20 ms), so with the dynamo exporter
# structures come from a small pool that still covers every attribute; TorchScript draws freely.
EXPENSIVE_EXPORTERS = frozenset({"dynamo"})


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "operator" or "model"
    covers: frozenset[str]  # ONNX op types this case exercises (checked against real exports)
    structures: Callable[[], st.SearchStrategy[Hashable]]
    build: Callable[[Hashable], torch.nn.Module]
    input_shapes: Callable[[Hashable], st.SearchStrategy[tuple[int, ...]]]
    example_shape: Callable[[Hashable], tuple[int, ...]]  # the shape used to export
    pool: Sequence[Hashable] = ()  # structures for expensive exporters
    dynamic: tuple[int, ...] = (0, 2, 3)  # symbolic input dims in the exported model
    scales: tuple[str, ...] = ("unit", "pixel")
    # True when the exporter folds or renames weights (BatchNorm into Conv, PReLU slopes), so
    # drawn weights cannot be swapped into one export: each weight draw is exported.
    bakes_weights: bool = False
    # Camera frames (W, H) a share of the examples draws (``conformance.draw.frames``): () for none.
    frames: tuple[tuple[int, int], ...] = ()
    describe: Callable[[Hashable], str] = field(default=repr)

    def __repr__(self) -> str:  # hypothesis prints it in every falsifying example: keep it short
        return f"Case({self.name})"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis' printer expands dataclasses
        printer.text(repr(self))

    def structure_strategy(self, exporter: str) -> st.SearchStrategy[Hashable]:
        if exporter in EXPENSIVE_EXPORTERS and self.pool:
            return st.sampled_from(list(self.pool))
        return self.structures()
