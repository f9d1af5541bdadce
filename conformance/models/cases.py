"""The full models as conformance cases."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance.models.superres import SuperResolutionNet
from conformance.spec import Case
from conformance.strategies import shapes

SUPERRES = Case(
    name="superres",
    kind="model",
    covers=frozenset(),
    structures=lambda: st.sampled_from([2, 3, 4]),  # the upscale factor r
    build=lambda r: SuperResolutionNet(r),
    # Each example runs four 64-channel convolutions: keep drawn sizes modest (the tutorial's
    # 224x224 runs as its own case).
    input_shapes=lambda r: shapes(channels=1, max_side=72, max_batch=2),
    example_shape=lambda r: (2, 1, 13, 17),
    pool=(2, 3, 4),
    describe=lambda r: f"SuperResolutionNet(upscale_factor={r})",
)

MODELS = (SUPERRES,)
