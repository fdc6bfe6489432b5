"""Will this model's activations fit fp16? Per-layer peaks of an fp32 run on real blurred frames.

The one fp16 range guard: the torch runner applies it before running --precision fp16, and
`dtk export --fp16` before writing an fp16 graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from toolkit.core.convert import to_nchw
from toolkit.core.demo import DEMO_PHOTOS, skimage_photo_path
from toolkit.core.frames import read_frame, resize_frame
from toolkit.core.kernels import KERNELS, blur

FP16_MAX = 65504.0


def real_frame(height: int, width: int) -> np.ndarray:
    """A real RGB photo (scikit-image's astronaut) resized to HxW, as 1x3xHxW float32 on 0..1."""
    image = read_frame(skimage_photo_path("astronaut"))
    image = resize_frame(image, (height, width))
    return to_nchw([image])


def activation_peaks(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Largest |value| per conv layer (by module name) and of the network output ("output"), no grad."""
    peaks: dict[str, float] = {}

    def hook_for(name: str):
        def hook(_m, _i, out):
            peaks[name] = max(peaks.get(name, 0.0), float(out.detach().abs().max()))
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            out = model(x)
        peaks["output"] = float(out.abs().max())
    finally:
        for h in handles:
            h.remove()
    return peaks


def max_abs_activation(model: nn.Module, x: torch.Tensor) -> float:
    """Largest |value| of any conv output or the network output for input x (fp32)."""
    return max(activation_peaks(model, x).values())


def blurred_demo_frames(height: int = 256, width: int = 448) -> np.ndarray:
    """Each demo photo blurred with each seed kernel: N x 3 x H x W float32 on 0..1 (real frames)."""
    photos = [resize_frame(read_frame(skimage_photo_path(name)), (height, width)) for name in DEMO_PHOTOS]
    frames = [blur(photo, kernel) for kernel in KERNELS.values() for photo in photos]
    return to_nchw(frames)


@dataclass
class Fp16Check:
    """Per-layer largest |activation| (fp32 run on real frames) against fp16's range (65504)."""

    peaks: dict[str, float]
    frames: int

    @property
    def peak(self) -> float:
        return max(self.peaks.values())

    @property
    def worst_layer(self) -> str:
        return max(self.peaks, key=self.peaks.__getitem__)

    @property
    def overflows(self) -> list[str]:
        """Layers whose activations do not fit fp16 at all (|x| > 65504 becomes inf)."""
        return [name for name, v in self.peaks.items() if v > FP16_MAX]

    @property
    def status(self) -> str:
        """'overflow' (some layer > 65504), 'warn' (within 4x of it) or 'ok'."""
        if self.overflows:
            return "overflow"
        return "warn" if self.peak > FP16_MAX / 4 else "ok"

    def message(self) -> str:
        return (f"largest |activation| {self.peak:.4g} in layer {self.worst_layer} over {self.frames} real "
                f"frames = {100 * self.peak / FP16_MAX:.2g}% of fp16's max {FP16_MAX:g}"
                + (f"; overflowing layers: {', '.join(self.overflows)}" if self.overflows else ""))

    def to_json(self) -> dict:
        return {"peaks": self.peaks, "frames": self.frames, "peak": self.peak,
                "worst_layer": self.worst_layer, "fp16_max": FP16_MAX, "status": self.status,
                "overflows": self.overflows}


def check_fp16_range(model: nn.Module, frames: np.ndarray | None = None, batch: int = 5) -> Fp16Check:
    """Run real frames (default: `blurred_demo_frames`) through the fp32 model and collect per-layer peaks."""
    frames = blurred_demo_frames() if frames is None else frames
    param = next(model.parameters())
    peaks: dict[str, float] = {}
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch])).to(param.device, param.dtype)
        for name, value in activation_peaks(model, x).items():
            peaks[name] = max(peaks.get(name, 0.0), value)
    return Fp16Check(peaks, len(frames))
