"""Image quality metrics: PSNR (RGB or Y channel) and SSIM.

Inputs are HxWx3 arrays on the uint8 scale (data range 255), uint8 or float.
Identical images have PSNR = inf: tables print "inf", JSON writes null (see `json_number`).
"""

from __future__ import annotations

import math

import numpy as np

DATA_RANGE = 255.0
# ITU-R BT.601 luma on the [0, 255] scale, as BasicSR's `rgb2ycbcr(y_only=True)` (16..235).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma (16..235) of an RGB image on the 0..255 scale, float64 HxW."""
    return image.astype(np.float64) @ _Y_WEIGHTS + 16.0


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr(a: np.ndarray, b: np.ndarray, *, y_channel: bool = False,
         data_range: float = DATA_RANGE) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels; inf when identical."""
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    m = mse(a, b)
    if m == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / m)


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = DATA_RANGE) -> float:
    """Structural similarity (Wang et al. 2004): Gaussian window sigma 1.5, K1 0.01, K2 0.03.

    Matches `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=-1)`: mean over channels of the SSIM map,
    5-pixel border excluded.
    """
    from scipy.ndimage import gaussian_filter

    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    pad = 5  # (win_size - 1) // 2 with win_size = 2 * int(3.5 * 1.5 + 0.5) + 1 = 11
    values = []
    for c in range(a.shape[2]):
        x = a[:, :, c].astype(np.float64)
        y = b[:, :, c].astype(np.float64)

        def filt(z: np.ndarray) -> np.ndarray:
            return gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")

        ux, uy = filt(x), filt(y)
        vx = filt(x * x) - ux * ux
        vy = filt(y * y) - uy * uy
        vxy = filt(x * y) - ux * uy
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        values.append(s[pad:-pad, pad:-pad].mean())
    return float(np.mean(values))


PSNR_CAP = 100.0  # identical frames (PSNR = inf) count as this many dB in means


def capped(value: float) -> float:
    """A PSNR with inf (identical images) counted as `PSNR_CAP` dB: the one cap dtk uses."""
    return min(value, PSNR_CAP)


def psnr_capped(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over RGB uint8 with identical images counted as `PSNR_CAP` dB."""
    return capped(psnr(a, b))


WORSE_DB = 0.1  # a method made a frame worse when its PSNR is below the input's by more than this


def worse_share(pairs, margin: float = WORSE_DB) -> float:
    """Share of (output dB, input dB) pairs whose output is more than `margin` dB below its input,
    both capped (`capped`); dtk eval's 'worse' column and the model card use this one rule."""
    pairs = [(capped(o), capped(i)) for o, i in pairs]
    if not pairs:
        return math.nan
    return sum(o < i - margin for o, i in pairs) / len(pairs)


def json_number(value: float) -> float | None:
    """A float for JSON: inf/nan become null (JSON has no infinity)."""
    return None if value is None or not math.isfinite(value) else float(value)


def format_db(value: float, digits: int = 2) -> str:
    """Table text for a dB value: 'inf' for identical images."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"
