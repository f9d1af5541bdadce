"""Registers the seeded exporter fault (``conformance.faults.misexported_relu``) as a model case,
for ``--register tests/misexported_module.py``."""

import torch

import conformance
from conformance import faults

conformance.register_module("misexported_relu", faults.misexported_relu, torch.zeros(1, 2, 8, 8),
                            input_shapes=[(1, 2, 8, 8), (2, 2, 6, 9)])
