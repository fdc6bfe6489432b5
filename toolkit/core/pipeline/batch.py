"""What every frame pipeline takes and hands out: its config and its batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError
from toolkit.core.frames import DEFAULT_MAX_PIXELS, Frame

PIPELINES = ("auto", "dali", "fallback", "torch")


@dataclass(frozen=True)
class PipelineConfig:
    batch_size: int = 8
    size: tuple[int, int] | None = FRAME_SIZE  # (H, W) every frame is resized to; None: native size
    blur: str | None = None  # seed kernel applied after resize (k3/k7/k11), or None
    dtype: str = "float32"  # float32 or float16 (FP16 engines)
    prefetch: int = 2  # batches decoded ahead of the consumer
    workers: int = 2  # decoding threads
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # larger frames are unreadable frames (None: no limit)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DtkError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise DtkError(f"--max-pixels must be at least 1, got {self.max_pixels}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise DtkError(f"pipeline size must be (H, W) of positive ints, got {self.size}")
        if self.dtype not in ("float32", "float16"):
            raise DtkError(f"pipeline dtype must be float32 or float16, got {self.dtype}")


@dataclass
class FrameBatch:
    """A batch in frame-list order.

    images: N x 3 x H x W, RGB in [0, 1], `config.dtype`; a NumPy array on CPU, a torch CUDA
    tensor from the DALI GPU pipeline. At native size (`config.size` None) a list of each frame's
    H x W x 3 uint8 NumPy array instead (sizes differ; engines.tiled cuts them into tiles).
    sizes: each frame's (H, W) before any resize.
    failed: (path, reason) of frames of this batch's span that could not be decoded.
    multi_frame: (path, images in the file) of its frames whose file holds several images (an
    animated PNG/WebP, a multi-page TIFF): the first was read, the caller reports the rest.
    """

    frames: list[Frame]
    images: Any
    sizes: list[tuple[int, int]]
    failed: list[tuple[str, str]] = field(default_factory=list)
    multi_frame: list[tuple[str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def native(self) -> bool:
        """True when `images` is a list of uint8 frames at their own sizes."""
        return isinstance(self.images, list)
