"""dtk: batch inference and benchmarking for image deblurring.

Importing this package never imports a GPU library (tensorrt, DALI, CUDA); those
are loaded lazily by the modules that need them (see `toolkit.core.lazy`).
"""

__version__ = "0.1.0"

FRAME_HEIGHT = 256
FRAME_WIDTH = 448
FRAME_SIZE = (FRAME_HEIGHT, FRAME_WIDTH)  # (H, W), as in the seed report
