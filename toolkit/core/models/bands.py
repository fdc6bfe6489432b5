"""Band energies: how much of a frame's luma lies in each octave-and-a-half band (fixed filters).

A Gaussian blur rolls a frame's spectrum off smoothly and leaves the finest bands at the 8-bit
rounding floor; resampling (a frame upscaled for display) cuts it off at a band edge and keeps the
bands below as a photo's; natural softness and noise have their own shapes. The energies of the
luma in difference-of-Gaussians bands (y - G(0.5), G(0.5) - G(0.7), ... G(2.8) - G(4.0), pixels)
are means over positions, so a frame cut into tiles has its whole energy as the mean of its tiles'
(toolkit.core.evidence.combine_evidence), like the head's pooled features.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BAND_SIGMAS = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)  # band edges (Gaussian sigmas, pixels)
TRUNCATE = 3.0  # Gaussian taps out to TRUNCATE sigmas (scipy.ndimage.gaussian_filter's rule)
LUMA = (0.299, 0.587, 0.114)  # BT.601


def gaussian_taps(sigma: float, truncate: float = TRUNCATE) -> np.ndarray:
    """Normalised 1-D Gaussian taps of radius int(truncate * sigma + 0.5)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


class BandEnergies(nn.Module):
    """N x 3 x H x W on 0..1 -> N x len(BAND_SIGMAS): mean squared luma (grey levels^2 / 255^2) of
    each band. Separable Gaussian convs with reflect-101 borders; fixed, never trained."""

    def __init__(self, sigmas=BAND_SIGMAS):
        super().__init__()
        self.sigmas = tuple(sigmas)
        self.pad = max(len(gaussian_taps(s)) // 2 for s in self.sigmas)
        size = 2 * self.pad + 1
        taps = np.zeros((len(self.sigmas), 1, size), dtype=np.float32)
        for i, s in enumerate(self.sigmas):
            t = gaussian_taps(s)
            r = len(t) // 2
            taps[i, 0, self.pad - r:self.pad + r + 1] = t
        self.register_buffer("vert", torch.from_numpy(taps[:, :, :, None].copy()), persistent=False)
        self.register_buffer("horiz", torch.from_numpy(taps[:, :, None, :].copy()), persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x.float() * self.luma).sum(dim=1, keepdim=True)
        p, n = self.pad, len(self.sigmas)
        z = F.pad(y, (p, p, p, p), mode="reflect").expand(-1, n, -1, -1)
        z = F.conv2d(F.conv2d(z, self.vert, groups=n), self.horiz, groups=n)
        levels = torch.cat([y, z], dim=1)  # y, G(s0), G(s1), ...
        bands = levels[:, :-1] - levels[:, 1:]
        return bands.pow(2).mean(dim=(2, 3))
