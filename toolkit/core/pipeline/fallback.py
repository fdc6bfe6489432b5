"""The no-DALI pipeline: a thread pool decodes (Pillow), resizes (unless native) and blurs (OpenCV
reference, at the size the frame is deblurred at)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from toolkit.core.convert import to_nchw
from toolkit.core.frames import Frame, FrameReadError, read_frame_counted, resize_frame
from toolkit.core.kernels import blur, get_kernel
from toolkit.core.pipeline.batch import FrameBatch, PipelineConfig


def load_frame(frame: Frame, config: PipelineConfig) -> tuple[np.ndarray, tuple[int, int], int]:
    """Decode -> resize (not at native size) -> blur: HxWx3 uint8, the frame's own size and how
    many images its file holds (read_frame_counted)."""
    image, count = read_frame_counted(frame.path, config.max_pixels)
    size = image.shape[:2]
    if config.size is not None:
        image = resize_frame(image, config.size)
    if config.blur:
        image = blur(image, get_kernel(config.blur))
    return image, (int(size[0]), int(size[1])), count


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
            done, images, sizes, failed, multi = [], [], [], [], []
            while pending and len(done) + len(failed) < config.batch_size:  # one span per batch
                frame, fut = pending.popleft()
                try:
                    image, size, count = fut.result()
                except FrameReadError as exc:
                    failed.append((exc.path, exc.reason))
                else:
                    done.append(frame)
                    images.append(image)
                    sizes.append(size)
                    if count > 1:
                        multi.append((str(frame.path), count))
                fill()
            if done or failed:
                yield FrameBatch(done, _batch_images(images, config), sizes, failed, multi)


def _batch_images(images: list[np.ndarray], config: PipelineConfig):
    """A batch's images: N x 3 x H x W floats, or at native size the uint8 frames themselves."""
    if config.size is None:
        return images
    return to_nchw(images, config.dtype) if images else np.zeros((0, 3, *config.size), dtype=config.dtype)
