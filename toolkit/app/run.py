"""The `dtk run` job: deblur a frame tree into a mirrored tree of PNGs, overlapped and resumable.

Data flow: discover -> drop frames already done -> pipeline (decode/resize/blur, `prefetch`
batches ahead on its own threads) -> app.execute.deblur_batch -> `PngTreeSink`'s writer threads
(to uint8, resize back, atomic PNG), through app.execute's loop: while batch i computes, batch
i+1 is being decoded and batch i-1 written.

Sizes (the run's options are a `RunRequest`, app.request): by default every frame is deblurred at
its own size, in one pass where it fits the pixel budget (`max_tile_pixels`), else in the fewest
overlapping tiles that do, with one blur decision per frame (engines.tiled); the output has the
input's size and nothing is resized. `resize` is the seed's benchmark protocol: every frame goes
through the network at 256x448 and the output is resized back to the frame's own size with
Pillow's bilinear filter (antialiased when shrinking), unless `keep_size` keeps 256x448. `blur`
blurs the frame at the size it is deblurred at. `known_blur` (k3, k7, k11: the blur the user
knows the frames carry) tells the network that blur instead of letting it decide (engines.tiled;
k3 is a pass).

Safety (README "What dtk writes"): OUTPUT may not be INPUT, inside it, or contain it, nor hold a
symlink leading out of it, and no frame of INPUT may really be a file of OUTPUT; the manifest and
the lock are opened without following links and only as regular files; PNGs no manifest vouches
for are refused (never adopted as done) unless --overwrite. Each PNG is written to a temporary
file and renamed, so an interrupted run leaves whole files only (temporary files a killed run
left are removed at the next start). A lock (OUTPUT/.dtk-run.lock) keeps a second run out of
an OUTPUT while one works on it. Every batch the model returns is checked before anything is
written: the shape of its input and finite values, else its frames are failed with the reason.

Resume: OUTPUT/.dtk-run.json (the run manifest) records what made the outputs (`RunSettings`:
model file SHA-256, backend, precision, blur, known blur, sizes, dtk version). A run with other settings
is refused, naming them, unless `overwrite=True`, which redoes every frame. With the same
settings, a frame whose output exists and decodes fully as a PNG of the expected size is
skipped.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.memory import peak_rss_mb
from engines.base import Runner
from engines.spec import RunnerSpec
from engines.tiled import TiledResult, check_known_blur
from toolkit.app.execute import RunCounts, Timing, deblur_batch, execute, progress_counter
from toolkit.app.outputs import (
    RunSettings,
    check_frames_outside,
    check_manifest,
    check_output_dir,
    claim_output,
    output_lock,
    output_path_for,
    split_done,
)
from toolkit.app.request import RunRequest
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.convert import to_uint8_hwc
from toolkit.core.errors import DtkError
from toolkit.core.frames import (
    Frame,
    discover_frames,
    resize_frame,
    write_png_atomic,
)
from toolkit.core.pipeline import FrameBatch, PipelineConfig, open_pipeline


def write_output(path: Path, data: np.ndarray, size: tuple[int, int] | None) -> float:
    """Write one output atomically: `data` is an H x W x 3 uint8 image (native size) or a 3 x H x W
    float network output, converted and resized back to `size` (None: keep); returns seconds spent."""
    t0 = time.perf_counter()
    native = data.dtype == np.uint8 and data.ndim == 3 and data.shape[-1] == 3
    image = data if native else to_uint8_hwc(data)
    if size is not None and not native:
        image = resize_frame(image, size)
    write_png_atomic(path, image)
    return time.perf_counter() - t0


Written = tuple[Frame, np.ndarray, "tuple[int, int] | None"]  # frame, data, size for write_output


def batch_outputs(fb: FrameBatch, res: TiledResult, keep_size: bool
                  ) -> tuple[list[Written], list[tuple[str, str]]]:
    """A deblurred pipeline batch as ([(frame, data, size) for `write_output`], [(path, why)
    failed]): a --resize output goes back to its frame's size unless `keep_size`; nothing of a
    failed frame is written. The local run's and the Ray actors' one rule."""
    keep = fb.native or keep_size
    rows = list(zip(fb.frames, res.images, res.failures, fb.sizes, strict=True))
    return ([(f, im, None if keep else size) for f, im, _, size in rows if im is not None],
            [(str(f.path), why or "no output") for f, im, why, _ in rows if im is None])


def io_threads() -> int:
    """Decode and PNG-writer threads: 2 on a small machine, up to 8 on a big one (half the cores:
    on a GPU machine PNG encoding of native-size frames, not the network, bounds a run)."""
    return max(2, min(8, (os.cpu_count() or 2) // 2))


def pipeline_config(request: RunRequest, *, batch: int | None = None, workers: int = 2) -> PipelineConfig:
    """The pipeline a run reads through: frames at their own size, or resized to 256x448."""
    return PipelineConfig(batch_size=batch or request.batch, size=FRAME_SIZE if request.resize else None,
                          blur=request.blur, max_pixels=request.max_pixels, workers=workers)


def wall_shares(wall_s: float, **phases: float) -> dict[str, float]:
    """Each phase's share of the wall time, then "other" (what no phase covers); zeros without time."""
    if wall_s <= 0:
        return {**dict.fromkeys(phases, 0.0), "other": 0.0}
    shares = {name: t / wall_s for name, t in phases.items()}
    return {**shares, "other": max(0.0, 1.0 - sum(shares.values()))}


@dataclass
class RunSummary(RunCounts):
    """What a folder run did and where its time went (seconds; shares are of wall time); the
    counters every run keeps are RunCounts'."""

    input_dir: str
    output_dir: str
    frames_total: int
    plan_s: float = 0.0  # listing frames and checking existing outputs (resume)
    data_wait_s: float = 0.0  # main thread waiting for the pipeline's next batch
    write_wait_s: float = 0.0  # main thread waiting for the writer threads
    write_s: float = 0.0  # writer threads' own time (convert, resize, encode, fsync), summed
    keep_size: bool = False
    pipeline: str = "auto"
    mode: str = "native"
    peak_rss_mb: float | None = None  # the process's peak resident memory (MiB), model included
    multi_frame: list[tuple[str, int]] = field(default_factory=list)  # (path, images): the first deblurred
    videos: list[Any] = field(default_factory=list)  # the videos of INPUT (app.video_run.FolderVideo)

    @property
    def videos_failed(self) -> list[Any]:
        """The videos that failed, were not run, or left frames out."""
        return [v for v in self.videos if not v.ok]

    def shares(self) -> dict[str, float]:
        """Share of wall time waiting for data / computing (runner.infer) / waiting for writes / other."""
        return wall_shares(self.wall_s, data_wait=self.data_wait_s, compute=self.compute_s,
                           write_wait=self.write_wait_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "input_dir": self.input_dir, "output_dir": self.output_dir,
            "frames_total": self.frames_total, "written": self.written,
            "skipped_done": self.skipped_done, "failed": len(self.failed),
            "failures": [{"path": p, "reason": r} for p, r in self.failed],
            "interrupted": self.interrupted,
            "wall_s": self.wall_s, "plan_s": self.plan_s, "data_wait_s": self.data_wait_s,
            "compute_s": self.compute_s, "write_wait_s": self.write_wait_s, "write_thread_s": self.write_s,
            "frames_per_s": self.frames_per_s, "compute_frames_per_s": self.compute_frames_per_s,
            "end_to_end_vs_compute": (self.frames_per_s / self.compute_frames_per_s
                                      if self.compute_frames_per_s else None),
            "time_shares": self.shares(),
            "batch": self.batch, "blur": self.blur, "known_blur": self.known_blur,
            "keep_size": self.keep_size,
            "pipeline": self.pipeline, "backend": self.backend,
            "mode": self.mode, "tile_overlap": self.tile_overlap, "network_passes": self.network_passes,
            "head_passes": self.head_passes, "passed_whole": self.passed_whole,
            "tile_sizes": self.tile_sizes, "max_tile_pixels": self.max_tile_pixels,
            "peak_rss_mb": self.peak_rss_mb,
            "network_passes_per_s": self.network_passes / self.wall_s if self.wall_s > 0 else 0.0,
            "videos": [v.to_json() for v in self.videos],
            "multi_frame": [{"path": p, "images": n} for p, n in self.multi_frame],
        }


def run_job(input_dir: Path | str, output_dir: Path | str, spec: RunnerSpec, request: RunRequest, *,
            on_open: Callable[[Runner], None] | None = None,
            runner: Callable[[], Runner] | None = None, **hooks: Any) -> RunSummary:
    """`dtk run` on this machine: check INPUT/OUTPUT, the request and the manifest before the model
    loads, open the runner once (`on_open` sees it), deblur every frame (`run_frames`; `hooks`:
    its progress, on_tiles, stop), close the runner. `runner`: returns an open runner of `spec`
    that the caller owns (a Deblurrer's), called after the checks and left open."""
    check_output_dir(input_dir, output_dir)
    request.check()  # a typo fails before the model loads
    settings = RunSettings.for_spec(spec, request)
    found = find_frames(input_dir, output_dir, strict=request.strict)
    if Path(output_dir).is_dir():  # refuse before the model loads; run_frames checks again under the lock
        with output_lock(output_dir):
            check_manifest(output_dir, settings, request.overwrite)
    with contextlib.ExitStack() as stack:
        opened = runner() if runner is not None else stack.enter_context(spec.open())
        check_known_blur(opened, request.known_blur)  # before OUTPUT is claimed
        if on_open is not None:
            on_open(opened)
        return run_frames(input_dir, output_dir, opened, request, settings=settings, found=found, **hooks)


def find_frames(input_dir: Path | str, output_dir: Path | str, *, strict: bool = False
                ) -> tuple[list[Frame], list[tuple[str, str]]]:
    """(frames of INPUT, folders of it that could not be listed), checked before any model loads:
    DtkError for an INPUT without frames, an unlisted folder with `strict`, a frame that is really
    a file of OUTPUT."""
    unreadable: list[tuple[str, str]] = []
    frames = discover_frames(input_dir, unreadable)  # before OUTPUT is created: an empty INPUT changes none
    if unreadable and strict:
        raise DtkError(f"cannot read {unreadable[0][0]}: {unreadable[0][1]} (--strict)")
    check_frames_outside(frames, output_dir)
    return frames, unreadable


def run_frames(
    input_dir: Path | str,
    output_dir: Path | str,
    runner: Any,
    request: RunRequest | None = None,
    *,
    writers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_tiles: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    settings: RunSettings | None = None,
    found: tuple[list[Frame], list[tuple[str, str]]] | None = None,
) -> RunSummary:
    """Deblur every frame under `input_dir` into `output_dir` with `runner` as `request` says
    (default: `dtk run`'s defaults); see the module doc.

    progress(finished, total) is called as each PNG lands on disk, from the writer threads, one
    call at a time (finished counts written, failed and already-done frames). Setting `stop`
    (or Ctrl-C) ends the run after the current batch; everything written by then is complete.
    `settings` (what made the outputs) is checked against and recorded in OUTPUT's manifest;
    None (a runner object of unknown origin) skips the manifest. `on_tiles(n)` is called after
    each runner call with its images. `found`: what `find_frames` returned for these folders
    (else it is called here).
    """
    request = (request or RunRequest()).check()
    check_known_blur(runner, request.known_blur)
    writers = writers if writers is not None else io_threads()
    if writers < 1:
        raise DtkError(f"writers must be at least 1, got {writers}")
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_output_dir(input_dir, output_dir)
    frames, unreadable = found if found is not None else find_frames(input_dir, output_dir,
                                                                     strict=request.strict)
    with claim_output(output_dir, settings, request.overwrite) as claim:
        summary = _run_claimed(frames, input_dir, output_dir, runner, request, overwrite=claim["overwrite"],
                               writers=writers, progress=progress, on_tiles=on_tiles, stop=stop)
        summary.failed[:0] = unreadable  # folders left out are listed like unreadable frames
        claim["finished"] = not summary.interrupted and not unreadable
    return summary


def _run_claimed(frames: list[Frame], input_dir: Path, output_dir: Path, runner: Any, request: RunRequest, *,
                 overwrite: bool, writers: int, progress: Callable[[int, int], None] | None,
                 on_tiles: Callable[[int], None] | None, stop: threading.Event | None) -> RunSummary:
    """run_frames with OUTPUT locked and its manifest settled (`overwrite`: redo every frame)."""

    batch, blur, keep_size, strict = request.batch, request.blur, request.keep_size, request.strict
    known_blur, tiling = request.known_blur, request.tiling
    config = pipeline_config(request, workers=io_threads())
    t_plan = time.perf_counter()
    todo, done = split_done(frames, output_dir, keep_size=keep_size, overwrite=overwrite)
    summary = RunSummary(str(input_dir), str(output_dir), len(frames), skipped_done=len(done),
                         batch=batch, blur=blur, known_blur=known_blur, keep_size=keep_size,
                         pipeline=request.pipeline, backend=runner.describe(), mode=request.mode,
                         tile_overlap=None if request.resize else tiling.overlap,
                         max_tile_pixels=None if request.resize else tiling.budget)
    summary.plan_s = time.perf_counter() - t_plan
    tick = progress_counter(progress, len(frames), done=len(done))
    tick(0)
    if not todo:
        return summary

    device = "gpu" if runner.accepts_device_tensors else "cpu"

    def step(fb: FrameBatch) -> tuple[list[Written], list[tuple[str, str]]]:
        """Deblur one pipeline batch: ([(frame, data, size) to write], [(path, why) failed])."""
        summary.multi_frame.extend(fb.multi_frame)
        if fb.failed:
            if strict:
                path, reason = fb.failed[0]
                raise DtkError(f"cannot read frame {path}: {reason} (--strict; without it "
                               "unreadable frames are skipped and listed)")
            summary.failed.extend(fb.failed)
            tick(len(fb.failed))
        if len(fb) == 0:
            return [], []
        res = deblur_batch(runner, fb.images, tiling, batch=batch, known_blur=known_blur, on_tiles=on_tiles)
        summary.count(res)
        return batch_outputs(fb, res, keep_size)

    sink = PngTreeSink(output_dir, writers, summary, tick)
    timing = Timing()
    batches = open_pipeline(todo, config, kind=request.pipeline, device=device)
    try:
        summary.interrupted = execute(batches, step, sink, timing=timing, stop=stop)
    finally:
        sink.close()
        summary.data_wait_s, summary.compute_s = timing.data_wait_s, timing.compute_s
        summary.write_wait_s, summary.wall_s = timing.write_wait_s, timing.wall_s
        summary.peak_rss_mb = peak_rss_mb()
    if sink.errors:
        raise DtkError(f"cannot write {len(sink.errors)} output(s), first: {sink.errors[0]} "
                       "(check free space and permissions; rerun to resume)")
    return summary


class PngTreeSink:
    """Writes a folder run's outputs as PNGs under OUTPUT on `writers` threads; counts them and
    their failures into `summary`, `tick()` per frame landed."""

    def __init__(self, output_dir: Path, writers: int, summary: RunSummary, tick: Callable[..., None]):
        self.output_dir, self.summary, self.tick = output_dir, summary, tick
        self.pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="dtk-write")
        self.in_flight: list[tuple[Path, Future]] = []
        self.errors: list[str] = []

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def submit(self, fb: FrameBatch, result: tuple[list[Written], list[tuple[str, str]]]) -> None:
        outputs, failed = result
        if failed:
            self.summary.failed.extend(failed)
            self.tick(len(failed))
        for frame, data, size in outputs:
            path = output_path_for(frame, self.output_dir)
            fut = self.pool.submit(write_output, path, data, size)
            fut.add_done_callback(lambda _f: self.tick())
            self.in_flight.append((path, fut))

    def drain(self) -> None:
        """Wait for the PNGs submitted so far; count them."""
        for path, fut in self.in_flight:
            try:
                self.summary.write_s += fut.result()
                self.summary.written += 1
            except OSError as exc:
                self.errors.append(f"{path}: {exc}")
        self.in_flight.clear()

    def close(self) -> None:
        self.drain()
        self.pool.shutdown(wait=True)
