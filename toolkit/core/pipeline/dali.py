"""The DALI pipeline: encoded frame files -> decode -> resize to 256x448 -> seed blur -> NCHW batches
(at native size: decode -> seed blur at the frame's size -> uint8 frames, tiled by engines.tiled).

One `@pipeline_def` function (`frame_pipeline`) serves both devices: `device="gpu"` decodes with
`"mixed"` (nvImageCodec/nvJPEG) and runs every operator on the GPU; `device="cpu"` runs the same
graph with CPU operators and `device_id=None` (no CUDA needed).

Input: an `external_source` fed with the encoded bytes of one *span* of `batch_size` consecutive
frames per iteration, plus each sample's index in the frame list. Chosen over `readers.file` because
(1) we decide the batches, so the last span is simply smaller (no padding to trim, nothing dropped or
repeated), (2) each output carries its frame index, so names are known from the pipeline itself,
(3) files are read and checked in Python first, so an unreadable file never reaches DALI and a
decoder error is pinned to one span, retried file by file and reported with its path.

Inputs DALI would decode differently from `toolkit.core.frames.read_frame` (grayscale, palette, alpha,
16-bit, CMYK, non-PNG/JPEG formats) are decoded by `read_frame` (the documented conversions) and fed
as lossless 8-bit RGB PNG; plain 8-bit RGB PNG and RGB JPEG go to DALI's decoder as they are (they
decoded bit-exactly like Pillow, EXIF orientation ignored as Pillow does).

Resize: `fn.resize` (linear, antialiased) is Pillow's BILINEAR filter inside the image, but at the
borders DALI clamps where Pillow renormalises the truncated filter: up to 10 LSB apart on the first
and last rows/columns (512x512 -> 256x448). `frame_pipeline` resizes the image zero-padded together
with a constant alpha channel and divides by the resized alpha, which is Pillow's renormalisation:
within 1 LSB everywhere. Frames already at the target size skip the resize (bit-exact).

GPU hand-off: `nvidia.dali.plugin.pytorch.feed_ndarray` copies each batch device-to-device into a
torch CUDA tensor on the consumer's current stream (`pipe.run(stream)` makes that stream wait for
DALI's work, and the copy is enqueued on it, non-blocking). No host copy. Not zero-copy DLPack:
DALI recycles its output buffers on the next iterations (prefetch queue), so a DLPack view handed
to an engine could be overwritten while the engine still reads it; the copy (~1.4 MB per fp32
frame, device bandwidth) makes the torch tensor the consumer's own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.errors import DtkError
from toolkit.core.frames import (
    DEFAULT_MAX_PIXELS,
    Frame,
    FrameReadError,
    check_pixels,
    encode_png,
    exif_orientation,
    image_count,
    read_frame,
    read_frame_bytes,
)
from toolkit.core.kernels import get_kernel
from toolkit.core.lazy import optional_import
from toolkit.core.pipeline.batch import FrameBatch, PipelineConfig

DEVICES = ("cpu", "gpu")
_PAD = 16  # zero border (pixels) around the image for the border-renormalised resize; >= filter radius


@dataclass
class _Span:
    """One batch's worth of consecutive frames, read from disk: what DALI is fed for it."""

    frames: list[Frame]
    indices: list[int]  # positions in the frame list of the frames fed to DALI
    encoded: list[np.ndarray]  # their encoded bytes (uint8)
    failed: list[tuple[str, str]] = field(default_factory=list)
    multi_frame: list[tuple[str, int]] = field(default_factory=list)  # files of several images


def encoded_frame(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes DALI can decode exactly as `read_frame` would; FrameReadError when unreadable (see
    `encoded_frame_counted`)."""
    return encoded_frame_counted(path, max_pixels)[0]


def encoded_frame_counted(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int]:
    """Bytes DALI can decode exactly as `read_frame` would; FrameReadError when unreadable.

    8-bit RGB PNG and RGB JPEG are passed as they are; anything else (gray, palette, alpha,
    16-bit, other formats, an EXIF orientation other than 1, a file of several images) is decoded
    by `read_frame` and re-encoded as 8-bit RGB PNG. Returns the bytes and how many images the file
    holds (`image_count`: more than 1 for an animated PNG/WebP or a multi-page TIFF; the first is
    decoded, the caller reports the rest).
    """
    import io

    from PIL import Image

    data = read_frame_bytes(path)  # FrameReadError: missing, unreadable, no regular file (never blocks)
    try:
        with Image.open(io.BytesIO(data)) as im:  # header only
            fmt, mode, size, oriented = im.format, im.mode, im.size, exif_orientation(im) != 1
            count = image_count(im)
    except Exception:  # noqa: BLE001 - read_frame below gives the documented reason
        fmt, mode, size, oriented, count = None, None, (0, 0), False, 1
    check_pixels(path, size, max_pixels)  # before DALI decodes anything
    plain_png = fmt == "PNG" and mode == "RGB" and len(data) > 25 and data[24] == 8  # IHDR bit depth
    # an EXIF-rotated photo goes through read_frame, which applies the orientation (one rule for both
    # pipelines, whatever DALI's decoder version does with the tag)
    if count == 1 and not oriented and (plain_png or (fmt == "JPEG" and mode == "RGB")):
        return np.frombuffer(data, dtype=np.uint8), count
    return np.frombuffer(encode_png(read_frame(path, max_pixels), compression=1), dtype=np.uint8), count


def read_span(frames: Sequence[Frame], start: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> _Span:
    """Read the files of `frames` (list positions start, start+1, ...); unreadable ones go to failed."""
    span = _Span(list(frames), [], [])
    for i, frame in enumerate(frames):
        try:
            encoded, count = encoded_frame_counted(frame.path, max_pixels)
        except FrameReadError as exc:
            span.failed.append((exc.path, exc.reason))
            continue
        span.encoded.append(encoded)
        span.indices.append(start + i)
        if count > 1:
            span.multi_frame.append((str(frame.path), count))
    return span


def frame_pipeline(source: Callable, device: str, size: tuple[int, int] | None, blur: str | None,
                   dtype: str):
    """The pipeline graph (decorated by `build_pipeline`): read -> decode -> resize -> blur -> NCHW.

    Outputs: images N x 3 x H x W in [0, 1] (`dtype`), original (H, W, C) per frame, frame index.
    `size` None (native): no resize, the blur at the frame's own size, images H x W x 3 uint8.
    """
    from nvidia.dali import fn, types

    encoded, index = fn.external_source(source=source, num_outputs=2, batch=True,
                                        dtype=[types.UINT8, types.INT64])
    shape = fn.peek_image_shape(encoded)  # H, W, C before any resize (CPU)
    image = fn.decoders.image(encoded, device="mixed" if device == "gpu" else "cpu",
                              output_type=types.RGB, adjust_orientation=False)
    height, width = shape[0], shape[1]
    if size is None or (height == size[0]) & (width == size[1]):
        resized = image
    else:
        # Pillow renormalises the filter where it leaves the image; DALI clamps. Resize the image
        # zero-padded with a 255 alpha channel (the ROI is the real image), divide by the alpha.
        alpha = fn.cast(fn.cast(image[:, :, 0:1] >= 0, dtype=types.UINT8) * 255, dtype=types.UINT8)
        end = fn.cast(fn.stack(height, width), dtype=types.INT32) + _PAD
        padded = fn.slice(fn.cat(image, alpha, axis=2), start=[-_PAD, -_PAD], end=end, axes=[0, 1],
                          out_of_bounds_policy="pad", fill_values=0)
        scaled = fn.resize(padded, size=list(size), interp_type=types.INTERP_LINEAR, antialias=True,
                           dtype=types.FLOAT, roi_start=[_PAD, _PAD], roi_end=fn.cast(end, dtype=types.FLOAT))
        resized = fn.cast(scaled[:, :, 0:3] * 255.0 / scaled[:, :, 3:4], dtype=types.UINT8)
    if blur:
        kernel = get_kernel(blur)
        resized = fn.gaussian_blur(resized, window_size=kernel.size, sigma=kernel.sigma)  # reflect-101
    if size is None:
        return resized, shape, index
    images = fn.crop_mirror_normalize(resized, dtype=types.FLOAT16 if dtype == "float16" else types.FLOAT,
                                      output_layout="CHW", mean=0.0, std=255.0)
    return images, shape, index


def build_pipeline(source: Callable, config: PipelineConfig, device: str, batch_size: int, prefetch: int):
    """Instantiate and build `frame_pipeline` for `device` (CPU: device_id=None)."""
    from nvidia.dali import pipeline_def

    device_id = None
    if device == "gpu":
        import torch

        device_id = torch.cuda.current_device()
    pipe = pipeline_def(frame_pipeline, enable_conditionals=True)(
        source, device, tuple(config.size) if config.size else None, config.blur, config.dtype,
        batch_size=batch_size, num_threads=max(1, config.workers), device_id=device_id,
        prefetch_queue_depth=max(1, prefetch), exec_dynamic=True,
    )
    pipe.build()
    return pipe


def dali_batches(frames: Sequence[Frame], config: PipelineConfig,
                 device: str = "cpu") -> Iterator[FrameBatch]:
    """Batches of `frames` in order: spans of `batch_size` frames, minus those that failed (reported)."""
    if device not in DEVICES:
        raise DtkError(f"unknown pipeline device {device!r}: choose cpu or gpu")
    if not frames:
        raise DtkError("no frames to read: the frame list is empty (is the folder empty?)")
    optional_import("nvidia.dali")
    if device == "gpu":
        torch = optional_import("torch")
        if not torch.cuda.is_available():
            raise DtkError("the DALI GPU pipeline needs a CUDA GPU; none is visible (use device='cpu')")
    if config.blur:
        get_kernel(config.blur)
    return _iterate(list(frames), config, device)


def _iterate(frames: list[Frame], config: PipelineConfig, device: str) -> Iterator[FrameBatch]:
    bs = config.batch_size
    starts = iter(range(0, len(frames), bs))
    inflight: deque[_Span] = deque()  # read and handed to DALI (or empty), not yet yielded

    def spans(replay: list[_Span]) -> Iterator[_Span]:
        yield from replay
        for start in starts:
            yield read_span(frames[start:start + bs], start, config.max_pixels)

    def make_source(feed: Iterator[_Span]) -> Callable:
        def source():
            for span in feed:  # StopIteration at the end ends the pipeline's epoch
                inflight.append(span)
                if span.encoded:
                    return span.encoded, [np.array([i], dtype=np.int64) for i in span.indices]
            raise StopIteration

        return source

    stream = _consumer_stream(device)
    pipe = build_pipeline(make_source(spans([])), config, device, bs, config.prefetch)
    while True:
        try:
            outputs = pipe.run(stream) if stream is not None else pipe.run()
        except StopIteration:
            break
        except RuntimeError:  # a decoder error: the pipeline is dead, retry the span file by file
            while inflight and not inflight[0].encoded:
                yield _empty_batch(inflight.popleft(), config)
            if not inflight:
                raise
            yield _retry_each(inflight.popleft(), frames, config, device, stream)
            replay = list(inflight)
            inflight.clear()
            del pipe
            pipe = build_pipeline(make_source(spans(replay)), config, device, bs, config.prefetch)
            continue
        while inflight and not inflight[0].encoded:
            yield _empty_batch(inflight.popleft(), config)
        span = inflight.popleft()
        yield _to_batch(span, outputs, frames, device, stream)
    while inflight:
        yield _empty_batch(inflight.popleft(), config)


def _to_batch(span: _Span, outputs, frames: list[Frame], device: str, stream) -> FrameBatch:
    images, shapes, index = outputs
    order = [int(np.asarray(index[i]).reshape(-1)[0]) for i in range(len(index))]
    if order != span.indices:  # DALI keeps batch order; this guards the frame-name bookkeeping
        raise RuntimeError(f"DALI returned frames {order}, expected {span.indices}")
    sizes = [tuple(int(v) for v in np.asarray(shapes[i])[:2]) for i in range(len(shapes))]
    return FrameBatch([frames[i] for i in order], _to_array(images, device, stream), sizes, list(span.failed),
                      list(span.multi_frame))


def _to_array(images, device: str, stream) -> Any:
    """DALI TensorList -> NumPy (CPU) or a torch CUDA tensor owned by the consumer (GPU, no host copy);
    native-size uint8 frames -> a list of host H x W x 3 arrays (engines.tiled tiles them there)."""
    if images.dtype == _dali_uint8():
        host = images.as_cpu() if device == "gpu" else images
        return [np.array(host[i]) for i in range(len(host))]
    if device == "cpu":
        return np.array(images.as_tensor())
    import torch
    from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

    out = torch.empty(images.as_tensor().shape(), dtype=to_torch_type[images.dtype], device="cuda")
    return feed_ndarray(images, out, cuda_stream=stream)  # enqueued on the consumer's stream


def _retry_each(span: _Span, frames: list[Frame], config: PipelineConfig, device: str, stream) -> FrameBatch:
    """Decode a span whose batch failed one frame at a time; frames that fail again are reported."""
    parts, sizes, kept, failed = [], [], [], list(span.failed)
    for i, encoded in zip(span.indices, span.encoded, strict=True):
        try:
            pipe = build_pipeline(_once(encoded, i), config, device, 1, 1)
            images, shapes, _ = pipe.run(stream) if stream is not None else pipe.run()
        except RuntimeError as exc:
            failed.append((str(frames[i].path), _dali_reason(exc)))
            continue
        parts.append(_to_array(images, device, stream))
        sizes.append(tuple(int(v) for v in np.asarray(shapes[0])[:2]))
        kept.append(frames[i])
        del pipe
    failed.sort(key=lambda pr: [str(f.path) for f in span.frames].index(pr[0]))
    kept_paths = {str(f.path) for f in kept}
    multi = [(p, n) for p, n in span.multi_frame if p in kept_paths]
    return FrameBatch(kept, _concat(parts, config, device), sizes, failed, multi)


def _once(encoded: np.ndarray, index: int) -> Callable:
    """A source that yields one single-frame batch, then ends."""
    batches = iter([([encoded], [np.array([index], dtype=np.int64)])])
    return lambda: next(batches)


def _dali_uint8():
    from nvidia.dali import types

    return types.UINT8


def _empty_batch(span: _Span, config: PipelineConfig) -> FrameBatch:
    if config.size is None:
        return FrameBatch([], [], [], list(span.failed))
    return FrameBatch([], np.zeros((0, 3, *config.size), dtype=config.dtype), [], list(span.failed))


def _concat(parts: list, config: PipelineConfig, device: str) -> Any:
    if config.size is None:
        return [im for part in parts for im in part]
    if device == "gpu":
        import torch

        dtype = torch.float16 if config.dtype == "float16" else torch.float32
        return torch.cat(parts) if parts else torch.zeros((0, 3, *config.size), dtype=dtype, device="cuda")
    return np.concatenate(parts) if parts else np.zeros((0, 3, *config.size), dtype=config.dtype)


def _consumer_stream(device: str):
    if device != "gpu":
        return None
    import torch

    return torch.cuda.current_stream()


def _dali_reason(exc: BaseException) -> str:
    """The operator's message from a DALI pipeline error (its last informative line)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    lines = [ln for ln in lines if "no longer valid" not in ln and not ln.startswith("File ")]
    detail = lines[-1] if lines else type(exc).__name__
    return f"corrupt or truncated (DALI decoder: {detail})"
