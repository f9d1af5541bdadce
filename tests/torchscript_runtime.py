"""A real runtime that takes a torch program: the TorchScript interpreter, as a plug-in of the
program API (``--backend=tests.torchscript_runtime:TorchScriptRuntime``). ``SlopedRuntime`` is
the same with a seeded fault (its outputs scaled by 1.01); ``NarrowConvOff`` has one in a single
kind of layer (a convolution with 32 output channels, SuperResolutionNet's conv3, adds 0.05), the
fault the program localization tests plant."""

import copy
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


class _Plus(torch.nn.Module):
    def __init__(self, inner, delta):
        super().__init__()
        self.inner, self.delta = inner, delta

    def forward(self, x):
        return self.inner(x) + self.delta


class NarrowConvOff(TorchScriptRuntime):
    """Right everywhere but in convolutions with 32 output channels (a kernel path for that
    width, say), whose outputs are off by 0.05: in the whole model and in the layer alone."""

    def export(self, module, example_args, dynamic):
        return super().export(_fault(copy.deepcopy(module)), example_args, dynamic)


def _fault(module):
    if isinstance(module, torch.nn.Conv2d):
        return _Plus(module, 0.05) if module.out_channels == 32 else module
    for name, child in list(module.named_children()):
        setattr(module, name, _fault(child))
    return module


class _Session:
    def __init__(self, program, scale):
        self.program, self.scale = program, scale

    def run(self, inputs):
        with torch.no_grad():
            out = self.program(*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs))
        return [(out * self.scale).numpy()]
