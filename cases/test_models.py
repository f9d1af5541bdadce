"""The full models at drawn sizes, and the tutorial's own input, on every target."""

import numpy as np
import pytest

from conformance.backends.base import ProgramBackend
from conformance.draw import profiles
from conformance.byom.register import registered_cases
from conformance.draw.model_cases import MODEL_SPECIAL_KINDS, MODELS, SRRESNET, SUPERRES, SRResNetStructure
from conformance.engine.harness import Example, Target
from conformance.pytest.casecheck import frame_sizes
from conformance.draw.strategies import Deployment, InputRecipe, WeightRecipe


@pytest.mark.parity
@pytest.mark.parametrize("case", MODELS + registered_cases(), ids=lambda c: c.name)
def test_model(case, target, parity):
    parity.drawn(case, target, max_examples=profiles.model_examples())


@pytest.mark.parity
@pytest.mark.parametrize("case", [c for c in MODELS if c.frames], ids=lambda c: c.name)
def test_model_frames(case, backend, parity, conformance_session):
    """The model on camera frames (640x480 to 1921x1079, ``conformance.draw.frames``), drawn like
    its other examples, on each runtime at the primary export: the exported graph is the same at
    every size, the runtime's kernels are what a frame reaches."""
    export = conformance_session.primary_export()
    if isinstance(backend, ProgramBackend):
        export = conformance_session.targets_of(backend)[0].export
    if export is None:
        pytest.skip("no selected (exporter, opset) is supported")
    target = Target(backend, export)
    sizes = frame_sizes(case, target)
    if isinstance(sizes, str):
        pytest.skip(sizes)
    parity.drawn(case, target, max_examples=profiles.frame_examples(), frames=sizes)


@pytest.mark.parity
@pytest.mark.parametrize("case", MODELS, ids=lambda c: c.name)
def test_model_special_values(case, target, parity):
    """The full models on inputs holding -0.0, subnormals and NaN (what arithmetic keeps exact:
    MODEL_SPECIAL_KINDS); NaN positions must match torch's."""
    parity.drawn(case, target, max_examples=profiles.model_examples(), special_kinds=MODEL_SPECIAL_KINDS)


@pytest.mark.parity
@pytest.mark.parametrize("shapes", ["dynamic", "static"])  # the tutorial itself exports static
@pytest.mark.parametrize("case", [SUPERRES], ids=lambda c: c.name)  # names the report's row
def test_superres_tutorial_input(case, shapes, target, parity, conformance_session):
    """SuperResolutionNet(3) on the tutorial's 1x1x224x224 at pixel scale, weights at its init.
    On a device (where it costs 30-50 s under emulation) it runs once: the static (mobile)
    export at the primary opset."""
    program = isinstance(target.backend, ProgramBackend)  # one program per shape: static already
    once = shapes == "static" and (program or target.export == conformance_session.primary_export())
    if target.place != "host" and not once:
        pytest.skip("full-size cases run once per device: the static export at the primary opset")
    example = Example(
        structure=3,
        weights=WeightRecipe("orthogonal-relu", 0.0, 0),
        inputs=InputRecipe((1, 1, 224, 224), "pixel", "integers", 0, 0),
        feed="initializers",
        deployment=Deployment(static=shapes == "static", runs=2),
    )
    outcome = parity.example(case, target, example)
    assert np.isfinite(outcome.expected[0]).all()


@pytest.mark.parity
@pytest.mark.parametrize("case", [SRRESNET], ids=lambda c: c.name)  # names the report's row
def test_srresnet16(case, backend, parity, conformance_session):
    """The paper's SRResNet (16 residual blocks, 64 channels) on every backend at one modest
    size, BatchNorm statistics folded into the export; one export (the primary one), since the
    dynamo exporter takes 10-50 s on this model here."""
    export = conformance_session.primary_export()
    if export is None:
        pytest.skip("no selected (exporter, opset) is supported")
    example = Example(
        structure=SRResNetStructure(16, 64),
        weights=WeightRecipe("orthogonal-relu", 0.0, 7),
        inputs=InputRecipe((1, 3, 24, 24), "unit", "uniform", 7, 0),
        feed="initializers",
    )
    outcome = parity.example(case, Target(backend, export), example)
    assert np.isfinite(outcome.expected[0]).all() and outcome.expected[0].shape == (1, 3, 96, 96)
