"""The shipped models: SuperResolutionNet (the PyTorch tutorial's network)."""

from conformance.models.superres import SuperResolutionNet

__all__ = ["SuperResolutionNet"]
