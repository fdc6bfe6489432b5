"""The Runner every backend implements (Polygraphy's `backend/base/runner.py` idea: load once in
the constructor, infer many, close; a context manager; capabilities declared, not probed).

Layout contract: `infer` takes an N x 3 x H x W batch (NCHW), RGB, values in [0, 1] and returns
the same shape and layout as float32 (not clipped). A runner that `accepts_device_tensors`
takes torch CUDA tensors (DALI / GPU-blur output) without a host copy and returns one; every
runner takes NumPy arrays and returns NumPy for them.

Frame decisions: a runner that `takes_evidence` (a blind model whose head pools evidence over the
image, toolkit.core.models.head) also offers `evidence(batch)` (N x width, float32 NumPy) and
takes `infer(batch, evidence=E)`, E N x width with rows < 0 meaning "decide from this image":
tiles of one frame are then decided together (engines.tiled). A runner that `takes_known_blur`
also takes `infer(batch, known=K)`, K N x 1 float32 (toolkit.core.evidence.KNOWN_INPUT): the
decision's class the user knows, rows < 0 deciding as usual.

Input sizes: `input_sizes()` says which H x W a runner takes: a few fixed ones (a TensorRT
engine's profiles, a graph exported at one size), or `ANY_SIZE` (any multiple of 8: ONNX Runtime,
OpenVINO and torch on a fully convolutional graph exported with dynamic H and W); engines.tiled
cuts frames into the fewest tiles it takes (toolkit.core.tiles.choose_tile).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from toolkit.core.constants import FRAME_SIZE
from toolkit.core.convert import to_host
from toolkit.core.evidence import known_rows


class Runner(ABC):
    """A loaded model that deblurs batches."""

    name: ClassVar[str]  # backend name: "onnxruntime", "openvino", "torch", "tensorrt"
    accepts_device_tensors: bool = False  # takes torch CUDA tensors in place (set per instance)
    reports_phases: bool = False  # `phases_ms` holds the last call's H2D / compute / D2H times
    warnings: tuple[str, ...] = ()  # what the user should know about this runner (printed once)
    takes_evidence: bool = False  # `evidence()` and `infer(..., evidence=)` work (set per instance)
    takes_known_blur: bool = False  # `infer(..., known=)` works (set per instance)
    decides_whole_frame: bool = False  # a frame in one tile decides on its own evidence (set per instance)

    @abstractmethod
    def infer(self, batch: Any, evidence: np.ndarray | None = None, known: np.ndarray | None = None) -> Any:
        """N x 3 x H x W in [0, 1] -> N x 3 x H x W float32 (NumPy for NumPy input); `evidence`
        (N x width, rows < 0: own) only where `takes_evidence`; `known` (N x 1) only where
        `takes_known_blur`."""

    def evidence(self, batch: Any) -> np.ndarray:
        """N x width float32: what the model's head pools from each image (`takes_evidence` only)."""
        raise NotImplementedError(f"{type(self).__name__} has no frame evidence")

    def input_sizes(self) -> tuple[tuple[int, int], ...]:
        """The (H, W) sizes this runner takes: a few fixed ones, or toolkit.core.tiles.ANY_SIZE
        (any multiples of 8). Default: the network's 256 x 448 only."""
        return (FRAME_SIZE,)

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """JSON-ready facts: backend, device, precision, model path, providers, ..."""

    @abstractmethod
    def close(self) -> None:
        """Release sessions, buffers and streams (idempotent)."""

    @property
    def phases_ms(self) -> dict[str, float] | None:
        """CUDA-event times of the last NumPy call (ms), where `reports_phases`; else None."""
        return None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def infer_all(runner: Runner, images: np.ndarray, step: int = 4, known_blur: str | None = None) -> np.ndarray:
    """The runner's float32 host output for every image of an N x 3 x H x W array, `step` per call
    (`known_blur`: every image told that blur, where the runner `takes_known_blur`)."""
    def call(part: np.ndarray) -> np.ndarray:
        told = {"known": known_rows(known_blur, len(part))} if known_blur is not None else {}
        return np.asarray(to_host(runner.infer(part, **told)), dtype=np.float32)

    return np.concatenate([call(images[i:i + step]) for i in range(0, len(images), step)])
