"""Quality per bench row (Polygraphy-style comparison plus what only dtk can do).

Each runner deblurs the same real frames (the first `count` of `--frames DIR`, else demo frames),
resized to the bench size and blurred with each kernel (k7, k11) through `toolkit.core.pipeline`:
- against the fp32 reference runner (ONNX Runtime CPU fp32, else torch eager, of the *first* model:
  `--model m.onnx --model m-int8.onnx` shows what INT8 costs): max and 99.9th-percentile absolute
  error of the float outputs (0..1 scale);
- against the sharp frames: PSNR (dB, RGB, 0..255, outputs rounded to uint8 as `dtk run` writes them)
  per kernel, the mean over the frames, as `dtk eval` reports it.
With a known blur (`dtk bench --known-blur K`) the frames are blurred with K only and every runner
(the reference too) is told K, as `dtk run --known-blur K` runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.base import Runner, infer_all
from engines.tiled import check_known_blur
from toolkit.core.convert import from_nchw, to_host
from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame
from toolkit.core.metrics import json_number, psnr
from toolkit.core.pipeline import PipelineConfig, open_pipeline

QUALITY_KERNELS = ("k7", "k11")
ERROR_PERCENTILE = 99.9


def load_inputs(frames: Sequence[Frame], size: tuple[int, int],
                kernels: Sequence[str] = QUALITY_KERNELS) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Sharp frames (H x W x 3 uint8) and, per kernel, the blurred N x 3 x H x W float32 batch."""
    sharp_batches = list(open_pipeline(frames, PipelineConfig(batch_size=len(frames), size=size),
                                       kind="fallback"))
    sharp = [img for b in sharp_batches for img in from_nchw(b.images)]
    blurred = {}
    for k in kernels:
        pconf = PipelineConfig(batch_size=len(frames), size=size, blur=k)
        parts = open_pipeline(frames, pconf, kind="fallback")
        blurred[k] = np.concatenate([np.asarray(to_host(b.images), dtype=np.float32) for b in parts])
    return sharp, blurred


def psnr_per_kernel(outputs: dict[str, np.ndarray], sharp: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean PSNR (dB) of the uint8-rounded outputs against the sharp frames, per kernel."""
    return {k: float(np.mean([psnr(o, s) for o, s in zip(from_nchw(out), sharp, strict=True)]))
            for k, out in outputs.items()}


def errors(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """Max and 99.9th-percentile absolute difference from the reference outputs, all kernels pooled."""
    diff = np.concatenate([np.abs(outputs[k].astype(np.float64) - reference[k]).ravel() for k in outputs])
    return {"max_abs_err": float(diff.max()), "p999_abs_err": float(np.percentile(diff, ERROR_PERCENTILE))}


@dataclass
class QualityCheck:
    """Scores runners on fixed frames against a lazily built fp32 reference (`open_reference`)."""

    sharp: list[np.ndarray]
    blurred: dict[str, np.ndarray]
    open_reference: Callable[[], Runner] | None = None
    reference_name: str = ""
    where: str = ""
    known_blur: str | None = None  # every runner told this blur (the frames carry it)
    _reference: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def outputs(self, runner: Runner) -> dict[str, np.ndarray]:
        check_known_blur(runner, self.known_blur)
        return {k: infer_all(runner, b, known_blur=self.known_blur) for k, b in self.blurred.items()}

    def reference(self) -> dict[str, np.ndarray] | None:
        if self._reference is None and self.open_reference is not None:
            ref = self.open_reference()
            try:
                self._reference = self.outputs(ref)
            finally:
                ref.close()
        return self._reference

    def score(self, runner: Runner) -> dict[str, Any]:
        """The quality columns of one runner (shared by its rows)."""
        out = self.outputs(runner)
        psnr_db = {k: json_number(v) for k, v in psnr_per_kernel(out, self.sharp).items()}
        q: dict[str, Any] = {"frames": len(self.sharp), "where": self.where, "psnr_db": psnr_db}
        try:
            ref = self.reference()
        except DtkError as exc:
            ref, q["reference_error"] = None, str(exc)
        if ref is not None:
            q.update(errors(out, ref))
            q["reference"] = self.reference_name
        return q

    def __call__(self, _target: Any, runner: Runner) -> dict[str, Any]:
        return self.score(runner)


def below_floor(quality: dict[str, Any] | None, min_psnr: float | None) -> str | None:
    """Why a row fails `--min-psnr` (the kernels below it), or None."""
    if min_psnr is None or not quality:
        return None
    low = {k: v for k, v in quality.get("psnr_db", {}).items() if v is not None and v < min_psnr}
    if not low:
        return None
    return f"PSNR below --min-psnr {min_psnr:.2f} dB: " + ", ".join(
        f"{k} {v:.2f} dB" for k, v in low.items())
