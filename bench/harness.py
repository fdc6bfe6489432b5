"""The benchmark loop (trtexec method): warm-up excluded, inputs rotated, many timed calls, a sweep.

One row = one runner (backend x variant) at one batch size, in one mode: 'compute' (pre-made
host arrays straight into `runner.infer`) or 'e2e' (frame files through the real pipeline:
decode, resize, then infer). Any object with the Runner protocol plugs in.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.memory import PeakMemory
from bench.timing import LatencyStats, Timer, gflops, latency_stats, make_timer, throughput
from engines.base import Runner
from toolkit import FRAME_SIZE
from toolkit.core.errors import DtkError
from toolkit.core.pipeline import PipelineConfig, open_pipeline

SCHEMA = "dtk.bench/1"
MODES = ("compute", "e2e")


@dataclass(frozen=True)
class BenchConfig:
    """How long and on what to measure. Stop rule: see `stop_rule`."""

    batches: tuple[int, ...] = (1, 4, 8)
    size: tuple[int, int] = FRAME_SIZE  # (H, W) of every input
    warmup_s: float = 1.0  # warm-up time per row, excluded (at least one call)
    duration_s: float | None = None  # measure at least this long
    iterations: int | None = None  # measure at least this many calls
    buffers: int = 4  # distinct input batches rotated call by call
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.batches or min(self.batches) < 1:
            raise DtkError(f"batch sizes must be positive integers, got {self.batches}")
        if self.warmup_s < 0:
            raise DtkError("--warmup must be >= 0 seconds")
        if self.duration_s is not None and self.duration_s <= 0:
            raise DtkError("--duration must be > 0 seconds")
        if self.iterations is not None and self.iterations < 1:
            raise DtkError("--iterations must be >= 1")
        if self.buffers < 1:
            raise DtkError("--buffers must be >= 1")
        if self.size[0] % 8 or self.size[1] % 8:
            raise DtkError(f"input size {self.size[0]}x{self.size[1]}: both must be multiples of 8")

    def stop_rule(self) -> tuple[float, int]:
        """(seconds, calls) both to reach: --iterations alone is exact; neither means 3 s and 3 calls."""
        if self.duration_s is None and self.iterations is None:
            return 3.0, 3
        return (self.duration_s or 0.0), (self.iterations or 1)

    def to_json(self) -> dict:
        seconds, calls = self.stop_rule()
        return {**asdict(self), "min_seconds": seconds, "min_iterations": calls}


@dataclass
class BenchRow:
    """One measured configuration. Latencies are per call (one batch), in ms."""

    backend: str
    variant: str
    batch: int
    mode: str
    device: str
    timer: str
    iterations: int
    wall_s: float
    images_per_s: float
    latency_ms: LatencyStats
    gflop_per_image: float | None = None
    gflops: float | None = None
    ceiling_gflops: float | None = None
    ceiling_pct: float | None = None
    peak_rss_mb: float | None = None
    peak_device_mb: float | None = None
    model: str = ""
    host_latency_ms: dict[str, float] | None = None  # host clock, when the timer is CUDA events
    phases_ms: dict[str, float] | None = None  # mean H2D / compute / D2H per call (CUDA runners)
    runner: dict[str, Any] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, int, str]:
        return (self.model, self.backend, self.variant, self.batch, self.mode)

    @property
    def ms_per_image(self) -> float:
        return 1e3 / self.images_per_s if self.images_per_s > 0 else float("nan")

    def to_json(self) -> dict:
        d = asdict(self)
        d["latency_ms"] = self.latency_ms.to_json()
        d["ms_per_image"] = self.ms_per_image
        return d


@dataclass
class BenchTarget:
    """One row group of the sweep: model label, backend, variant, device, how to open its runner
    (lazily: a backend that cannot run here becomes a skipped row) and counted GFLOP/image."""

    backend: str
    variant: str
    device: str
    open: Callable[[], Runner]
    model: str = ""
    gflop_per_image: float | None = None


def make_inputs(batch: int, config: BenchConfig, dtype: str = "float32") -> list[np.ndarray]:
    """`config.buffers` distinct N x 3 x H x W batches in [0, 1] (seeded), rotated call by call."""
    rng = np.random.default_rng(config.seed + batch)
    h, w = config.size
    return [rng.random((batch, 3, h, w), dtype=np.float32).astype(dtype, copy=False)
            for _ in range(config.buffers)]


def timed_loop(call: Callable[[int], Any], config: BenchConfig, timer: Timer) -> tuple[list[float], float]:
    """Warm up for `warmup_s` (>= 1 call, untimed), then time calls until the stop rule holds.

    `call(i)` does the i-th call. Returns per-call ms and the wall-clock seconds of the timed span.
    """
    i = 0
    start = time.perf_counter()
    while True:
        call(i)
        i += 1
        if time.perf_counter() - start >= config.warmup_s:
            break
    min_s, min_calls = config.stop_rule()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_calls or time.perf_counter() - start < min_s:
        samples.append(timer.time(lambda i=i: call(i)))
        i += 1
    return samples, time.perf_counter() - start


def bench_compute(runner: Any, batch: int, config: BenchConfig, *, backend: str, variant: str,
                  device: str = "cpu", timer: Timer | None = None) -> BenchRow:
    """Compute-only row: pre-made host batches rotated through `runner.infer`."""
    inputs = make_inputs(batch, config)
    timer = timer or make_timer(device)
    phases: list[dict[str, float]] = []

    def call(i: int) -> None:
        runner.infer(inputs[i % len(inputs)])
        split = runner.phases_ms if runner.reports_phases else None  # CUDA runners time their copies
        if split:
            phases.append(dict(split))

    with PeakMemory(device) as mem:
        samples, wall = timed_loop(call, config, timer)
    row = _row(runner, backend, variant, batch, "compute", device, timer, samples, wall, mem)
    row.phases_ms = mean_phases(phases[-len(samples):])
    return row


def mean_phases(phases: list[dict[str, float]]) -> dict[str, float] | None:
    """Per-phase means (ms) over the timed calls, or None when the runner reported none."""
    if not phases:
        return None
    return {k: float(np.mean([p[k] for p in phases if k in p])) for k in phases[0]}


def bench_e2e(runner: Any, batch: int, config: BenchConfig, frames: Sequence[Any], *, backend: str,
              variant: str, device: str = "cpu", pipeline: str = "auto") -> BenchRow:
    """End-to-end row: frame files -> `open_pipeline` -> `runner.infer`, cycling the files.

    A call's latency runs from asking the pipeline for the next batch to the runner's output
    (decoding overlaps inference through the pipeline's prefetch); host wall time.
    """

    if not frames:
        raise DtkError("--e2e needs frame files: none found")
    pconf = PipelineConfig(batch_size=batch, size=config.size)
    gpu = "gpu" if device.startswith("cuda") else "cpu"

    def batches() -> Iterator[Any]:
        for _ in itertools.count():
            yield from open_pipeline(frames, pconf, kind=pipeline, device=gpu)

    stream = batches()
    counted: list[int] = []

    def call(_i: int) -> None:
        b = next(stream)
        counted.append(len(b))
        runner.infer(b.images)

    timer = make_timer("cpu")
    with PeakMemory(device) as mem:
        samples, wall = timed_loop(call, config, timer)
    images = sum(counted[-len(samples):])
    row = _row(runner, backend, variant, batch, "e2e", device, timer, samples, wall, mem)
    row.images_per_s = throughput(images, wall)
    return row


def _row(runner: Any, backend: str, variant: str, batch: int, mode: str, device: str, timer: Timer,
         samples: list[float], wall: float, mem: PeakMemory) -> BenchRow:
    try:
        info = runner.describe()
    except Exception as exc:  # noqa: BLE001 - a describe() bug must not lose the measurement
        info = {"describe_error": str(exc)}
    return BenchRow(backend=backend, variant=variant, batch=batch, mode=mode, device=device,
                    timer=timer.kind, iterations=len(samples), wall_s=wall,
                    images_per_s=throughput(batch * len(samples), wall), latency_ms=latency_stats(samples),
                    peak_rss_mb=mem.peak_rss_mb, peak_device_mb=mem.peak_device_mb, runner=info,
                    samples_ms=[round(s, 4) for s in samples],
                    host_latency_ms=latency_stats(timer.host_ms[-len(samples):]).to_json()
                    if getattr(timer, "host_ms", None) else None)


def add_flops(row: BenchRow, gflop_per_image: float | None, ceiling_gflops: float | None) -> BenchRow:
    """Fill effective GFLOP/s and its share of the ceiling (%) from counted FLOPs."""
    row.gflop_per_image = gflop_per_image
    row.gflops = gflops(gflop_per_image, row.images_per_s)
    row.ceiling_gflops = ceiling_gflops
    if row.gflops is not None and ceiling_gflops:
        row.ceiling_pct = 100.0 * row.gflops / ceiling_gflops
    return row


@dataclass
class BenchReport:
    """All rows of a sweep plus what is needed to compare two reports: environment, config, FLOPs."""

    rows: list[BenchRow]
    config: dict[str, Any]
    environment: dict[str, Any]
    model: dict[str, Any]
    ceilings: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "created": self.created, "model": self.model, "config": self.config,
                "environment": self.environment, "ceilings": self.ceilings,
                "rows": [r.to_json() for r in self.rows], "skipped": self.skipped, "extra": self.extra}


Progress = Callable[[str], None]


def sweep(specs: Sequence[BenchTarget], config: BenchConfig, *, modes: Sequence[str] = ("compute",),
          frames: Sequence[Any] = (), pipeline: str = "auto",
          ceilings: dict[str, float] | None = None,
          progress: Progress | None = None) -> tuple[list[BenchRow], list[dict[str, str]]]:
    """Every spec x batch x mode. A runner that cannot be built is skipped with its reason.

    `ceilings` maps a device kind ('cpu', 'cuda') to its measured GFLOP/s.
    """
    rows: list[BenchRow] = []
    skipped: list[dict[str, str]] = []
    for spec in specs:
        name = f"{spec.model + ': ' if spec.model else ''}{spec.backend}/{spec.variant}"
        try:
            runner = spec.open()
        except DtkError as exc:
            skipped.append({"model": spec.model, "backend": spec.backend, "variant": spec.variant,
                            "reason": str(exc)})
            if progress:
                progress(f"skipped {name}: {exc}")
            continue
        ceiling = (ceilings or {}).get("cuda" if spec.device.startswith("cuda") else "cpu")
        try:
            for batch in config.batches:
                for mode in modes:
                    if progress:
                        progress(f"{name} batch {batch} {mode}")
                    if mode == "e2e":
                        row = bench_e2e(runner, batch, config, frames, backend=spec.backend,
                                        variant=spec.variant, device=spec.device, pipeline=pipeline)
                    else:
                        row = bench_compute(runner, batch, config, backend=spec.backend,
                                            variant=spec.variant, device=spec.device)
                    row.model = spec.model
                    rows.append(add_flops(row, spec.gflop_per_image, ceiling))
        finally:
            runner.close()
    return rows, skipped
