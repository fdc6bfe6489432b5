"""Natural softness for training targets: defocus, Gaussian or short motion blur, mostly in part
of the frame.

Photos are often soft by nature (shallow depth of field, motion, haze); a blind head that takes
softness for blur deconvolves them and makes them worse. Training on photos softened here, with
the softened photo as the target and the seed kernel applied after, teaches that softness alone is
not the seed blur. Most softenings cover part of the frame (a smooth random mask: an in-focus
region stays sharp, as in a real photo); a uniform one is mild.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.core.kernels import gaussian_taps

KINDS = ("defocus", "gaussian", "motion")


def gaussian_2d(sigma: float) -> np.ndarray:
    """A round Gaussian out to 3 sigma: the outer product of toolkit.core.kernels' 1-D one."""
    g = gaussian_taps(2 * max(1, math.ceil(3 * sigma)) + 1, sigma)
    return np.outer(g, g)


def defocus_taps(radius: float) -> np.ndarray:
    """A disc of `radius` px, its edge antialiased (8x supersampled)."""
    r = math.ceil(radius)
    s = (np.arange(8 * (2 * r + 1)) + 0.5) / 8 - (r + 0.5)
    inside = (s[:, None] ** 2 + s[None, :] ** 2 <= radius * radius).astype(np.float64)
    disc = inside.reshape(2 * r + 1, 8, 2 * r + 1, 8).mean(axis=(1, 3))
    return disc / disc.sum()


def motion_taps(length: float, angle: float) -> np.ndarray:
    """A line of `length` px at `angle` (radians), antialiased by sampling points along it."""
    r = math.ceil(length / 2) + 1
    k = np.zeros((2 * r + 1, 2 * r + 1))
    for t in np.linspace(-length / 2, length / 2, 64):
        y, x = r + t * math.sin(angle), r + t * math.cos(angle)
        y0, x0 = int(math.floor(y)), int(math.floor(x))
        fy, fx = y - y0, x - x0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                k[y0 + dy, x0 + dx] += wy * wx
    return k / k.sum()


def random_taps(rng: np.random.Generator, mild: bool) -> np.ndarray:
    """A random softening kernel; `mild` ones are weaker (for a frame-wide softening)."""
    kind = KINDS[rng.integers(len(KINDS))]
    if kind == "defocus":
        return defocus_taps(rng.uniform(0.7, 1.4) if mild else rng.uniform(1.0, 5.0))
    if kind == "gaussian":
        return gaussian_2d(rng.uniform(0.4, 0.8) if mild else rng.uniform(0.7, 3.0))
    return motion_taps(rng.uniform(1.5, 3.0) if mild else rng.uniform(3.0, 12.0), rng.uniform(0, math.pi))


def random_mask(rng: np.random.Generator, h: int, w: int, device) -> torch.Tensor:
    """1 x 1 x h x w in 0..1: a smooth random field cut by a soft threshold (0: sharp, 1: soft)."""
    gy, gx = int(rng.integers(2, 5)), int(rng.integers(2, 7))
    field = torch.from_numpy(rng.standard_normal((1, 1, gy, gx))).float().to(device)
    field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True)
    level = rng.uniform(-0.8, 0.8)  # how much of the frame is soft
    steep = rng.uniform(2.0, 8.0)
    return torch.sigmoid(steep * (field - level))


def soften_frames(frames: torch.Tensor, rng: np.random.Generator, uniform_share: float = 0.25
                  ) -> torch.Tensor:
    """Each uint8 N x 3 x H x W frame softened by a random kernel, in a random part of the frame
    (frame-wide and mild with probability `uniform_share`); uint8 out (rounded, as a stored photo)."""
    out = []
    h, w = frames.shape[2:]
    for frame in frames:
        mild = rng.random() < uniform_share
        taps = torch.from_numpy(random_taps(rng, mild)).float().to(frame.device)
        r = taps.shape[0] // 2
        x = frame[None].float()
        soft = F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), taps.expand(3, 1, -1, -1), groups=3)
        if not mild:
            m = random_mask(rng, h, w, frame.device)
            soft = m * soft + (1 - m) * x
        out.append(soft.round_().clamp_(0, 255).to(torch.uint8)[0])
    return torch.stack(out)
