"""The GPU pipeline without DALI: decode and resize on CPU threads (the fallback), then one host ->
device copy per batch and the seed blur on the GPU (`toolkit.core.torch_blur`), so a CUDA runner
gets device tensors as DALI would hand them.

The blur runs on the resized frame's uint8 values and its result is rounded to uint8, as the
reference blur does, so outputs match the CPU pipeline's within 1 LSB.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch

from toolkit.core.frames import Frame
from toolkit.core.pipeline.batch import FrameBatch, PipelineConfig
from toolkit.core.pipeline.fallback import fallback_batches
from toolkit.core.torch_blur import blur_tensor


def torch_batches(frames: Sequence[Frame], config: PipelineConfig,
                  device: str | torch.device = "cuda") -> Iterator[FrameBatch]:
    """Fallback batches (unblurred) moved to `device` and blurred there; images are torch tensors.
    At native size the frames stay on the host (they are cut into tiles there): the fallback's."""
    if config.size is None:
        yield from fallback_batches(frames, config)
        return
    dtype = torch.float16 if config.dtype == "float16" else torch.float32
    for fb in fallback_batches(frames, replace(config, blur=None, dtype="float32")):
        x = torch.from_numpy(fb.images).to(device, non_blocking=True)
        if config.blur and len(fb):
            u8 = (x * 255.0).round_().clamp_(0, 255).to(torch.uint8)  # exact: the frames were uint8
            x = blur_tensor(u8, config.blur).float().mul_(1.0 / 255.0)
        yield FrameBatch(fb.frames, x.to(dtype), fb.sizes, fb.failed, fb.multi_frame)
