"""`dtk run CLIP -o OUT.mp4` (or `--frames-out DIR`): a video through dtk run's deblur path.

Data flow, through the folder run's loop (app.execute: decode, compute and encode overlapped):
decode on its own thread (core.video: RGB with the stream's matrix and range; audio packets handed
on untouched; or DALI's video reader with PyAV's timestamps and audio, core.pipeline.dali_video, as
`--pipeline` chooses) -> optional seed blur -> app.execute.deblur_images (each frame at its own
size in one pass or overlapping tiles, one blur decision per frame, or told the blur the user
knows: --known-blur) -> `VideoSink` on its own thread: encode (core.videowrite: the input's pts,
time_base, size and colour tags; audio copied) or one PNG per frame (`DIR/<index:08d>.png`).

Safety and resume:
- OUT.mp4 is never INPUT (toolkit.core.safepaths). The video is written to
  `.OUT.mp4.XXXXXXXX.tmp` beside it and renamed when every frame is encoded: a failed or
  interrupted run leaves no file under the final name (Ctrl-C removes the temporary file; a killed
  process leaves it, and the next run into OUT.mp4 removes it). `OUT.mp4.dtk-run.json`, written
  after the rename, records the settings (the run manifest) and what was written (bytes, frames,
  size, codec): a rerun with the same settings finds the video done and skips it when it still
  is that video (else redoes it, saying so); one made otherwise, or not by dtk, is replaced only
  with --overwrite (`video_output_done`, the rule folder runs use too). One run at a time writes
  OUT.mp4 (the lock `.OUT.mp4.dtk-run.lock`, there while it runs).
- By default a rerun starts from the first frame. With --resumable each deblurred frame is also
  kept as a PNG in the work folder `.OUT.mp4.dtk-frames/` (its own manifest and lock, the frame
  folder's resume rule): a rerun decodes the clip again, re-encodes every frame, and deblurs only
  frames without a complete PNG there; the folder is deleted once the video is in place.
- --frames-out DIR resumes like a frame folder: DIR/.dtk-run.json records the settings, and a
  rerun with the same ones decodes the clip again but deblurs only frames whose PNG is missing
  or incomplete.
- A file that is no readable video, has no video stream or no frame in it, or that the encoder
  cannot take (its size, its pixel format), is an error before the model loads (exit 2). A packet
  the decoder rejects mid-stream, a frame it flags corrupt, or a frame the container counts that
  never comes out of the demuxer (core.video.accounted) is listed and left out (the video keeps
  the other frames at their own timestamps), exit 3; --strict stops. A frame of another size than
  the stream's fails a video output (one size per video); PNG frames keep each frame's size.

A folder (`dtk run FOLDER -o OUTPUT`, `run_tree_job`) may hold videos beside its frames: the frames
are run as app.run runs them, then each video INPUT/<path> through the path above into
OUTPUT/<path> (same name and container, the same encoder options for all), one runner for all.
Each video's output is checked as a single video's, before the model loads; one whose manifest
records the same settings and no frame left out, and verifies, is skipped (already done). A video
that cannot be read, or fails in any way while it runs, is listed and the others are run (exit 3).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Runner
from engines.spec import RunnerSpec
from engines.tiled import check_known_blur
from toolkit.app.execute import (
    RunCounts,
    Timing,
    deblur_images,
    execute,
    prefetched,
    progress_counter,
    sigint_sets,
)
from toolkit.app.outputs import (
    RunSettings,
    check_frames_outside,
    check_manifest,
    check_output_dir,
    claim_output,
    claim_video,
    frame_png,
    is_done,
    output_lock,
    remove_work_dir,
    video_output_done,
    work_dir_for,
    write_video_manifest,
)
from toolkit.app.request import RunRequest
from toolkit.app.run import RunSummary, find_frames, run_frames, wall_shares
from toolkit.core.errors import DtkError
from toolkit.core.frames import (
    IMAGE_EXTENSIONS,
    Frame,
    read_frame,
    tree_files,
    write_png_atomic,
)
from toolkit.core.kernels import blur as blur_image
from toolkit.core.pipeline.dali_video import choose_decoder, dali_frames
from toolkit.core.video import DecodedFrame, VideoInfo, VideoReader, accounted, probe
from toolkit.core.videowrite import EncodeSettings, VideoWriter, check_encoder, encode_settings


@dataclass(frozen=True)
class VideoJob:
    """A checked video run: what the input holds and what is written where."""

    input: Path
    info: VideoInfo
    output: Path | None = None  # a video file
    frames_out: Path | None = None  # a folder of PNGs
    encode: EncodeSettings | None = None
    work_dir: Path | None = None  # --resumable: deblurred frames kept as PNGs until the video is done
    decoder: str = "pyav"  # pyav | dali-cpu | dali-gpu (core.pipeline.dali_video.choose_decoder)

    @property
    def png_dir(self) -> Path | None:
        """Where deblurred frames are written as PNGs (and found done on resume), if anywhere."""
        return self.frames_out or self.work_dir

    def settings_json(self, with_encoding: bool = True) -> dict[str, Any]:
        """The video part of the run settings (manifest): the stream read and how it is written
        (`with_encoding` False: the PNGs only, for the work folder; another --crf reuses them)."""
        src = self.info.to_json()
        src.pop("path")
        src.pop("streams_not_copied")  # reported, not a setting (manifests before it compare equal)
        doc = {"source": src, "output": self.encode.to_json() if self.encode and with_encoding else "png"}
        if self.decoder != "pyav":  # DALI's RGB differs slightly from PyAV's; PyAV runs' manifests unchanged
            doc["decoder"] = self.decoder
        return doc


def plan_video(input_path: Path | str, *, output: Path | None, frames_out: Path | None,
               codec: str | None = None, crf: int | None = None, pix_fmt: str | None = None,
               max_pixels: int | None = None, resumable: bool = False,
               info: VideoInfo | None = None, pipeline: str = "fallback",
               in_folder: bool = False) -> VideoJob:
    """Probe the input (unless `info` is its probe), choose its decoder for `pipeline` (auto|dali|
    fallback; `in_folder`: choose_decoder's rule for a video among frames) and settle the output's
    encoding (DtkError for a bad input or option): everything that can fail before the model loads.
    Paths are checked in app.preflight (`check_video_output`)."""
    info = info or probe(input_path)
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise DtkError(f"{input_path}: frames of {info.width}x{info.height} are over --max-pixels "
                       f"{max_pixels}")
    enc = encode_settings(output, info, codec, crf, pix_fmt) if output is not None else None
    work = work_dir_for(output) if resumable and output is not None else None
    decoder = choose_decoder(info, pipeline, in_folder=in_folder)
    return VideoJob(Path(input_path), info, output, frames_out, enc, work, decoder)


@dataclass
class VideoRunSummary(RunCounts):
    """What a video run did and where its time went (seconds; shares are of wall time); the
    counters every run keeps are RunCounts' (`failed` lists dropped frames too)."""

    input: str
    output: str
    frames_total: int
    video: dict[str, Any]
    encode: dict[str, Any] | None
    dropped: int = 0  # frames the container holds that the demuxer never gave (listed in `failed`)
    warnings: list[str] = field(default_factory=list)  # streams not copied, an output redone...
    decode_s: float = 0.0  # waiting for the decoder's thread (demux, decode, conversion to RGB)
    encode_s: float = 0.0  # waiting for the sink's thread (conversion from RGB, encode, mux or PNGs)
    decoder: str = "pyav"  # which decoder ran: pyav | dali-cpu | dali-gpu

    def shares(self) -> dict[str, float]:
        """Share of wall time decoding / computing / encoding / other."""
        return wall_shares(self.wall_s, decode=self.decode_s, compute=self.compute_s, encode=self.encode_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input, "output": self.output, "kind": "video",
            "frames_total": self.frames_total, "written": self.written, "skipped_done": self.skipped_done,
            "failed": len(self.failed), "failures": [{"frame": p, "reason": r} for p, r in self.failed],
            "dropped_frames": self.dropped, "warnings": self.warnings,
            "streams_not_copied": self.video.get("streams_not_copied", []),
            "interrupted": self.interrupted, "wall_s": self.wall_s, "decode_s": self.decode_s,
            "compute_s": self.compute_s, "encode_s": self.encode_s, "frames_per_s": self.frames_per_s,
            "compute_frames_per_s": self.compute_frames_per_s, "time_shares": self.shares(),
            "video": self.video, "encode": self.encode, "batch": self.batch, "blur": self.blur,
            "known_blur": self.known_blur,
            "backend": self.backend, "mode": "native", "tile_overlap": self.tile_overlap,
            "network_passes": self.network_passes, "head_passes": self.head_passes,
            "passed_whole": self.passed_whole, "tile_sizes": self.tile_sizes,
            "max_tile_pixels": self.max_tile_pixels, "decoder": self.decoder,
        }


def video_settings(spec: RunnerSpec, job: VideoJob, request: RunRequest,
                   with_encoding: bool = True) -> RunSettings:
    """The run settings of a video job (the manifest's)."""
    base = RunSettings.for_spec(spec, request)
    return RunSettings(**{**base.__dict__, "video": job.settings_json(with_encoding)})


def check_png_dir(job: VideoJob, spec: RunnerSpec, request: RunRequest) -> RunSettings:
    """The settings of the job's PNGs (--frames-out or --resumable's work folder), checked against
    the folder's manifest when it exists (DtkError for other settings, unless `overwrite`)."""
    png_settings = video_settings(spec, job, request, with_encoding=False)
    if job.png_dir is not None and job.png_dir.is_dir():
        with output_lock(job.png_dir):
            check_manifest(job.png_dir, png_settings, request.overwrite)
    return png_settings


def run_video_job(job: VideoJob, spec: RunnerSpec, request: RunRequest, *,
                  on_open: Callable[[Runner], None] | None = None,
                  runner: Callable[[], Runner] | None = None, **hooks: Any) -> VideoRunSummary:
    """`dtk run CLIP` on this machine: the manifest checked before the model loads, the runner
    opened once (`on_open` sees it; `runner`: an open one the caller owns), the clip deblurred
    (`deblur_video`; `hooks`: its progress, on_tiles, stop)."""
    request.check()
    settings = video_settings(spec, job, request)
    png_settings = check_png_dir(job, spec, request)
    warnings = streams_warnings(job)
    with contextlib.ExitStack() as stack:
        if job.output is not None:
            done, untrusted = stack.enter_context(claim_video(
                job.output, settings, inputs=[job.input, spec.model], overwrite=request.overwrite,
                resumable=job.work_dir is not None))
            if done:
                return already_done(job, spec, request, warnings=warnings)
            warnings += [untrusted] if untrusted else []
        opened = runner() if runner is not None else stack.enter_context(spec.open())
        check_known_blur(opened, request.known_blur)  # before a frame is written
        if on_open is not None:
            on_open(opened)
        if job.png_dir is not None:
            with claim_output(job.png_dir, png_settings, request.overwrite) as claim:
                summary = deblur_video(job, opened, request, redo_all=claim["overwrite"], **hooks)
                claim["finished"] = not summary.interrupted
            if job.work_dir is not None and not summary.interrupted:
                remove_work_dir(job.work_dir)
        else:
            summary = deblur_video(job, opened, request, **hooks)
        summary.warnings[:0] = warnings
        if job.output is not None and not summary.interrupted:
            write_video_manifest(job.output, settings, source=job.input, written=summary.written,
                                 failed=len(summary.failed))
        return summary


def streams_warnings(job: VideoJob) -> list[str]:
    """One line per stream of the input no output of `job` holds (a second video stream,
    subtitles, data; a video output copies the audio, PNG frames hold none)."""
    kept = "PNG frames hold the first video stream only" if job.output is None else (
        "a video output holds the first video stream and the audio")
    return [f"{job.input}: {note} is not copied ({kept})" for note in job.info.not_copied]


def already_done(job: VideoJob, spec: RunnerSpec, request: RunRequest,
                 warnings: list[str] | None = None) -> VideoRunSummary:
    """The summary of a rerun that found the video done with its settings: nothing decoded or run."""
    info = job.info
    return VideoRunSummary(str(job.input), str(job.output), info.frames, info.to_json(),
                           job.encode.to_json() if job.encode else None, skipped_done=info.frames,
                           warnings=list(warnings or []), batch=request.batch, blur=request.blur,
                           known_blur=request.known_blur, tile_overlap=request.tile_overlap,
                           decoder=job.decoder, backend={"backend": spec.backend, "model": str(spec.model)})


@dataclass
class VideoItem:
    """A frame of the clip as the run meets it: to deblur (`image`), already done (its PNG, resume),
    or failed (`reason`: corrupt or dropped)."""

    frame: DecodedFrame
    done: Path | None = None


def video_batches(job: VideoJob, frames: Iterator[DecodedFrame], *, batch: int, strict: bool,
                  redo_all: bool, encoding: bool) -> Iterator[list[VideoItem]]:
    """The clip's frames in order, in lists holding `batch` frames to deblur each (frames already
    done or failed ride along in their place: the encoder takes them in order). DtkError for a
    failed frame with `strict`, or a size change mid-stream when encoding a video."""
    info = job.info
    pending: list[VideoItem] = []
    todo = 0
    for item in frames:
        if item.image is None and strict:
            raise DtkError(f"{job.input}: frame {item.index}: {item.reason} (--strict; without "
                           "it a corrupt or dropped frame is left out and listed)")
        if item.image is not None:
            size = item.image.shape[:2]
            if size != info.size and encoding:
                raise DtkError(f"{job.input}: frame {item.index} (pts {item.pts}) is "
                               f"{size[1]}x{size[0]}, the stream {info.width}x{info.height}: its size "
                               "changes mid-stream and a video has one size; write its frames with "
                               "--frames-out DIR (each PNG at its frame's size), or split the clip where "
                               "the size changes")
            png = frame_png(job.png_dir, item.index) if job.png_dir is not None else None
            if not redo_all and png is not None and is_done(png, size):
                pending.append(VideoItem(item, done=png))
                continue
            todo += 1
        pending.append(VideoItem(item))
        if todo >= batch:
            yield pending
            pending, todo = [], 0
    if pending:
        yield pending


class VideoSink:
    """Writes a clip's frames in order on one thread of its own: into the encoder (and the input's
    audio packets beside them) and/or as PNGs (--frames-out, --resumable); counts them into
    `summary`, `tick()` per frame. `close(ok)` renames the finished video into place, else deletes
    its temporary file."""

    def __init__(self, job: VideoJob, reader: VideoReader, summary: VideoRunSummary,
                 tick: Callable[[], None]):
        self.job, self.summary, self.tick = job, summary, tick
        self.writer = (VideoWriter(job.output, job.info, job.encode, reader.audio_streams)
                       if job.output is not None and job.encode is not None else None)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dtk-encode")
        self.in_flight: list[Future] = []
        self.lock = threading.Lock()  # the decoder's thread adds audio packets to `in_flight`
        self.error: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def copy_packet(self) -> Callable[[Any], None] | None:
        """For the decoder: an input packet (audio) to mux as it is, on the sink's thread."""
        if self.writer is None:
            return None
        writer = self.writer
        return lambda packet: self._queue(writer.copy_packet, packet)

    def _queue(self, fn: Callable[..., None], *args: Any) -> None:
        with self.lock:
            self.in_flight.append(self.pool.submit(fn, *args))

    def submit(self, items: list[VideoItem], images: list[tuple[np.ndarray | None, str | None]]) -> None:
        deblurred = iter(images)
        for it in items:
            f = it.frame
            if f.image is None:
                self.summary.failed.append((f"frame {f.index} (pts {f.pts})", f.reason or "corrupt"))
                self.summary.dropped += f.dropped
                self.tick()
            elif it.done is not None:
                self.summary.skipped_done += 1
                self._queue(self._put, f, None, it.done)
            else:
                image, why = next(deblurred)
                if image is None:
                    self.summary.failed.append((f"frame {f.index} (pts {f.pts})", why or "no output"))
                    self.tick()
                else:
                    self.summary.written += 1
                    self._queue(self._put, f, image, None)

    def _put(self, frame: DecodedFrame, image: np.ndarray | None, done: Path | None) -> None:
        """Write a deblurred frame as a PNG (--frames-out, --resumable) and into the video; a frame
        already done is read from its PNG, for the video only."""
        if done is not None:
            if self.writer is not None:
                self.writer.write(read_frame(done), frame.pts)
        else:
            if self.job.png_dir is not None:
                write_png_atomic(frame_png(self.job.png_dir, frame.index), image)
            if self.writer is not None:
                self.writer.write(image, frame.pts)
        self.tick()

    def drain(self) -> None:
        """Wait for what was submitted; keep the first error (the run stops, `close` raises it)."""
        with self.lock:
            futures, self.in_flight = self.in_flight, []
        for fut in futures:
            exc = fut.exception()
            if exc is not None and self.error is None:
                self.error = exc

    def close(self, ok: bool) -> None:
        """Wait for every write, then commit the video (`ok` and no error) or delete it."""
        self.drain()
        self.pool.shutdown(wait=True)
        self.drain()
        if self.writer is not None:
            if ok and self.error is None:
                self.writer.commit()
            else:
                self.writer.abort()
        if self.error is not None:
            raise self.error


def deblur_video(job: VideoJob, runner: Runner, request: RunRequest | None = None, *, redo_all: bool = True,
                 progress: Callable[[int, int], None] | None = None,
                 on_tiles: Callable[[int], None] | None = None,
                 stop: threading.Event | None = None) -> VideoRunSummary:
    """Decode, deblur and write every frame of `job` with an open `runner` as `request` says (see
    the module doc): decoding on a thread of its own, the runner on this one, encoding on the
    sink's, overlapped (toolkit.app.execute). `progress(finished, total)` after each frame
    (written, failed or already done); setting `stop` (or Ctrl-C) ends the run after the current
    batch: no video is written then. `redo_all`: deblur frames whose PNG is done too."""
    request = request or RunRequest()
    tiling, batch, blur, known_blur = request.tiling, request.batch, request.blur, request.known_blur
    info = job.info
    summary = VideoRunSummary(str(job.input), str(job.output or job.frames_out), info.frames, info.to_json(),
                              job.encode.to_json() if job.encode else None, batch=batch, blur=blur,
                              known_blur=known_blur, backend=runner.describe(), tile_overlap=tiling.overlap,
                              decoder=job.decoder, max_tile_pixels=tiling.budget)
    tick = progress_counter(progress, info.frames)

    def step(items: list[VideoItem]) -> list[tuple[np.ndarray | None, str | None]]:
        images = [it.frame.image for it in items if it.frame.image is not None and it.done is None]
        if not images:
            return []
        if blur is not None:
            images = [blur_image(im, blur) for im in images]
        res = deblur_images(runner, images, tiling, batch=batch, known_blur=known_blur, on_tiles=on_tiles)
        summary.count(res)
        return list(zip(res.images, res.failures, strict=True))

    timing = Timing()
    ok = False
    with VideoReader(job.input, info) as reader:
        sink = VideoSink(job, reader, summary, tick)

        def frames() -> Iterator[list[VideoItem]]:
            decoded = (reader.frames(on_packet=sink.copy_packet()) if job.decoder == "pyav" else
                       accounted(dali_frames(reader, job.decoder.removeprefix("dali-"),
                                             on_packet=sink.copy_packet()), info))
            return video_batches(job, decoded, batch=batch, strict=request.strict, redo_all=redo_all,
                                 encoding=sink.writer is not None)

        try:
            summary.interrupted = execute(prefetched(frames), step, sink, timing=timing, stop=stop)
            ok = not summary.interrupted
        finally:
            t0 = time.perf_counter()
            try:
                sink.close(ok)
            except OSError as exc:
                raise DtkError(f"cannot write {summary.output}: {exc} (check free space and permissions)"
                               ) from None
            finally:
                closing = time.perf_counter() - t0  # the encoder's flush and the rename, waited for
                summary.decode_s, summary.compute_s = timing.data_wait_s, timing.compute_s
                summary.encode_s = timing.write_wait_s + closing
                summary.wall_s = timing.wall_s + closing
    return summary


# -- a folder holding videos: `dtk run FOLDER -o OUTPUT` -----------------------------------------

TO_DO, WRITTEN, DONE, FAILED, INTERRUPTED, NOT_RUN = (
    "to do", "written", "already done", "failed", "interrupted", "not run")


@dataclass
class FolderVideo:
    """A video of a folder run, INPUT/<rel> -> OUTPUT/<rel>, and what became of it (`status`)."""

    rel: str
    input: Path
    output: Path
    status: str = TO_DO
    reason: str | None = None  # why the video was not written (unreadable, refused by the encoder, ...)
    job: VideoJob | None = None
    run: VideoRunSummary | None = None
    notes: list[str] = field(default_factory=list)  # found while planning: an output redone, ...

    @property
    def warnings(self) -> list[str]:
        """What the user should know about this video beyond its failures: its streams not copied,
        an earlier output that did not match its manifest (redone)."""
        if self.run is not None:
            return [*self.notes, *self.run.warnings]
        return [*self.notes, *(streams_warnings(self.job) if self.job is not None else [])]

    @property
    def info(self) -> VideoInfo | None:
        return self.job.info if self.job is not None else None

    @property
    def ok(self) -> bool:
        """Written (or already done) with every frame."""
        return self.status in (WRITTEN, DONE) and not (self.run is not None and self.run.failed)

    def problems(self) -> list[tuple[str, str]]:
        """(what, why) for the video when it was not written, else for each frame left out of it."""
        if self.reason is not None:
            return [(self.rel, self.reason)]
        return [(f"{self.rel} {frame}", why) for frame, why in (self.run.failed if self.run else [])]

    def to_json(self) -> dict[str, Any]:
        info, run = self.info, self.run
        done_before = info.frames if info and self.status == DONE else 0
        return {"input": str(self.input), "output": str(self.output), "status": self.status,
                "reason": self.reason, "frames": info.frames if info else None,
                "rate": str(info.rate) if info and info.rate else None,
                "size": list(info.size) if info else None,
                "written": run.written if run else 0,
                "skipped_done": run.skipped_done if run else done_before,
                "failed": len(run.failed) if run else 0,
                "failures": [{"frame": p, "reason": r} for p, r in (run.failed if run else [])],
                "dropped_frames": run.dropped if run else 0, "warnings": self.warnings,
                "streams_not_copied": [n.to_json() for n in info.not_copied] if info else [],
                "wall_s": run.wall_s if run else 0.0, "frames_per_s": run.frames_per_s if run else 0.0,
                "encode": self.job.encode.to_json() if self.job and self.job.encode else None,
                "decoder": self.job.decoder if self.job else None}


def plan_folder_videos(videos: list[Frame], output_dir: Path, spec: RunnerSpec,
                       request: RunRequest) -> list[FolderVideo]:
    """Each video of a folder run, planned before the model loads: the encoder options checked once
    (DtkError), each video probed and its decoder chosen (`pipeline` dali: DALI where it can decode
    the clip here, else PyAV) (one that cannot be read or written in its container is FAILED,
    listed; with `strict` a DtkError), found done (its manifest) or its paths checked as a single
    video's are (an existing video made otherwise needs --overwrite)."""
    r = request
    check_encoder(r.codec, r.crf, r.pix_fmt)
    planned = []
    for video in videos:
        fv = FolderVideo(str(video.rel), video.path, output_dir / Path(video.rel))
        planned.append(fv)
        try:
            fv.job = plan_video(video.path, output=fv.output, frames_out=None, codec=r.codec, crf=r.crf,
                                pix_fmt=r.pix_fmt, max_pixels=r.max_pixels, resumable=r.resumable,
                                pipeline=r.pipeline, in_folder=True)
        except DtkError as exc:
            if r.strict:
                raise DtkError(f"{exc} (--strict; without it the video is left out and listed)") from None
            fv.status, fv.reason = FAILED, str(exc)
            continue
        done, untrusted = video_output_done(fv.output, video_settings(spec, fv.job, r), "OUTPUT",
                                            inputs=[video.root, spec.model], overwrite=r.overwrite,
                                            resumable=r.resumable)
        if done:
            fv.status = DONE
            continue
        fv.notes += [untrusted] if untrusted else []
        check_png_dir(fv.job, spec, r)
    return planned


def run_tree_job(input_dir: Path | str, output_dir: Path | str, spec: RunnerSpec, videos: list[Frame],
                 request: RunRequest, *, unreadable: list[tuple[str, str]] | None = None,
                 on_open: Callable[[Runner], None] | None = None, runner: Callable[[], Runner] | None = None,
                 on_video: Callable[[int, int, FolderVideo], None] | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 on_tiles: Callable[[int], None] | None = None,
                 stop: threading.Event | None = None) -> RunSummary:
    """`dtk run FOLDER -o OUTPUT` when FOLDER holds `videos` (core.video.discover_videos; `unreadable`:
    the folders that walk could not list): its frames as `run_job` does them, then each video through
    the single-video path (`run_video_job`) into OUTPUT/<its path>, one runner for all. Refusals come
    before the model loads. `on_video(i, n, video)` before each video (1-based); `progress` counts
    the frames, then each video's frames. The RunSummary's `videos` are the `FolderVideo`s."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_output_dir(input_dir, output_dir)
    check_frames_outside(videos, output_dir)
    request = request.but(resize=False, keep_size=False).check()  # a folder's videos: native size
    has_frames = bool(tree_files(input_dir, IMAGE_EXTENSIONS, []))
    found = find_frames(input_dir, output_dir, strict=request.strict) if has_frames else None
    settings = RunSettings.for_spec(spec, request)
    if has_frames and output_dir.is_dir():
        with output_lock(output_dir):
            check_manifest(output_dir, settings, request.overwrite)
    if not has_frames and unreadable and request.strict:
        raise DtkError(f"cannot read {unreadable[0][0]}: {unreadable[0][1]} (--strict)")
    planned = plan_folder_videos(videos, output_dir, spec, request)
    stop = stop or threading.Event()
    with contextlib.ExitStack() as stack:
        opened = None
        if has_frames or any(fv.status == TO_DO for fv in planned):  # else no model loads: nothing to do
            opened = runner() if runner is not None else stack.enter_context(spec.open())
            check_known_blur(opened, request.known_blur)  # before OUTPUT is claimed
            if on_open is not None:
                on_open(opened)
        if has_frames:
            summary = run_frames(input_dir, output_dir, opened, request, progress=progress, on_tiles=on_tiles,
                                 stop=stop, settings=settings, found=found)
        else:
            summary = RunSummary(str(input_dir), str(output_dir), 0, failed=list(unreadable or []),
                                 batch=request.batch, blur=request.blur, known_blur=request.known_blur,
                                 pipeline=request.pipeline,
                                 backend=opened.describe() if opened is not None else
                                 {"backend": spec.backend, "model": str(spec.model)},
                                 tile_overlap=request.tile_overlap)
        summary.videos = planned
        with output_lock(output_dir), sigint_sets(stop):
            for i, fv in enumerate(planned, 1):
                if stop.is_set() or summary.interrupted:
                    fv.status = NOT_RUN if fv.status == TO_DO else fv.status
                    continue
                if on_video is not None:
                    on_video(i, len(planned), fv)
                if fv.status == TO_DO:
                    _run_folder_video(fv, spec, opened, request, stop=stop, progress=progress,
                                      on_tiles=on_tiles)
                    summary.interrupted = summary.interrupted or fv.status == INTERRUPTED
    return summary


def _run_folder_video(fv: FolderVideo, spec: RunnerSpec, runner: Runner, request: RunRequest, *,
                      stop: threading.Event, **hooks: Any) -> None:
    """One planned video of a folder run through `run_video_job` with the open `runner`; its status
    and summary set on `fv`. Whatever fails this video (a DtkError, an error of the decoder or
    encoder) fails it alone, listed with the reason: the other videos are run (unless `strict`)."""
    try:
        fv.run = run_video_job(fv.job, spec, request, runner=lambda: runner, stop=stop, **hooks)
    except Exception as exc:  # noqa: BLE001 - one video's failure, listed; never the folder's end
        reason = str(exc) if isinstance(exc, DtkError) else f"{fv.input}: {type(exc).__name__}: {exc}"
        if request.strict:
            raise DtkError(reason) from None
        fv.status, fv.reason = FAILED, reason
        return
    except KeyboardInterrupt:  # outside the frame loop (which stops on its own): this video is not done
        stop.set()
        fv.status = INTERRUPTED
        return
    fv.status = INTERRUPTED if fv.run.interrupted else WRITTEN
