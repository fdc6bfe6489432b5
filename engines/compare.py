"""`dtk compare`: run two or more runners on the same real frames and compare their outputs.

Every runner gets the very same batches (one pipeline pass per kernel, each batch handed to each
runner), and the outputs are compared through Polygraphy's comparator
(`Comparator.compare_accuracy` with a `SimpleCompareFunc` over `RunResults` of NumPy outputs):
per pair and per blur kernel, the max / mean / median / quantile absolute and relative error.
The first runner is the reference; each other runner is compared with it, so Polygraphy's
relative error is relative to the reference's output. PSNR between the two outputs (peak 1.0,
the model's 0..1 scale) is computed here, not by Polygraphy.

With a tolerance (`atol` and/or `rtol`), a pair passes when the checked statistic (`check_stat`,
max by default) is within `atol` OR its relative form within `rtol` (Polygraphy's rule); a
missing tolerance counts as 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engines.polygraphy_log import quiet_polygraphy
from engines.select import BACKENDS
from engines.spec import RunnerSpec
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.demo import frames_or_demo
from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame
from toolkit.core.kernels import KERNELS
from toolkit.core.lazy import optional_import
from toolkit.core.metrics import psnr
from toolkit.core.pipeline import PipelineConfig, open_pipeline

CHECK_STATS = ("max", "mean", "median", "quantile")
DEFAULT_QUANTILE = 0.999
ALL = "all"  # the row over every kernel's frames together
OUTPUT = "output"  # the models' output tensor name


@dataclass(frozen=True)
class PairStats:
    """Errors of `other` vs `reference` over the frames blurred with `kernel` (or all kernels)."""

    reference: str
    other: str
    kernel: str
    frames: int
    max_abs: float
    mean_abs: float
    median_abs: float
    quantile_abs: float
    max_rel: float
    quantile_rel: float
    psnr_db: float | None  # None: identical outputs (infinite PSNR)
    passed: bool | None = None  # None: no tolerance given


@dataclass
class CompareReport:
    runners: list[dict]
    kernels: list[str]
    frames: list[str]
    quantile: float
    check: dict | None  # {"stat", "atol", "rtol"} or None
    pairs: list[PairStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool | None:
        if self.check is None:
            return None
        return all(p.passed for p in self.pairs)

    def failed_pairs(self) -> list[PairStats]:
        return [p for p in self.pairs if p.passed is False]

    def to_json(self) -> dict:
        return {"runners": self.runners, "kernels": self.kernels, "frames": self.frames,
                "quantile": self.quantile, "check": self.check, "passed": self.passed,
                "seconds": round(self.seconds, 3), "pairs": [asdict(p) for p in self.pairs]}


def parse_runner(text: str, size: tuple[int, int] = FRAME_SIZE) -> tuple[str, RunnerSpec]:
    """`backend[:model]` (torch, onnxruntime, openvino, tensorrt; model: a file, default the shipped one).

    The label is `backend` or `backend:FILE-NAME` (the folder left out)."""
    backend, _, model = text.partition(":")
    if backend not in BACKENDS:
        raise DtkError(f"runner {text!r}: the backend must be one of {', '.join(BACKENDS)} "
                       "(then optionally :MODEL, e.g. onnxruntime:model-fp16.onnx)")
    options = {"size": size} if backend in ("onnxruntime", "openvino") else {}
    label = f"{backend}:{Path(model).name}" if model else backend
    return label, RunnerSpec.choose(backend, model or None, **options)


def psnr_between(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float | None:
    """PSNR (dB) of `b` against `a` on the 0..`peak` scale (core.metrics.psnr); None when they are
    identical."""
    value = psnr(a, b, data_range=peak)
    return None if math.isinf(value) else value


def run_outputs(specs: Sequence[tuple[str, RunnerSpec]], frames: Sequence[Frame], kernels: Sequence[str],
                batch_size: int = 4, size: tuple[int, int] = FRAME_SIZE) -> dict[str, dict[str, np.ndarray]]:
    """{label: {kernel: N x 3 x H x W float32}}: every runner on the same blurred batches."""
    runners = []
    try:
        for label, spec in specs:
            runners.append((label, spec.open()))
        outputs: dict[str, dict[str, list[np.ndarray]]] = {label: {k: [] for k in kernels}
                                                            for label, _ in specs}
        for kernel in kernels:
            config = PipelineConfig(batch_size=batch_size, size=size, blur=kernel)
            for batch in open_pipeline(frames, config, kind="fallback"):
                if batch.failed:
                    raise DtkError(f"cannot read frame {batch.failed[0][0]}: {batch.failed[0][1]}")
                for label, runner in runners:
                    out = np.asarray(runner.infer(batch.images), dtype=np.float32)
                    outputs[label][kernel].append(out)
    finally:
        for _, runner in runners:
            runner.close()
    return {label: {k: np.concatenate(v) for k, v in per.items()} for label, per in outputs.items()}


def compare_outputs(outputs: dict[str, dict[str, np.ndarray]], *, quantile: float = DEFAULT_QUANTILE,
                    atol: float | None = None, rtol: float | None = None,
                    check_stat: str = "max") -> list[PairStats]:
    """Each runner vs the first (dict order), per kernel and over all kernels, through Polygraphy."""
    if check_stat not in CHECK_STATS:
        raise DtkError(f"unknown --check-stat {check_stat!r}: choose one of {', '.join(CHECK_STATS)}")
    if not 0 < quantile < 1:
        raise DtkError(f"--quantile must be in (0, 1), got {quantile}")
    labels = list(outputs)
    if len(labels) < 2:
        raise DtkError("compare needs at least two runners")
    comparator = optional_import("polygraphy.comparator")
    kernels = list(outputs[labels[0]])
    rows = [*kernels, ALL] if len(kernels) > 1 else kernels

    def iteration(label, row):
        per = outputs[label]
        return {OUTPUT: np.concatenate([per[k] for k in kernels]) if row == ALL else per[row]}

    results = comparator.RunResults()
    for label in labels:
        results.add([iteration(label, row) for row in rows], runner_name=label)
    checking = atol is not None or rtol is not None
    func = comparator.SimpleCompareFunc(check_error_stat="quantile", error_quantile=quantile,
                                        atol=atol or 0.0, rtol=rtol or 0.0)
    with quiet_polygraphy("CRITICAL"):  # dtk prints the table; Polygraphy's log would repeat it
        # (i, 0): Polygraphy's relative error divides by the second output, here the reference's
        accuracy = comparator.Comparator.compare_accuracy(
            results, comparisons=[(i, 0) for i in range(1, len(labels))], compare_func=func)[0]
        if checking:
            accuracy.reevaluate(comparator.SimpleThreshold(check_stat, atol or 0.0, rtol or 0.0))
    pairs = []
    for i in range(1, len(labels)):
        other, ref = labels[i], labels[0]
        for row, result in zip(rows, accuracy[(other, ref)], strict=True):
            stats = result[OUTPUT]
            a, b = iteration(ref, row)[OUTPUT], iteration(other, row)[OUTPUT]
            pairs.append(PairStats(
                reference=ref, other=other, kernel=row, frames=int(a.shape[0]),
                max_abs=stats.max_absdiff, mean_abs=stats.mean_absdiff, median_abs=stats.median_absdiff,
                quantile_abs=stats.quantile_absdiff, max_rel=stats.max_reldiff,
                quantile_rel=stats.quantile_reldiff, psnr_db=psnr_between(a, b),
                passed=bool(stats) if checking else None))
    return pairs


def compare_runners(runners: Sequence[str], *, frames_dir: Path | None = None, max_frames: int = 5,
                    kernels: Sequence[str] = ("k7", "k11"), batch_size: int = 4,
                    quantile: float = DEFAULT_QUANTILE, atol: float | None = None,
                    rtol: float | None = None, check_stat: str = "max",
                    log: Callable[[str], None] = print) -> CompareReport:
    """Parse RUNNER specs, run them on the frames (demo frames by default) blurred with each kernel,
    compare every runner with the first; DtkError before any model loads on a bad argument."""
    if len(runners) < 2:
        raise DtkError("dtk compare needs at least two runners, e.g. `dtk compare torch onnxruntime`")
    unknown = [k for k in kernels if k not in KERNELS]
    if unknown or not kernels:
        raise DtkError(f"unknown kernel(s) {', '.join(unknown) or '(none)'}: "
                       f"choose from {', '.join(KERNELS)}")
    if max_frames < 1 or batch_size < 1:
        raise DtkError("--max-frames and --batch must be at least 1")
    if check_stat not in CHECK_STATS:
        raise DtkError(f"unknown --check-stat {check_stat!r}: choose one of {', '.join(CHECK_STATS)}")
    for name, tol in (("--atol", atol), ("--rtol", rtol)):
        if tol is not None and tol < 0:
            raise DtkError(f"{name} must be >= 0, got {tol}")
    specs = [parse_runner(r) for r in runners]
    if len({label for label, _ in specs}) != len(specs):
        raise DtkError(f"a runner is named twice: {' '.join(runners)}")
    started = time.perf_counter()
    with frames_or_demo(frames_dir, max_frames) as frames:
        if not frames:
            raise DtkError(f"no frames found in {frames_dir}")
        log(f"comparing {len(specs)} runners on {len(frames)} frames x {len(kernels)} kernels "
            f"({', '.join(kernels)}); reference: {specs[0][0]}")
        outputs = run_outputs(specs, frames, kernels, batch_size)
        names = [str(f.rel) for f in frames]
    pairs = compare_outputs(outputs, quantile=quantile, atol=atol, rtol=rtol, check_stat=check_stat)
    check = None if atol is None and rtol is None else {"stat": check_stat, "atol": atol or 0.0,
                                                         "rtol": rtol or 0.0}
    return CompareReport(
        runners=[{"label": label, "backend": spec.backend, "model": str(spec.model)}
                 for label, spec in specs],
        kernels=list(kernels), frames=names, quantile=quantile, check=check, pairs=pairs,
        seconds=time.perf_counter() - started)
