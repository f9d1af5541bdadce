"""The full models as conformance cases."""

from __future__ import annotations

from hypothesis import strategies as st

from typing import NamedTuple

from conformance.models.srresnet import SRResNet
from conformance.models.superres import SuperResolutionNet
from conformance.draw.frames import FRAMES
from conformance.draw.spec import Case
from conformance.draw.strategies import ARITHMETIC_SAFE, shapes

SUPERRES_MAX_ELEMENTS = 2 * 1 * 72 * 72
SRRESNET_MAX_ELEMENTS = 2 * 3 * 24 * 24
#: Special values the models' special-values cases may hold: convolutions accumulate, so no
#: large magnitudes (``strategies.ARITHMETIC_SAFE``).
MODEL_SPECIAL_KINDS = ARITHMETIC_SAFE

SUPERRES = Case(
    name="superres",
    kind="model",
    covers=frozenset(),
    structures=lambda: st.sampled_from([2, 3, 4]),  # the upscale factor r
    build=lambda r: SuperResolutionNet(r),
    # Each example runs four 64-channel convolutions: keep drawn sizes modest (the tutorial's
    # 224x224 runs as its own case). Batches of 8 and 16 are drawn too, under the same cap on
    # elements as the largest ordinary draw (2 x 72 x 72), so no example costs more than before.
    input_shapes=lambda r: shapes(channels=1, max_side=72, max_batch=2, max_elements=SUPERRES_MAX_ELEMENTS),
    example_shape=lambda r: (2, 1, 13, 17),
    pool=(3, 2),
    # Camera frames (``test_model_frames``), up to 1921x1079 in and 7684x4316 out (x4): ~2.5 GB
    # and 1-4 s per run here on ONNX Runtime or torch.
    frames=FRAMES,
    describe=lambda r: f"SuperResolutionNet(upscale_factor={r})",
)



class SRResNetStructure(NamedTuple):
    n_blocks: int
    channels: int


SRRESNET = Case(
    name="srresnet",
    kind="model",
    covers=frozenset(),
    structures=lambda: st.builds(SRResNetStructure, st.integers(0, 2), st.sampled_from([4, 8, 16])),
    build=lambda s: SRResNet(s.n_blocks, s.channels),
    # x4 upscaling with 9x9 convs: small inputs already make sizeable outputs.
    input_shapes=lambda s: shapes(channels=3, max_side=24, max_batch=2, max_elements=SRRESNET_MAX_ELEMENTS),
    example_shape=lambda s: (2, 3, 11, 13),
    pool=(SRResNetStructure(2, 8),),
    # SRResNet takes normalized images; BatchNorm statistics and PReLU slopes are drawn too.
    scales=("unit",),
    bakes_weights=True,  # BatchNorm folds into the preceding Conv
    # No frames, by measurement (2 blocks of 16 channels, ONNX Runtime / torch per run): 2 / 4-7 s
    # at 641x479, 13-20 / 25 s at 1280x720; an example runs twice on each: more than the whole
    # default run's margin. Its float64 oracle at 4x a VGA frame would unfold ~50 GB (estimated:
    # the last 9x9 conv's 16x81 rows x 2560x1916 columns in float64).
    describe=lambda s: f"SRResNet(n_blocks={s.n_blocks}, channels={s.channels})",
)

MODELS = (SUPERRES, SRRESNET)
