"""Band energies: how much of a frame's luma lies in each narrow frequency band, along rows and
along columns (fixed filters, never trained).

A Gaussian blur rolls a frame's spectrum off smoothly; resampling (a frame upscaled for display)
cuts it off at its old Nyquist frequency (0.25 cycles/pixel for 2x, 0.33 for 1.5x) and keeps the
bands below as a photo's; the finest bands of a blurred frame sit at the 8-bit rounding floor. Only
narrow bands see a cut-off: smooth (difference-of-Gaussians) bands cannot tell the two apart
(MODEL.md, round 4). So: `BANDS` equal bands from 0 to 0.5 cycles/pixel, each a Hann-windowed
sinc band-pass of `TAPS` taps, run along the rows of every `STRIDE`-th row and along the columns
of every `STRIDE`-th column of the luma (reflect-101 borders); the energy of each is the mean of
its square. Means over positions: a frame cut into tiles has its whole energy as the mean of its
tiles' (toolkit.core.evidence.combine_evidence), like the head's pooled features. Cost per
256x448 tile: ~58 MMAC (~2 % of the network's).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.core.models.precision import fp32_region

BANDS = 16  # equal bands from 0 to 0.5 cycles/pixel
TAPS = 63  # band-pass taps (Hann window: transition ~2/TAPS cycles/pixel)
STRIDE = 4  # every STRIDE-th row (column) is filtered along its length: energies need no more
LUMA = (0.299, 0.587, 0.114)  # BT.601


def band_edges(bands: int = BANDS) -> np.ndarray:
    """bands + 1 edges in cycles/pixel, 0 .. 0.5."""
    return np.linspace(0.0, 0.5, bands + 1)


def bandpass_taps(low: float, high: float, taps: int = TAPS) -> np.ndarray:
    """A Hann-windowed sinc band-pass for [low, high) cycles/pixel (`taps` odd), float64."""
    n = np.arange(taps) - taps // 2
    ideal = 2 * high * np.sinc(2 * high * n) - 2 * low * np.sinc(2 * low * n)
    return ideal * np.hanning(taps + 2)[1:-1]


class BandEnergies(nn.Module):
    """N x 3 x H x W on 0..1 -> N x 2*BANDS: the mean squared luma (on the 0..1 scale) in each band,
    along rows (first BANDS) then along columns."""

    def __init__(self, bands: int = BANDS, taps: int = TAPS, stride: int = STRIDE):
        super().__init__()
        self.bands, self.taps, self.stride = bands, taps, stride
        edges = band_edges(bands)
        filters = np.stack([bandpass_taps(a, b, taps) for a, b in zip(edges[:-1], edges[1:], strict=True)])
        w = torch.from_numpy(filters.astype(np.float32))
        self.register_buffer("along_rows", w[:, None, None, :].clone(), persistent=False)
        self.register_buffer("along_cols", w[:, None, :, None].clone(), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    @property
    def width(self) -> int:
        return 2 * self.bands

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Always in fp32 (an fp16 model's too): the rounding floor's energies (~1e-7) are below
        fp16's normal range."""
        with fp32_region(x):
            return self._energies(x.float())

    def _energies(self, x: torch.Tensor) -> torch.Tensor:
        y = (x * self.luma.float()).sum(dim=1, keepdim=True)
        p, s = self.taps // 2, self.stride
        rows = F.pad(y[:, :, s // 2::s, :], (p, p, 0, 0), mode="reflect")
        cols = F.pad(y[:, :, :, s // 2::s], (0, 0, p, p), mode="reflect")
        along_rows = F.conv2d(rows, self.along_rows.float()).pow(2).mean(dim=(2, 3))
        along_cols = F.conv2d(cols, self.along_cols.float()).pow(2).mean(dim=(2, 3))
        return torch.cat([along_rows, along_cols], dim=1)
