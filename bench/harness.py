"""The benchmark loop (trtexec method): warm-up excluded, inputs rotated, many timed calls, a sweep.

One row = one runner (backend x variant) at one batch size, in one mode: 'compute' (pre-made
host arrays straight into `runner.infer`) or 'e2e' (frame files through the real pipeline:
decode, blur (`BenchConfig.e2e_blur`, k7 by default: the work users ask for), then tiles as
`dtk run` cuts them). An e2e row counts the frames the model deblurred apart from those it passed
as they are (`deblurred_per_s`, `passed_per_s`) and the frames' pixels (`mpx_per_s`). Any object
with the Runner protocol plugs in. With a known blur (`BenchConfig.known_blur`, `dtk bench
--known-blur K`) e2e rows run told it, as `dtk run --known-blur K` does; a runner that cannot be
told gets 'could not run' rows.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.memory import PeakMemory
from bench.timing import (
    LatencyStats,
    Timer,
    cv,
    cv_threshold,
    gflops,
    latency_stats,
    make_timer,
    stability,
    throughput,
)
from engines.base import Runner
from engines.tiled import Tiling, check_known_blur, deblur_frames
from toolkit.core.bounds import check_number
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError
from toolkit.core.evidence import check_known_blur_name
from toolkit.core.kernels import blur as blur_image
from toolkit.core.kernels import get_kernel
from toolkit.core.pipeline import PipelineConfig, open_pipeline
from toolkit.core.tiles import fitting_overlap
from toolkit.core.video import cycle_batches

SCHEMA = "dtk.bench/1"
STATUS_RAN, STATUS_NOT_RUN, STATUS_FAILED_QUALITY = "ran", "could not run", "failed quality"
STATUSES = (STATUS_RAN, STATUS_NOT_RUN, STATUS_FAILED_QUALITY)
MODES = ("compute", "e2e")


DEFAULT_E2E_BLUR = "k7"


def e2e_blur(blur: str | None, known_blur: str | None = None) -> str | None:
    """`dtk bench --blur`: the kernel --e2e frames are blurred with; None (not given): the known
    blur, else DEFAULT_E2E_BLUR; "none": frames as given (None). DtkError for an unknown kernel."""
    if blur is None:
        return known_blur or DEFAULT_E2E_BLUR
    if blur.lower() == "none":
        return None
    get_kernel(blur)
    return blur


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
    # stability: above this CV (None: 5 % CPU, 1 % GPU) the run goes on, in windows of `window`
    # calls, until the last 3 windows' means agree within 5 %, at most `max_extend_s` more seconds
    # and `max_iterations` calls in all; a row that never settles is marked unstable
    cv_threshold: float | None = None
    window: int = 10
    max_extend_s: float = 10.0
    max_iterations: int = 1000
    known_blur: str | None = None  # e2e and quality run told this blur (k3, k7, k11), not deciding
    e2e_blur: str | None = DEFAULT_E2E_BLUR  # e2e frames blurred with this at their own size (None: as given)

    def __post_init__(self) -> None:
        if not self.batches or min(self.batches) < 1:
            raise DtkError(f"batch sizes must be positive integers, got {self.batches}")
        # finite too (toolkit.core.bounds): an inf duration or a nan warm-up would never end
        check_number("--warmup", self.warmup_s, min=0, hint="seconds")
        check_number("--duration", self.duration_s, above=0, hint="seconds")
        check_number("--iterations", self.iterations, min=1)
        check_number("--buffers", self.buffers, min=1)
        check_number("--cv-threshold", self.cv_threshold, above=0, hint="a fraction here")
        check_number("--max-extend", self.max_extend_s, min=0, hint="seconds")
        check_known_blur_name(self.known_blur)
        if self.e2e_blur is not None:
            get_kernel(self.e2e_blur)
        if self.size[0] % 8 or self.size[1] % 8:
            raise DtkError(f"input size {self.size[0]}x{self.size[1]}: both must be multiples of 8")

    def stop_rule(self) -> tuple[float, int]:
        """(seconds, calls) both to reach: --iterations alone is exact (before the stability extension);
        neither means 3 s and 3 calls."""
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
    images_per_s: float | None
    latency_ms: LatencyStats | None
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
    call_start_ms: list[float] = field(default_factory=list)  # start of each timed call, from the first
    status: str = "ran"  # ran | could not run | failed quality (see STATUSES)
    reason: str = ""  # why it could not run or failed quality
    cv: float | None = None  # coefficient of variation of the per-call latency
    cv_threshold: float | None = None
    stability: str | None = None  # stable | settled | unstable (bench.timing.stability)
    extended_calls: int = 0  # calls added by the stability rule
    quality: dict[str, Any] | None = None  # bench.quality: vs the fp32 reference and the sharp frames
    tiles_per_s: float | None = None  # e2e rows: network passes (tiles) per second; images_per_s: frames
    deblurred_per_s: float | None = None  # e2e rows: frames the model deblurred, per second of the row
    passed_per_s: float | None = None  # e2e rows: frames passed as they are (the gate's pass), per second
    mpx_per_s: float | None = None  # e2e rows: the frames' megapixels per second
    tile_sizes: dict[str, int] | None = None  # e2e rows: network passes per tile size ("HxW"), timed calls
    network_mpx_per_s: float | None = None  # e2e rows: megapixels through the network per second
    hints: list[str] = field(default_factory=list)

    @classmethod
    def not_run(cls, *, model: str, backend: str, variant: str, batch: int, mode: str, device: str,
                reason: str) -> BenchRow:
        """The row of a requested configuration that could not run here, with the reason."""
        return cls(backend=backend, variant=variant, batch=batch, mode=mode, device=device, timer="",
                   iterations=0, wall_s=0.0, images_per_s=None, latency_ms=None, model=model,
                   status=STATUS_NOT_RUN, reason=reason)

    @property
    def key(self) -> tuple[str, str, str, int, str]:
        return (self.model, self.backend, self.variant, self.batch, self.mode)

    @property
    def ms_per_image(self) -> float | None:
        return 1e3 / self.images_per_s if self.images_per_s else None

    def to_json(self) -> dict:
        d = asdict(self)
        d["latency_ms"] = self.latency_ms.to_json() if self.latency_ms is not None else None
        d["ms_per_image"] = self.ms_per_image
        if d["cv"] is not None and d["cv"] != d["cv"]:  # nan (under 2 calls) is not JSON
            d["cv"] = None
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


@dataclass
class Timed:
    """What `timed_loop` measured: per-call ms, each call's start (ms from the first), wall seconds."""

    samples: list[float]
    starts: list[float]
    wall_s: float
    extended_calls: int = 0


def timed_loop(call: Callable[[int], Any], config: BenchConfig, timer: Timer, *, threshold: float = 0.05,
               clock: Callable[[], float] = time.perf_counter) -> Timed:
    """Warm up for `warmup_s` (>= 1 call, untimed), time calls until the stop rule holds, then, while
    the latency is unstable (`bench.timing.stability` with `threshold`), go on up to the caps.

    `call(i)` does the i-th call.
    """
    i = 0
    start = clock()
    while True:
        call(i)
        i += 1
        if clock() - start >= config.warmup_s:
            break
    min_s, min_calls = config.stop_rule()
    samples: list[float] = []
    starts: list[float] = []
    start = clock()

    def one() -> None:
        nonlocal i
        starts.append((clock() - start) * 1e3)
        samples.append(timer.time(lambda i=i: call(i)))
        i += 1

    while len(samples) < min_calls or clock() - start < min_s:
        one()
    base = len(samples)
    extend_from = clock()
    while (stability(samples, threshold, config.window) == "unstable"
           and len(samples) < config.max_iterations and clock() - extend_from < config.max_extend_s):
        one()
    return Timed(samples, starts, clock() - start, len(samples) - base)


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

    threshold = config.cv_threshold or cv_threshold(device)
    with PeakMemory(device) as mem:
        timed = timed_loop(call, config, timer, threshold=threshold)
    row = _row(runner, backend, variant, batch, "compute", device, timer, timed, mem, threshold, config)
    row.phases_ms = mean_phases(phases[-len(timed.samples):])
    return row


def mean_phases(phases: list[dict[str, float]]) -> dict[str, float] | None:
    """Per-phase means (ms) over the timed calls, or None when the runner reported none."""
    if not phases:
        return None
    return {k: float(np.mean([p[k] for p in phases if k in p])) for k in phases[0]}


@dataclass(frozen=True)
class VideoClip:
    """--e2e on a video file: its frames decoded with PyAV as `dtk run CLIP` decodes them."""

    path: Path
    frames: int

    def __len__(self) -> int:
        return self.frames


def bench_e2e(runner: Any, batch: int, config: BenchConfig, frames: Sequence[Any] | VideoClip, *,
              backend: str, variant: str, device: str = "cpu", pipeline: str = "auto") -> BenchRow:
    """End-to-end row as `dtk run` works: frame files -> `open_pipeline` at their own size, blurred
    with `config.e2e_blur` -> tiles as `dtk run` cuts them (the runner's sizes), one decision per
    frame (engines.tiled), cycling the files.

    A call is one pipeline batch of `batch` frames; its latency runs from asking the pipeline for
    the batch to the last tile's output (decoding and blurring overlap inference through the
    pipeline's prefetch); host wall time. images/s counts frames, split into the frames deblurred
    and the frames passed as they are; `tiles_per_s` the network passes (head-only passes not
    counted). A `VideoClip` is decoded (and blurred) in the calling thread instead (as `dtk run
    CLIP`: no prefetch), so its latency includes decoding; encoding is not timed.
    """

    if isinstance(frames, VideoClip):
        clip = cycle_batches(frames.path, batch)
        if config.e2e_blur is not None:
            clip = ([blur_image(im, config.e2e_blur) for im in chunk] for chunk in clip)
        return _timed_e2e(runner, batch, config, clip, backend=backend, variant=variant, device=device)
    if not frames:
        raise DtkError("--e2e needs frame files: none found")
    pconf = PipelineConfig(batch_size=batch, size=None, blur=config.e2e_blur)
    gpu = "gpu" if device.startswith("cuda") else "cpu"

    # one pipeline spans many calls: restarting it every pass over a few frames would decode each
    # batch with no prefetch overlap and count that as the runner's time
    cycle = list(frames) * max(1, -(-64 * batch // len(frames)))

    def batches() -> Iterator[Any]:
        for _ in itertools.count():
            yield from open_pipeline(cycle, pconf, kind=pipeline, device=gpu)

    return _timed_e2e(runner, batch, config, (b.images for b in batches()), backend=backend,
                      variant=variant, device=device)


def _timed_e2e(runner: Any, batch: int, config: BenchConfig, stream: Iterator[Any], *, backend: str,
               variant: str, device: str) -> BenchRow:
    """Time calls of: the next batch of frames from `stream` (a list of H x W x 3 uint8 frames)
    through tiles and the runner."""
    tiling = Tiling(tuple(config.size), fitting_overlap(config.size))
    calls: list[tuple[int, int, float, dict[str, int]]] = []  # frames, passed, frame pixels, tile sizes

    def call(_i: int) -> None:
        images = next(stream)
        res = deblur_frames(runner, images, tiling, batch=batch, known_blur=config.known_blur)
        pixels = float(sum(int(im.shape[0]) * int(im.shape[1]) for im in images))
        calls.append((len(images), res.passed_frames, pixels, res.tile_sizes))

    timer = make_timer("cpu")
    threshold = config.cv_threshold or cv_threshold("cpu")
    with PeakMemory(device) as mem:
        timed = timed_loop(call, config, timer, threshold=threshold)
    timed_calls = calls[-len(timed.samples):]
    row = _row(runner, backend, variant, batch, "e2e", device, timer, timed, mem, threshold, config)
    frames = sum(c[0] for c in timed_calls)
    passed = sum(c[1] for c in timed_calls)
    sizes: dict[str, int] = {}
    for c in timed_calls:
        for size, n in c[3].items():
            sizes[size] = sizes.get(size, 0) + n
    network_px = sum(n * _area(size) for size, n in sizes.items())
    row.images_per_s = throughput(frames, timed.wall_s)
    row.deblurred_per_s = throughput(frames - passed, timed.wall_s)
    row.passed_per_s = throughput(passed, timed.wall_s)
    row.mpx_per_s = throughput(sum(c[2] for c in timed_calls) / 1e6, timed.wall_s)
    row.network_mpx_per_s = throughput(network_px / 1e6, timed.wall_s)
    row.tiles_per_s = throughput(sum(sizes.values()), timed.wall_s)
    row.tile_sizes = sizes
    return row


def _area(size: str) -> int:
    """Pixels of an "HxW" tile size."""
    h, w = size.split("x")
    return int(h) * int(w)


def _row(runner: Any, backend: str, variant: str, batch: int, mode: str, device: str, timer: Timer,
         timed: Timed, mem: PeakMemory, threshold: float, config: BenchConfig) -> BenchRow:
    samples, wall = timed.samples, timed.wall_s
    try:
        info = runner.describe()
    except Exception as exc:  # noqa: BLE001 - a describe() bug must not lose the measurement
        info = {"describe_error": str(exc)}
    return BenchRow(backend=backend, variant=variant, batch=batch, mode=mode, device=device,
                    timer=timer.kind, iterations=len(samples), wall_s=wall,
                    images_per_s=throughput(batch * len(samples), wall), latency_ms=latency_stats(samples),
                    peak_rss_mb=mem.peak_rss_mb, peak_device_mb=mem.peak_device_mb, runner=info,
                    samples_ms=[round(s, 4) for s in samples],
                    call_start_ms=[round(s, 4) for s in timed.starts], cv=cv(samples),
                    cv_threshold=threshold, stability=stability(samples, threshold, config.window),
                    extended_calls=timed.extended_calls,
                    host_latency_ms=latency_stats(timer.host_ms[-len(samples):]).to_json()
                    if getattr(timer, "host_ms", None) else None)


def add_flops(row: BenchRow, gflop_per_image: float | None, ceiling_gflops: float | None,
              size: tuple[int, int] = FRAME_SIZE) -> BenchRow:
    """Fill effective GFLOP/s and its share of the ceiling (%) from counted FLOPs (per network
    input of `size`; e2e rows count the pixels through the network, whatever the tile sizes:
    the network's FLOPs grow with its input's pixels; head-only passes left out)."""
    row.gflop_per_image = gflop_per_image
    if row.network_mpx_per_s is not None:
        per_s = row.network_mpx_per_s * 1e6 / (size[0] * size[1])  # 256x448-input equivalents per second
    else:
        per_s = row.tiles_per_s if row.tiles_per_s is not None else row.images_per_s
    row.gflops = gflops(gflop_per_image, per_s)
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
Quality = Callable[[BenchTarget, Runner], dict[str, Any]]


def not_run_rows(entries: Sequence[dict[str, str]], batches: Sequence[int],
                 modes: Sequence[str]) -> list[BenchRow]:
    """A 'could not run' row per entry (model, backend, variant, device, reason) x batch x mode."""
    return [BenchRow.not_run(model=e.get("model", ""), backend=e["backend"], variant=e["variant"], batch=b,
                             mode=m, device=e.get("device", ""), reason=e["reason"])
            for e in entries for b in batches for m in modes]


def sweep(specs: Sequence[BenchTarget], config: BenchConfig, *, modes: Sequence[str] = ("compute",),
          frames: Sequence[Any] | VideoClip = (), pipeline: str = "auto",
          ceilings: dict[str, float] | None = None, quality: Quality | None = None,
          progress: Progress | None = None) -> tuple[list[BenchRow], list[dict[str, str]]]:
    """Every spec x batch x mode is a row. A runner that cannot be built, or a measurement that
    fails, gives 'could not run' rows with the reason (also listed in the second value).

    `ceilings` maps a device kind ('cpu', 'cuda') to its measured GFLOP/s. `quality(target, runner)`
    (once per runner) returns the quality columns shared by that runner's rows.
    """
    rows: list[BenchRow] = []
    skipped: list[dict[str, str]] = []
    for spec in specs:
        name = f"{spec.model + ': ' if spec.model else ''}{spec.backend}/{spec.variant}"
        entry = {"model": spec.model, "backend": spec.backend, "variant": spec.variant, "device": spec.device}
        try:
            runner = spec.open()
            try:
                check_known_blur(runner, config.known_blur)
            except DtkError:
                runner.close()
                raise
        except DtkError as exc:
            skipped.append({**entry, "reason": str(exc)})
            rows += not_run_rows([skipped[-1]], config.batches, modes)
            if progress:
                progress(f"could not run {name}: {exc}")
            continue
        ceiling = (ceilings or {}).get("cuda" if spec.device.startswith("cuda") else "cpu")
        mine: list[BenchRow] = []
        try:
            for batch in config.batches:
                for mode in modes:
                    if progress:
                        progress(f"{name} batch {batch} {mode}")
                    try:
                        if mode == "e2e":
                            row = bench_e2e(runner, batch, config, frames, backend=spec.backend,
                                            variant=spec.variant, device=spec.device, pipeline=pipeline)
                        else:
                            row = bench_compute(runner, batch, config, backend=spec.backend,
                                                variant=spec.variant, device=spec.device)
                    except DtkError as exc:
                        reason = f"failed at batch {batch}: {exc}"
                        skipped.append({**entry, "reason": reason})
                        row = BenchRow.not_run(model=spec.model, backend=spec.backend, variant=spec.variant,
                                               batch=batch, mode=mode, device=spec.device, reason=reason)
                    row.model = spec.model
                    mine.append(add_flops(row, spec.gflop_per_image, ceiling, config.size))
            if quality is not None and any(r.status == STATUS_RAN for r in mine):
                if progress:
                    progress(f"{name} quality")
                q = quality(spec, runner)
                for r in mine:
                    if r.status == STATUS_RAN:
                        r.quality = q
        finally:
            runner.close()
        rows += mine
    return rows, skipped
