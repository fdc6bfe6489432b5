"""dtk: batch inference and benchmarking for image deblurring; `from toolkit import Deblurrer` is
the Python API (toolkit.app.api, imported on first use).

Importing this package never imports a GPU library (tensorrt, DALI, CUDA); those
are loaded lazily by the modules that need them (see `toolkit.core.lazy`).
"""

from toolkit.core.constants import FRAME_HEIGHT, FRAME_SIZE, FRAME_WIDTH, __version__

__all__ = ["FRAME_HEIGHT", "FRAME_SIZE", "FRAME_WIDTH", "Deblurrer", "__version__", "bench", "evaluate"]
_API = {"Deblurrer": "Deblurrer", "evaluate": "evaluate_folder", "bench": "bench"}  # -> toolkit.app.api


def __getattr__(name: str):
    """`toolkit.Deblurrer`, `toolkit.evaluate` (dtk eval) and `toolkit.bench` (dtk bench): the Python
    API (toolkit.app.api), imported on first access: importing dtk (and its constants, which every
    layer reads) stays free of the application and of torch."""
    if name in _API:
        from toolkit.app import api  # the top layer: only when asked for

        return getattr(api, _API[name])
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
