"""The seed's three Gaussian blur kernels: one definition used by every part of dtk.

k3: 3x3, sigma 0.3; k7: 7x7, sigma 1.0; k11: 11x11, sigma 1.6 (seed report, section 1).
The reference blur uses reflect-101 borders (OpenCV's BORDER_REFLECT_101, DALI's
"mirror"): the border DALI's `fn.gaussian_blur` applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolkit.core.bounds import parse_list
from toolkit.core.convert import round_uint8
from toolkit.core.errors import DtkError


@dataclass(frozen=True)
class BlurKernel:
    """A separable Gaussian blur: `size` x `size` taps, standard deviation `sigma` (pixels)."""

    name: str
    size: int
    sigma: float

    def taps_1d(self) -> np.ndarray:
        """Normalised 1-D Gaussian taps (float64, length `size`)."""
        return gaussian_taps(self.size, self.sigma)

    def taps_2d(self) -> np.ndarray:
        """The 2-D kernel as the outer product of the 1-D taps (float64, sums to 1)."""
        t = self.taps_1d()
        return np.outer(t, t)


KERNELS: dict[str, BlurKernel] = {
    "k3": BlurKernel("k3", 3, 0.3),
    "k7": BlurKernel("k7", 7, 1.0),
    "k11": BlurKernel("k11", 11, 1.6),
}
KERNEL_NAMES: tuple[str, ...] = tuple(KERNELS)


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """exp(-x^2 / (2 sigma^2)) for x = -(size//2)..size//2, normalised to sum 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def get_kernel(name: str) -> BlurKernel:
    """Look a kernel up by name (k3, k7, k11)."""
    try:
        return KERNELS[name]
    except KeyError:
        raise DtkError(
            f"unknown blur kernel {name!r}: choose one of {', '.join(KERNEL_NAMES)}"
        ) from None


def parse_kernels(spec: str, flag: str = "--kernels") -> list[BlurKernel]:
    """Parse a comma-separated list such as 'k3,k7,k11' (or 'all'); DtkError for an empty one
    (`flag` names the option in the message)."""
    if spec.strip() == "all":
        return list(KERNELS.values())
    return [get_kernel(s) for s in parse_list(spec, flag, f"seed kernels: {','.join(KERNEL_NAMES)} or all")]


def blur(image: np.ndarray, kernel: BlurKernel | str) -> np.ndarray:
    """Blur an HxWxC (or HxW) image with reflect-101 borders.

    uint8 in -> uint8 out (computed in float32, rounded to nearest); float in -> float32 out.
    """
    import cv2

    k = get_kernel(kernel) if isinstance(kernel, str) else kernel
    taps = k.taps_1d().astype(np.float32)
    src = image.astype(np.float32, copy=False)
    out = cv2.sepFilter2D(src, cv2.CV_32F, taps, taps, borderType=cv2.BORDER_REFLECT_101)
    if out.ndim == 2 and image.ndim == 3:  # OpenCV drops a single channel axis
        out = out[:, :, None]
    if image.dtype == np.uint8:
        return round_uint8(out)
    return out
