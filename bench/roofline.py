"""The compute ceiling: measured matrix-multiply GFLOP/s through torch (CPU, or a CUDA device).

An n x n x n matmul is 2 n^3 FLOP. After `warmup` untimed products, products are timed until
`duration_s` has passed (at least `min_repeats`); the ceiling is the best repeat (a peak, not a
mean: contention only ever lowers it), and the median is reported beside it. On CUDA, TF32 is
switched off for fp32 so the ceiling is true fp32; fp16/bf16 ceilings are separate figures.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from toolkit.core.errors import DtkError

DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class Ceiling:
    """A measured matmul ceiling for one device and dtype."""

    device: str
    dtype: str
    n: int
    threads: int
    repeats: int
    best_gflops: float
    median_gflops: float

    def to_json(self) -> dict:
        return asdict(self)


def measure_ceiling(device: str = "cpu", dtype: str = "float32", n: int | None = None,
                    duration_s: float = 2.0, min_repeats: int = 3, warmup: int = 1) -> Ceiling:
    """Measure the matmul ceiling on `device` ('cpu' or 'cuda[:i]') in `dtype`."""
    import torch

    if dtype not in DTYPES:
        raise DtkError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise DtkError("no CUDA device: measure the CPU ceiling with --device cpu")
    n = n or (8192 if cuda else 2048)
    tdtype = getattr(torch, dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.rand(n, n, generator=gen).to(device=device, dtype=tdtype)
    b = torch.rand(n, n, generator=gen).to(device=device, dtype=tdtype)
    out = torch.empty(n, n, device=device, dtype=tdtype)
    times: list[float] = []
    tf32 = torch.backends.cuda.matmul.allow_tf32 if cuda else None
    try:
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
        for _ in range(warmup):
            torch.matmul(a, b, out=out)
        _sync(torch, cuda)
        start = time.perf_counter()
        while len(times) < min_repeats or time.perf_counter() - start < duration_s:
            times.append(_time_one(torch, cuda, a, b, out))
    finally:
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    gflop = 2.0 * n**3 / 1e9
    t = np.asarray(times)
    return Ceiling(device=device, dtype=dtype, n=n, threads=torch.get_num_threads(), repeats=len(times),
                   best_gflops=float(gflop / t.min()), median_gflops=float(gflop / np.median(t)))


def _sync(torch, cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def _time_one(torch, cuda: bool, a, b, out) -> float:
    """Seconds for one product: CUDA events on GPU, perf_counter on CPU."""
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b, out=out)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter_ns()
    torch.matmul(a, b, out=out)
    return (time.perf_counter_ns() - t0) / 1e9
