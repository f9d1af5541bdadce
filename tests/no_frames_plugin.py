"""A pytest plugin for tests/test_frame_catches.py: the run draws no frames (``FRAME_ODDS = 0``),
as the model cases drew before frames were added."""

from conformance.draw import frames

frames.FRAME_ODDS = 0
