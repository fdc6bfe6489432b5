"""Classical non-blind deconvolution with the known seed kernel: what a user gets without a network.

All work per channel in float64 on a reflect-101 padded frame (the blur's own border) and
crop back. Parameters were tuned on dtk's validation photos (held-out colour photographs),
never on the demo frames: see `BALANCE` / `RL_ITERATIONS` and README.
"""

from __future__ import annotations

import numpy as np

from toolkit.core.convert import round_uint8
from toolkit.core.kernels import BlurKernel

PAD = 32  # pixels of reflect-101 padding around the frame before the FFT
# Wiener balance (noise-to-signal ratio, flat spectrum) per kernel: the best of {1e-3, 2e-3, 5e-3,
# 1e-2, ...} by mean PSNR on the 149 validation windows of held-out colour photos
# (`python -m training.photoset tune data/photoset`): k7 41.24, k11 38.00 dB there. k3 keeps 1e-4
# (tuned earlier on scikit-image's non-demo photos; doing nothing is k3's bar anyway).
BALANCE = {"k3": 1e-4, "k7": 5e-3, "k11": 2e-3}
# Richardson-Lucy iterations: k7/k11 gain +5.4/+3.6 dB at 30 and +6.2/+4.2 dB at 60 on the same
# crops; 30 keeps `dtk eval --baselines rl` affordable on a CPU. k3 converges in a few.
# Power-law prior balance per kernel (`prior_inverse`): the best of {1e-3 ... 0.5} (1-2-5 steps,
# then 0.03 / 0.07 between) by mean PSNR on the 149 validation windows of held-out colour photos
# (`python -m training.photoset tune data/photoset`): k7 42.04, k11 38.22 dB there, vs flat Wiener
# 41.24 / 38.00 and blurred 37.88 / 34.79. k3 is not tuned: doing nothing is its bar.
PRIOR_BALANCE = {"k3": 1e-2, "k7": 0.03, "k11": 0.07}
RL_ITERATIONS = {"k3": 5, "k7": 30, "k11": 30}


def otf(kernel: BlurKernel, shape: tuple[int, int]) -> np.ndarray:
    """Optical transfer function of the centred 2-D kernel for an FFT of `shape`."""
    psf = np.zeros(shape, dtype=np.float64)
    k = kernel.taps_2d()
    r = kernel.size // 2
    psf[: kernel.size, : kernel.size] = k
    psf = np.roll(psf, (-r, -r), axis=(0, 1))
    return np.fft.rfft2(psf)


def frequency_sq(shape: tuple[int, int]) -> np.ndarray:
    """|f|^2 in (cycles/pixel)^2 on the rfft2 grid of `shape` (what `otf` returns)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return fy * fy + fx * fx


def inverse_gain(kernel: BlurKernel, shape: tuple[int, int], balance: float,
                 prior: str = "flat") -> np.ndarray:
    """Regularised inverse filter on the rfft2 grid: conj(H) / (|H|^2 + balance * R(f)).

    prior "flat": R = 1 (Wiener with a white image spectrum). "power": R = (|f|^2 / 0.25)^2, a
    balance growing as |f|^4 (a power-law image prior): it restores mid frequencies harder and
    damps the highest ones, where a blurred uint8 frame holds only rounding noise.
    """
    transfer = otf(kernel, shape)
    if prior == "flat":
        reg = 1.0
    elif prior == "power":
        reg = (frequency_sq(shape) / 0.25) ** 2
    else:
        raise ValueError(f"unknown prior {prior!r}")
    return np.conj(transfer) / (np.abs(transfer) ** 2 + balance * reg)


def _pad(image: np.ndarray) -> np.ndarray:
    return np.pad(image.astype(np.float64), ((PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect")


def wiener(blurred: np.ndarray, kernel: BlurKernel, balance: float | None = None) -> np.ndarray:
    """Wiener deconvolution: X = conj(H) Y / (|H|^2 + balance). RGB uint8 in, RGB uint8 out."""
    bal = BALANCE[kernel.name] if balance is None else balance
    return _apply_gain(blurred, kernel, bal, "flat")


def prior_inverse(blurred: np.ndarray, kernel: BlurKernel, balance: float | None = None) -> np.ndarray:
    """Regularised inverse with a power-law image prior (`inverse_gain`, prior "power"). uint8 in/out."""
    bal = PRIOR_BALANCE[kernel.name] if balance is None else balance
    return _apply_gain(blurred, kernel, bal, "power")


def _apply_gain(blurred: np.ndarray, kernel: BlurKernel, balance: float, prior: str) -> np.ndarray:
    padded = _pad(blurred)
    h, w = padded.shape[:2]
    gain = inverse_gain(kernel, (h, w), balance, prior)
    out = np.empty_like(padded)
    for c in range(padded.shape[2]):
        out[:, :, c] = np.fft.irfft2(np.fft.rfft2(padded[:, :, c]) * gain, s=(h, w))
    return round_uint8(out[PAD:-PAD, PAD:-PAD])


def richardson_lucy(blurred: np.ndarray, kernel: BlurKernel, iterations: int | None = None) -> np.ndarray:
    """Richardson-Lucy deconvolution (FFT convolutions on the padded frame). uint8 in/out."""
    n = RL_ITERATIONS[kernel.name] if iterations is None else iterations
    padded = _pad(blurred) / 255.0 + 1e-6
    h, w = padded.shape[:2]
    transfer = otf(kernel, (h, w))
    out = np.empty_like(padded)
    for c in range(padded.shape[2]):
        y = padded[:, :, c]
        x = y.copy()
        for _ in range(n):
            est = np.fft.irfft2(np.fft.rfft2(x) * transfer, s=(h, w))
            ratio = y / np.maximum(est, 1e-12)
            x = x * np.fft.irfft2(np.fft.rfft2(ratio) * np.conj(transfer), s=(h, w))
        out[:, :, c] = x
    return round_uint8(out[PAD:-PAD, PAD:-PAD] * 255.0)


BASELINES = {"prior": prior_inverse, "wiener": wiener, "rl": richardson_lucy}
