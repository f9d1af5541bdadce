"""The tutorial's cat-image pipeline on every backend under test, judged on the final 8-bit image.

The trained SuperResolutionNet(3) (``--weights``, default the shipped checkpoint) upscales
skimage's cat at its own size (451x300 -> 1353x900). Each ONNX runtime runs the TorchScript
opset-17 export with dynamic height and width (the exporter and opset are not what this case
tests; the operator and model cases cover them); a runtime that takes a torch program
(ExecuTorch, LiteRT) runs its own program, exported at the image's size. Its RGB output must agree with PyTorch eager's to within
one 8-bit level everywhere. The gallery (input, bicubic, every output, difference heat maps)
goes to ``<reports>/superres/`` for a person to look at.
"""

from __future__ import annotations

import pytest

from conformance.backends import BackendError
from conformance.draw.frames import FRAMES  # the frames the model cases draw too
from conformance.pipeline.runners import model_runner
from conformance.models.superres import SuperResolutionNet
from conformance.pipeline.superres import images_agree, save_gallery, superres, torch_runner
from conformance.pytest.plugin import activate

LEVELS = 1  # a backend may differ from PyTorch by one rounding step of the 8-bit output


def pytest_generate_tests(metafunc):
    """One case per backend under test, by name (readable ids: ``test_cat_pipeline[onnxruntime]``)."""
    if "backend_name" in metafunc.fixturenames:
        names = [b.name for b in activate(metafunc.config).backends]
        metafunc.parametrize("backend_name", names)


@pytest.fixture(scope="module")
def trained_model(superres_weights):
    model = SuperResolutionNet(upscale_factor=3)
    model.load_state_dict(superres_weights)
    return model.eval()


@pytest.fixture(scope="module")
def reference(trained_model):
    """PyTorch eager's run of the pipeline on the cat: the image every backend must match."""
    return superres(torch_runner(trained_model))


@pytest.fixture(scope="module")
def gallery(conformance_session, reference):
    """Backend name -> output image; written as one gallery when the module's cases are done."""
    outputs = {"pytorch": reference.output}
    yield outputs
    save_gallery(conformance_session.reports / "superres", reference, outputs)


@pytest.mark.parity
def test_cat_pipeline(backend_name, conformance_session, trained_model, reference, gallery):
    backend = conformance_session.backend(backend_name)
    try:
        result = superres(model_runner(backend, trained_model))
    except BackendError as exc:
        pytest.fail(str(exc), pytrace=False)
    gallery[backend_name] = result.output
    ok, summary = images_agree(result.output, reference.output, levels=LEVELS)
    assert ok, f"{backend_name} vs pytorch on the cat (1353x900 RGB, tolerance {LEVELS} level): {summary}"


#: The frame of a derandomized (CI) run: odd, 720p-sized (1080p costs ~2.2x its time).
CI_FRAME = (1279, 721)


def frame_size(seed: int, derandomized: bool) -> tuple[int, int]:
    """The frame size of this run: drawn from ``FRAMES`` by the run's seed, ``CI_FRAME`` when
    derandomized."""
    return CI_FRAME if derandomized else FRAMES[seed % len(FRAMES)]


@pytest.fixture(scope="module")
def frame(conformance_session):
    from hypothesis import settings

    return frame_size(conformance_session.harness.draw_seed(), settings.default.derandomize)


@pytest.fixture(scope="module")
def frame_reference(trained_model, frame):
    """PyTorch eager's run of the pipeline on the cat resized to a camera frame."""
    return superres(torch_runner(trained_model), size=frame)


@pytest.mark.parity
def test_cat_pipeline_frame(backend_name, conformance_session, trained_model, frame, frame_reference):
    """The pipeline on a production-size frame (up to 1920x1080 in, 5760x3240 out), one per run."""
    backend = conformance_session.backend(backend_name)
    try:
        result = superres(model_runner(backend, trained_model), size=frame)
    except BackendError as exc:
        pytest.fail(str(exc), pytrace=False)
    ok, summary = images_agree(result.output, frame_reference.output, levels=LEVELS)
    width, height = frame
    assert ok, (f"{backend_name} vs pytorch on the cat as a {width}x{height} frame "
                f"({3 * width}x{3 * height} RGB, tolerance {LEVELS} level): {summary}")
