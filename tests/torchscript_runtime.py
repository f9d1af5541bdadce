"""A real runtime that takes a torch program: the TorchScript interpreter, as a plug-in of the
program API (``--backend=tests.torchscript_runtime:TorchScriptRuntime``). ``SlopedRuntime`` is
the same with a seeded fault (its outputs scaled by 1.01)."""

import io

import numpy as np
import torch


class TorchScriptRuntime:
    format = "torchscript-program"
    per_shape = False

    def export(self, module, example_args, dynamic):
        traced = torch.jit.trace(module.eval(), example_args, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        return buffer.getvalue()

    def load(self, artifact):
        return _Session(torch.jit.load(io.BytesIO(artifact)), self.scale)

    scale = 1.0


class SlopedRuntime(TorchScriptRuntime):
    scale = 1.01


class _Session:
    def __init__(self, program, scale):
        self.program, self.scale = program, scale

    def run(self, inputs):
        with torch.no_grad():
            out = self.program(*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs))
        return [(out * self.scale).numpy()]
