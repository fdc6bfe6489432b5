"""One loop for every run: a source's batches -> the runner -> a sink, overlapped.

`execute` is the spine of the folder run and the clip run: while batch i computes on the calling
thread, batch i+1 is being read (the pipeline's threads, or `prefetched` for a decoder) and batch
i-1 written (the sink's threads). Ctrl-C sets `stop` (the run ends after the current batch), a
second one interrupts; the time the calling thread waits for each stage is kept in `Timing`.

`deblur_images` and `deblur_batch` are the application's one way into engines.tiled: the folder
run, the clip run, the Ray actors, `Deblurrer` and `dtk eval` all deblur through them.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from engines.base import Runner
from engines.tiled import TiledResult, Tiling, batch_problem, check_known_blur, deblur_frames
from toolkit.core.convert import to_host
from toolkit.core.evidence import known_rows
from toolkit.core.tiles import DEFAULT_OVERLAP

B = TypeVar("B")
R = TypeVar("R")


def deblur_images(runner: Runner, images: Sequence[Any], tiling: Tiling, *, batch: int,
                  known_blur: str | None = None, on_tiles: Callable[[int], None] | None = None,
                  on_device: bool = False) -> TiledResult:
    """H x W x 3 uint8 frames at their own sizes -> engines.tiled.deblur_frames' result (each
    frame deblurred or passed, or why it failed). `known_blur`: told, not decided."""
    return deblur_frames(runner, images, tiling, batch=batch, on_tiles=on_tiles, on_device=on_device,
                         known_blur=known_blur)


def deblur_batch(runner: Runner, images: Any, tiling: Tiling, *, batch: int, known_blur: str | None = None,
                 on_tiles: Callable[[int], None] | None = None) -> TiledResult:
    """A pipeline batch: a list of H x W x 3 uint8 frames (native size: through `deblur_images`),
    or an N x 3 x 256 x 448 float batch (--resize: one `infer` call, its output checked for shape
    and finite values before anything is written; `images` then holds the 3 x H x W outputs)."""
    if isinstance(images, list):
        return deblur_images(runner, images, tiling, batch=batch, known_blur=known_blur, on_tiles=on_tiles)
    check_known_blur(runner, known_blur)
    n = int(images.shape[0])
    told = {"known": known_rows(known_blur, n)} if known_blur is not None else {}
    out = to_host(runner.infer(images, **told))
    problem = batch_problem(out, tuple(images.shape))
    sizes = {"x".join(str(d) for d in images.shape[2:]): n}
    if problem:
        return TiledResult([None] * n, [problem] * n, tiles=n, tile_sizes=sizes)
    if on_tiles is not None:
        on_tiles(n)
    return TiledResult(list(out), [None] * n, tiles=n, tile_sizes=sizes)


@dataclass(kw_only=True)
class RunCounts:
    """What every run reports, a folder's or a clip's (app.run.RunSummary, app.video_run.
    VideoRunSummary add what is theirs): frames written, already done and failed, the time, the
    options that shaped the frames, and the network's work (engines.tiled's counters)."""

    written: int = 0
    skipped_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (frame, why): unreadable, dropped, failed
    interrupted: bool = False
    wall_s: float = 0.0  # first batch requested -> last output written
    compute_s: float = 0.0  # the runner: tiles through it, stitching, host<->device copies (+ --blur)
    batch: int = 8
    blur: str | None = None
    known_blur: str | None = None
    backend: dict[str, Any] = field(default_factory=dict)
    tile_overlap: int | None = DEFAULT_OVERLAP  # None: --resize (no tiles)
    network_passes: int = 0  # images through the whole network: tiles at native size, else frames
    head_passes: int = 0  # tiles through the head only (one decision per frame of several tiles)
    passed_whole: int = 0  # frames passed as they are after their first (or only) tile
    tile_sizes: dict[str, int] = field(default_factory=dict)  # "HxW" -> network passes of that size
    max_tile_pixels: int | None = None  # native: the pixel budget of one runner call (engines.tiled)

    @property
    def frames_per_s(self) -> float:
        """End to end: frames written per second of wall time."""
        return self.written / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def compute_frames_per_s(self) -> float:
        """Compute only: frames written per second of compute time."""
        return self.written / self.compute_s if self.compute_s > 0 else 0.0

    def count(self, res: TiledResult) -> None:
        """Add a batch's work: network and head-only passes, frames passed whole, passes per size."""
        self.network_passes += res.tiles
        self.head_passes += res.evidence_tiles
        self.passed_whole += res.passed_frames
        for size, n in res.tile_sizes.items():
            self.tile_sizes[size] = self.tile_sizes.get(size, 0) + n


def progress_counter(progress: Callable[[int, int], None] | None, total: int, done: int = 0
                     ) -> Callable[..., None]:
    """`tick(n=1)`: n more frames finished (written, failed or already done), reported as
    `progress(finished, total)` from any thread, one call at a time (`total` grows with `finished`:
    a clip's frame count is the container's estimate)."""
    lock = threading.Lock()
    finished = done

    def tick(n: int = 1) -> None:
        nonlocal finished
        with lock:
            finished += n
            if progress is not None:
                progress(finished, max(total, finished))

    return tick


@dataclass
class Timing:
    """Where the calling thread's time went (seconds)."""

    wall_s: float = 0.0  # first batch requested -> last output written
    data_wait_s: float = 0.0  # waiting for the source's next batch
    compute_s: float = 0.0  # `step`: the runner, with host<->device copies and stitching
    write_wait_s: float = 0.0  # waiting for the sink to finish the previous batch (and, at the end, all)


class Sink(Protocol[B, R]):
    """Where a batch's results go; `submit` returns at once, `drain` waits for what was submitted."""

    def submit(self, batch: B, result: R) -> None: ...

    def drain(self) -> None: ...

    @property
    def failed(self) -> bool: ...


def execute(source: Iterator[B], step: Callable[[B], R], sink: Sink[B, R], *, timing: Timing,
            stop: threading.Event | None = None) -> bool:
    """Run every batch of `source` through `step` on this thread and hand each result to `sink`;
    True when the run was interrupted (`stop` set, Ctrl-C). Stops early when `sink.failed`. The
    sink has written everything submitted when this returns (or raises)."""
    stop = stop or threading.Event()
    interrupted = False
    t_start = time.perf_counter()
    try:
        with sigint_sets(stop):
            while not stop.is_set():
                t0 = time.perf_counter()
                item = next(source, None)
                timing.data_wait_s += time.perf_counter() - t0
                if item is None:
                    break
                t0 = time.perf_counter()
                result = step(item)
                timing.compute_s += time.perf_counter() - t0
                t0 = time.perf_counter()
                sink.drain()  # batch i-1 was written while batch i computed
                timing.write_wait_s += time.perf_counter() - t0
                if sink.failed:
                    break
                sink.submit(item, result)
            interrupted = stop.is_set()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        t0 = time.perf_counter()
        sink.drain()
        timing.write_wait_s += time.perf_counter() - t0
        timing.wall_s = time.perf_counter() - t_start
    return interrupted


@contextlib.contextmanager
def sigint_sets(stop: threading.Event):
    """First Ctrl-C sets `stop` (the run ends after the current batch); a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_END = object()


@dataclass
class _Raised:
    error: BaseException


def prefetched(make: Callable[[], Iterable[B]], depth: int = 2) -> Iterator[B]:
    """The items of `make()`, produced on a thread of their own up to `depth` ahead (a decoder
    overlapping the runner). An exception there is raised here; closing this iterator stops the
    thread and closes its iterable there (in the thread that runs it)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    done = threading.Event()

    def put(item: Any) -> bool:
        while not done.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        items = iter(make())
        try:
            for item in items:
                if not put(item):
                    break
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Raised(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    thread = threading.Thread(target=produce, name="dtk-read", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        done.set()
        thread.join()
