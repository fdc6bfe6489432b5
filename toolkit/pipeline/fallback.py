"""The no-DALI pipeline: a thread pool decodes (Pillow), resizes and blurs (OpenCV reference)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from toolkit.frames import Frame, FrameReadError, read_frame, resize_frame
from toolkit.kernels import blur, get_kernel
from toolkit.pipeline import FrameBatch, PipelineConfig


def load_frame(frame: Frame, config: PipelineConfig) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode -> resize -> blur: HxWx3 uint8 and the frame's size before resizing."""
    image = read_frame(frame.path, config.max_pixels)
    size = image.shape[:2]
    image = resize_frame(image, config.size)
    if config.blur:
        image = blur(image, get_kernel(config.blur))
    return image, (int(size[0]), int(size[1]))


def to_nchw(images: Sequence[np.ndarray], dtype: str = "float32") -> np.ndarray:
    """Stack HxWx3 uint8 images into N x 3 x H x W in [0, 1]."""
    batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) * (1.0 / 255.0)
    return np.ascontiguousarray(batch.astype(dtype, copy=False))


def to_host(batch) -> np.ndarray:
    """A runner's output as a NumPy array (torch tensors, CUDA ones too, copied to the host as float32)."""
    if isinstance(batch, np.ndarray):
        return batch
    return batch.detach().float().cpu().numpy()


def to_uint8_hwc(chw: np.ndarray) -> np.ndarray:
    """3 x H x W float on the 0..1 scale -> H x W x 3 uint8 (clipped, rounded to nearest)."""
    x = np.clip(np.asarray(chw, dtype=np.float32), 0.0, 1.0) * 255.0
    return np.ascontiguousarray(np.rint(x).astype(np.uint8).transpose(1, 2, 0))


def from_nchw(batch) -> list[np.ndarray]:
    """N x 3 x H x W in [0, 1] (NumPy or torch) -> list of HxWx3 uint8 (clipped, rounded)."""
    return [to_uint8_hwc(chw) for chw in to_host(batch)]


def fallback_batches(frames: Sequence[Frame], config: PipelineConfig) -> Iterator[FrameBatch]:
    """Yield one batch per `batch_size` consecutive frames (minus failed ones), `prefetch` batches ahead."""
    window = max(1, config.prefetch) * config.batch_size
    with ThreadPoolExecutor(max_workers=max(1, config.workers),
                            thread_name_prefix="dtk-decode") as pool:
        pending: deque[tuple[Frame, Future]] = deque()
        it = iter(frames)

        def fill() -> None:
            while len(pending) < window:
                frame = next(it, None)
                if frame is None:
                    return
                pending.append((frame, pool.submit(load_frame, frame, config)))

        fill()
        while pending:
            done, images, sizes, failed = [], [], [], []
            while pending and len(done) + len(failed) < config.batch_size:  # one span per batch
                frame, fut = pending.popleft()
                try:
                    image, size = fut.result()
                except FrameReadError as exc:
                    failed.append((exc.path, exc.reason))
                else:
                    done.append(frame)
                    images.append(image)
                    sizes.append(size)
                fill()
            if done or failed:
                yield FrameBatch(done, to_nchw(images, config.dtype) if images else
                                 np.zeros((0, 3, *config.size), dtype=config.dtype), sizes, failed)
