"""Frame pipelines: frame files -> (decode, resize to 256x448, optional seed blur) -> NCHW batches.

Three implementations share one interface (`open_pipeline`): DALI (`dali.py`, GPU or CPU
operators), a no-DALI fallback (`fallback.py`: threads + Pillow + the reference blur) and, on a
GPU without DALI, that fallback with the blur on the GPU (`torch_gpu.py`).
Both hand out `FrameBatch`es in the order of the frame list, one per span of `batch_size`
consecutive frames: the last one may be smaller (never padded, never dropped), and frames that
cannot be decoded are left out of their span's batch and reported in its `failed`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame
from toolkit.core.pipeline.batch import PIPELINES, FrameBatch, PipelineConfig
from toolkit.core.pipeline.dali import dali_batches  # loads DALI itself, only when it runs
from toolkit.core.pipeline.fallback import fallback_batches

__all__ = ["PIPELINES", "FrameBatch", "PipelineConfig", "open_pipeline"]


def open_pipeline(frames: Sequence[Frame], config: PipelineConfig,
                  kind: str = "auto", device: str = "cpu") -> Iterator[FrameBatch]:
    """Batches of `frames`. kind 'auto' on a GPU: DALI when installed, else the torch GPU blur
    when torch sees CUDA; on a CPU (or a GPU with neither): the fallback."""
    if kind not in PIPELINES:
        raise DtkError(f"unknown pipeline {kind!r}: choose one of {', '.join(PIPELINES)}")
    if not frames:
        raise DtkError("no frames to read: the frame list is empty (is the folder empty?)")
    if kind == "auto":  # on CPU the fallback measured faster with a blur (bench/pipeline.py)
        kind = "fallback"
        if device == "gpu":
            kind = "dali" if _dali_available() else "torch" if _torch_cuda_available() else "fallback"
    if kind == "torch":
        from toolkit.core.pipeline.torch_gpu import torch_batches  # imports torch: only when asked for

        return torch_batches(frames, config, device="cuda" if device == "gpu" else "cpu")
    if kind == "dali":
        return dali_batches(frames, config, device=device)
    return fallback_batches(frames, config)


def _torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True
