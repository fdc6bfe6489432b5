"""The seed blurs in torch: separable depthwise convolution with reflect-101 borders.

Runs wherever the tensor lives (the GPU blur when DALI is absent; training batches on CPU).
Same kernel definitions as `toolkit.core.kernels`; equal to its reference within 1 LSB on uint8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toolkit.core.kernels import BlurKernel, get_kernel


def blur_tensor(batch: torch.Tensor, kernel: BlurKernel | str) -> torch.Tensor:
    """Blur N x C x H x W. uint8 in -> uint8 out (float32 math, rounded); float in -> same dtype out.

    torch's 'reflect' padding mirrors without repeating the edge pixel: reflect-101.
    """
    k = get_kernel(kernel) if isinstance(kernel, str) else kernel
    if batch.dim() != 4:
        raise ValueError(f"expected N x C x H x W, got shape {tuple(batch.shape)}")
    n, c, h, w = batch.shape
    r = k.size // 2
    if h <= r or w <= r:
        raise ValueError(f"frame {h}x{w} too small for the {k.size}x{k.size} kernel")
    x = batch.float() if batch.dtype in (torch.uint8, torch.float16, torch.bfloat16) else batch
    taps = torch.as_tensor(k.taps_1d(), dtype=x.dtype, device=x.device)
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # vertical
    x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # horizontal
    if batch.dtype == torch.uint8:
        return x.round_().clamp_(0, 255).to(torch.uint8)
    return x.to(batch.dtype)
