"""Timers and latency statistics (trtexec's figures: min/mean/median/p90/p95/p99/max).

CPU: `time.perf_counter_ns` around a call that has returned its result (host arrays, so the
work is finished); an optional `sync` callable runs inside the timed span. GPU: a pair of
CUDA events recorded on the current stream (`torch.cuda.Event(enable_timing=True)`), read
after `end.synchronize()`: device time in ms. torch is imported only when a CUDA timer is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

PERCENTILES = (50, 90, 95, 99)


class Timer(Protocol):
    """Times one call of `fn`; returns milliseconds."""

    kind: str

    def time(self, fn: Callable[[], Any]) -> float: ...


class HostTimer:
    """Wall time on the host with `perf_counter_ns`; `sync` (if any) is called before stopping."""

    kind = "host"

    def __init__(self, sync: Callable[[], None] | None = None):
        self.sync = sync

    def time(self, fn: Callable[[], Any]) -> float:
        start = time.perf_counter_ns()
        fn()
        if self.sync is not None:
            self.sync()
        return (time.perf_counter_ns() - start) / 1e6


class CudaEventTimer:
    """Device time between two CUDA events on the current stream (torch.cuda.Event API).

    Host wall time of the same calls is kept in `host_ms` (a runner on its own stream that
    returns host arrays is bracketed exactly by the host clock).
    """

    kind = "cuda-event"

    def __init__(self, device: int | str | None = None):
        import torch

        self._torch = torch
        self.device = torch.device(device) if isinstance(device, str) else device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)
        self.host_ms: list[float] = []

    def time(self, fn: Callable[[], Any]) -> float:
        stream = self._torch.cuda.current_stream(self.device)
        t0 = time.perf_counter_ns()
        self.start.record(stream)
        fn()
        self.end.record(stream)
        self.end.synchronize()
        self.host_ms.append((time.perf_counter_ns() - t0) / 1e6)
        return float(self.start.elapsed_time(self.end))


def make_timer(device: str) -> Timer:
    """CUDA events for a device starting with 'cuda', host perf_counter_ns otherwise."""
    if device.startswith("cuda"):
        return CudaEventTimer(device)
    return HostTimer()


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one call (one batch) in ms; percentiles by NumPy's linear interpolation."""

    count: int
    min: float
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def latency_stats(samples_ms: Sequence[float]) -> LatencyStats:
    """Summary of per-call latencies (ms). Raises ValueError on an empty sequence."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    p = np.percentile(a, PERCENTILES)
    return LatencyStats(count=int(a.size), min=float(a.min()), mean=float(a.mean()),
                        p50=float(p[0]), p90=float(p[1]), p95=float(p[2]), p99=float(p[3]),
                        max=float(a.max()), std=float(a.std()))


def throughput(images: int, wall_s: float) -> float:
    """Images per second over a wall-clock span (trtexec: queries / total host walltime)."""
    return images / wall_s if wall_s > 0 else float("nan")


def gflops(gflop_per_image: float | None, images_per_s: float | None) -> float | None:
    """Effective GFLOP/s: counted FLOPs per image x images per second."""
    if gflop_per_image is None or images_per_s is None:
        return None
    return gflop_per_image * images_per_s


# Stability (perf_analyzer's rule). CPU calls jitter more than GPU kernels: trtexec warns above 1 %
# coefficient of variation of GPU compute; dtk's CPU threshold is 5 %.
CV_THRESHOLD_CPU = 0.05
CV_THRESHOLD_GPU = 0.01
STABILITY_WINDOWS = 3  # the last 3 windows' means must agree ...
STABILITY_BOUND = 0.05  # ... within 5 % of their mean
# fewest calls for a percentile to be shown: p99 needs 100 calls (one sample above it), p95 20, p90 10
MIN_CALLS_FOR = {50: 1, 90: 10, 95: 20, 99: 100}


def cv(samples_ms: Sequence[float]) -> float:
    """Coefficient of variation (population std / mean) of per-call latency; nan under 2 samples."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size < 2 or a.mean() <= 0:
        return float("nan")
    return float(a.std() / a.mean())


def cv_threshold(device: str) -> float:
    return CV_THRESHOLD_GPU if device.startswith("cuda") else CV_THRESHOLD_CPU


def windows_agree(samples_ms: Sequence[float], window: int, windows: int = STABILITY_WINDOWS,
                  bound: float = STABILITY_BOUND) -> bool:
    """perf_analyzer's stop rule: the means of the last `windows` windows of `window` calls each
    lie within `bound` (fraction) of their average. False while there are too few calls."""
    if window < 1 or len(samples_ms) < window * windows:
        return False
    tail = np.asarray(samples_ms[len(samples_ms) - window * windows:], dtype=np.float64)
    means = tail.reshape(windows, window).mean(axis=1)
    centre = means.mean()
    return bool(centre > 0 and np.all(np.abs(means - centre) <= bound * centre))


def stability(samples_ms: Sequence[float], threshold: float, window: int) -> str:
    """'stable' (CV <= threshold), 'settled' (CV above it but the last windows agree) or 'unstable'."""
    c = cv(samples_ms)
    if len(samples_ms) < 2 or c <= threshold:
        return "stable"
    return "settled" if windows_agree(samples_ms, window) else "unstable"


def shown_percentile(p: int, count: int) -> bool:
    """Whether a p-th percentile of `count` calls means something (p99 of 3 calls does not)."""
    return count >= MIN_CALLS_FOR.get(p, 1)
