"""Known-kernel Wiener inverse filters as fixed spatial convolutions, and the gated Wiener U-Net.

`wiener_taps` turns X = conj(H) Y / (|H|^2 + balance) (what `toolkit.core.baselines.wiener` applies
with FFTs) into one size x size spatial filter, so the deconvolution runs as a plain conv in
PyTorch, ONNX Runtime and TensorRT. `WienerUNet` is blind: it applies a bank of such filters
(all seed kernels, a few balances), estimates from the frame itself which kernel blurred it (a
small head over the frame and the bank, softmax over sharp/k3/k7/k11), mixes the matching
deconvolutions and lets a residual U-Net refine the mix. The refinement is scaled by the
estimated probability of a k7/k11 blur, so sharp and k3 frames pass through (nearly) unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.core.baselines import otf
from toolkit.core.kernels import KERNELS, BlurKernel
from toolkit.core.models.head import KernelHead
from toolkit.core.models.registry import register
from toolkit.core.models.unet import SeedUNet

FILTER_SIZE = 31  # taps of each inverse filter (the k11 inverse decays to <1e-4 within 15 px)
# (kernel, balance) filters in the bank. The first of each kernel is the best single balance
# (toolkit.core.baselines.BALANCE); the lower ones are sharper and noisier, for the refiner to mix.
BANK = (("k3", 1e-4), ("k7", 3e-3), ("k11", 3e-3), ("k7", 3e-4), ("k11", 3e-4))
CLASSES = ("sharp", "k3", "k7", "k11")  # what the head estimates; "sharp" selects the input itself


def wiener_taps(kernel: BlurKernel, balance: float, size: int = FILTER_SIZE, grid: int = 512) -> np.ndarray:
    """The Wiener inverse of `kernel` as a centred size x size spatial filter (float64).

    Sampled on a `grid`-point DFT, so it is the filter the FFT Wiener applies, truncated to `size`
    and scaled to unit DC gain (truncation alone shifts brightness: -2.7 % for k11 at 3e-3).
    """

    transfer = otf(kernel, (grid, grid))
    inverse = np.fft.irfft2(np.conj(transfer) / (np.abs(transfer) ** 2 + balance), s=(grid, grid))
    h = size // 2
    taps = np.roll(inverse, (h, h), axis=(0, 1))[:size, :size]
    return taps / taps.sum()


class WienerBank(nn.Module):
    """Fixed per-channel filters: N x 3 x H x W -> N x 3*len(bank) x H x W, filter-major.

    Output channels 3f..3f+2 are filter f applied to R, G, B with a reflect border (the blur's
    own reflect-101). The taps are buffers rebuilt from the kernel definitions, never trained.
    """

    def __init__(self, bank=BANK, size: int = FILTER_SIZE):
        super().__init__()
        self.bank, self.size = tuple(bank), size
        # a dense conv whose weight is zero off the channel diagonal: out 3f+c = filter f on input c.
        # (torch's CPU depthwise conv takes ~100x longer on a full 256x448 frame than this.)
        w = np.zeros((3 * len(self.bank), 3, size, size), dtype=np.float32)
        for f, (k, b) in enumerate(self.bank):
            taps = wiener_taps(KERNELS[k], b, size)
            for c in range(3):
                w[3 * f + c, c] = taps
        self.register_buffer("weight", torch.from_numpy(w), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.size // 2
        return F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), self.weight)

    def candidate(self, out: torch.Tensor, kernel: str) -> torch.Tensor:
        """The 3 channels of the first (best-balance) filter for `kernel` in the bank's output."""
        f = next(i for i, (k, _) in enumerate(self.bank) if k == kernel)
        return out[:, 3 * f: 3 * f + 3]


def _head(in_channels: int, width: int) -> KernelHead:
    features = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
    )
    return KernelHead(features, width, len(CLASSES))


@register("wiener")
class WienerUNet(nn.Module):
    """Blind deblurring: Wiener bank -> kernel head -> mix of candidates + gated U-Net refinement.

    y = sum_c p_c * candidate_c + (p_k7 + p_k11) * unet([x, bank(x), p])  where candidate_sharp
    is x and candidate_k is the bank's best-balance inverse of kernel k. `forward(x, True)` also
    returns the head's logits (for the auxiliary kernel-classification loss).
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.bank = WienerBank()
        n = 3 + 3 * len(self.bank.bank)
        self.head = _head(n, config.head_width)
        self.refine = SeedUNet(replace(config, arch="seed", in_channels=n + len(CLASSES), residual=False))
        nn.init.zeros_(self.refine.out.weight)  # start as the gated Wiener mix
        nn.init.zeros_(self.refine.out.bias)

    def forward(self, x: torch.Tensor, return_logits: bool = False):
        with torch.no_grad():
            bank = self.bank(x)
        z = torch.cat([x, bank], dim=1)
        # the head sees what each inverse filter adds to the frame: a wrong (too wide) kernel rings
        logits = self.head(torch.cat([x, bank - x.repeat(1, len(self.bank.bank), 1, 1)], dim=1))
        p = torch.softmax(logits, dim=1)
        mix = p[:, 0:1, None, None] * x
        for i, name in enumerate(CLASSES[1:], start=1):
            mix = mix + p[:, i:i + 1, None, None] * self.bank.candidate(bank, name)
        maps = p[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        gate = (p[:, 2:3] + p[:, 3:4])[:, :, None, None]
        y = mix + gate * self.refine(torch.cat([z, maps], dim=1))
        return (y, logits) if return_logits else y


def class_index(labels: list[str]) -> torch.Tensor:
    """Kernel labels from the sampler ('sharp', 'k3', ...) -> class indices of CLASSES."""
    return torch.tensor([CLASSES.index(label) for label in labels], dtype=torch.long)


def kernel_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over {sharp or k3}, k7, k11: sharp and k3 frames are often pixel-identical.

    The head still has four outputs; the probability of the merged class is their sum, so the
    reconstruction loss alone decides between the input and the k3 inverse.
    """
    logp = torch.log_softmax(logits, dim=1)
    merged = torch.stack([torch.logsumexp(logp[:, :2], dim=1), logp[:, 2], logp[:, 3]], dim=1)
    target = torch.clamp(labels - 1, min=0)
    return F.nll_loss(merged, target)
