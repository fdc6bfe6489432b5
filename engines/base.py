"""The Runner interface every backend implements (Polygraphy-style: load once, infer many).

Layout contract: `infer` takes an N x 3 x H x W batch (NCHW), RGB, values in [0, 1]
(float32, or float16 where the runner says so) and returns the same shape and layout.
A runner may accept torch CUDA tensors (DALI/GPU-blur output) without a host copy;
CPU runners take NumPy arrays.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Runner(Protocol):
    """A loaded model that deblurs batches."""

    name: str  # backend name: "onnxruntime", "torch", "tensorrt"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """N x 3 x H x W in [0, 1] -> N x 3 x H x W (not clipped)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts: backend, device, precision, model path, providers, ..."""
        ...

    def close(self) -> None:
        """Release sessions, buffers and streams."""
        ...
