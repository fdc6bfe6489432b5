"""What each way of deblurring a frame gains, measured on synthesised content: the data a decision
by expected gain is fitted on.

For a frame (any content category of training.content, blurred with none / k3 / k7 / k11 at its
size) the options are: pass (0 dB by definition), the network told k7 or k11 (its refined
output), and the bank's prior inverse of k7 or k11 alone (no refiner). `collect` records, per
frame, the head's evidence as `dtk run` decides on it, the frame's band energies and each option's
gain in dB over its input (clipped to +-GAIN_CLIP).
"""

from __future__ import annotations

import numpy as np

from toolkit.core.baselines import BASELINES
from toolkit.core.kernels import blur, get_kernel
from toolkit.core.metrics import capped, psnr

OPTIONS = ("k7", "k7-prior", "k11", "k11-prior")
BLURS = ("none", "k3", "k7", "k11")
GAIN_CLIP = 20.0
BAND_SIGMAS = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)  # difference-of-Gaussians band edges (pixels)


def band_energies(frame: np.ndarray) -> np.ndarray:
    """log10 mean energy of the luma in each difference-of-Gaussians band, finest first
    (len(BAND_SIGMAS) values: y - G(0.5), G(0.5) - G(0.7), ...), reflect-101 borders."""
    from scipy.ndimage import gaussian_filter

    y = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    levels = [y] + [gaussian_filter(y, s, mode="mirror", truncate=3.0) for s in BAND_SIGMAS]
    pairs = zip(levels, levels[1:], strict=False)
    return np.array([np.log10(np.mean((a - b) ** 2) + 1e-6) for a, b in pairs])


def option_gains(runner, inputs: list[np.ndarray], sharp: list[np.ndarray], batch: int = 8) -> np.ndarray:
    """N x len(OPTIONS): each option's PSNR gain over the input (dB, clipped)."""
    from engines.tiled import Tiling, deblur_frames

    base = np.array([capped(psnr(i, s)) for i, s in zip(inputs, sharp, strict=True)])
    cols = []
    for option in OPTIONS:
        kernel = option.split("-")[0]
        if option.endswith("prior"):
            outs = [BASELINES["prior"](i, get_kernel(kernel)) for i in inputs]
        else:
            outs = deblur_frames(runner, inputs, Tiling(), batch=batch, known_blur=kernel).images
        cols.append(np.array([capped(psnr(o, s)) for o, s in zip(outs, sharp, strict=True)]) - base)
    return np.clip(np.stack(cols, axis=1), -GAIN_CLIP, GAIN_CLIP)


def collect(runner, frames: list[dict], log=print) -> dict[str, np.ndarray]:
    """Per frame dict {frame, photo, category, ...} and blur: evidence, bands, gains and labels."""
    from engines.tiled import Tiling, frames_evidence

    rows: dict[str, list] = {k: [] for k in ("ev", "bands", "gains", "blur", "photo", "category", "size")}
    for b in BLURS:
        sharp = [f["frame"] for f in frames]
        inputs = sharp if b == "none" else [blur(s, get_kernel(b)) for s in sharp]
        rows["ev"].append(frames_evidence(runner, inputs, Tiling()))
        rows["bands"].append(np.stack([band_energies(i) for i in inputs]))
        rows["gains"].append(option_gains(runner, inputs, sharp))
        for f in frames:
            rows["blur"].append(b)
            rows["photo"].append(f["photo"])
            rows["category"].append(f["category"])
            rows["size"].append(f["size"])
        log(f"{b}: {len(frames)} frames")
    return {"ev": np.concatenate(rows["ev"]), "bands": np.concatenate(rows["bands"]),
            "gains": np.concatenate(rows["gains"]), "blur": np.array(rows["blur"]),
            "photo": np.array(rows["photo"]), "category": np.array(rows["category"]),
            "size": np.array(rows["size"])}
