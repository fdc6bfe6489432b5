"""dtk's version and the seed's frame size: read by every layer, so they live on the ground floor
(the package root re-exports them; importing them never reaches the Python API)."""

__version__ = "0.1.0"

FRAME_HEIGHT = 256
FRAME_WIDTH = 448
FRAME_SIZE = (FRAME_HEIGHT, FRAME_WIDTH)  # (H, W), as in the seed report
