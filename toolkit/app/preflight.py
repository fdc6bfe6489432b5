"""What every command checks before any work: its numbers (`toolkit.core.bounds`: finite, in range)
and the paths it will write (`toolkit.core.safepaths`: not an input, not a folder, writable, no
silent replacement). One function per command; the CLI calls it first, before a model or a frame
loads, so a mistake costs nothing and prints one line (exit 2)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engines.openvino import HINTS as OV_MODES
from engines.options import MAX_BATCH, check_batch, check_threads
from engines.tensorrt.sidecar import sidecar_path
from toolkit.app.outputs import check_video_output, manifest_path
from toolkit.app.request import RunRequest
from toolkit.core.bounds import check_choice, check_number, check_tolerance, parse_list
from toolkit.core.errors import DtkError
from toolkit.core.evidence import check_known_blur_name
from toolkit.core.kernels import parse_kernels
from toolkit.core.pipeline import PIPELINES
from toolkit.core.safepaths import OwnedFolder, check_output_file, check_output_folder
from training.photosources import check_cache

HOUR, DAY = 3600.0, 86400.0
MAX_SIDE = 8192  # largest frame side (pixels) the export and bench accept
# torch's TorchScript ONNX exporter (training/export.py, dynamo=False) writes opsets 17..20
ONNX_OPSETS = (17, 20)

Paths = Iterable[Path | str | None]


def reports(named: dict[str, Path | str | None], inputs: Paths = ()) -> None:
    """Report files (--json, --csv, --plot, --export-times) a command will write: may dtk write them?"""
    for flag, path in named.items():
        check_output_file(path, flag, inputs=inputs)


def plot_paths(plot: Path | None) -> dict[str, Path | None]:
    """--plot F.png and the F-examples.png dtk eval writes beside it."""
    if plot is None:
        return {}
    return {"--plot": plot, "--plot (examples strip)": plot.with_name(plot.stem + "-examples" + plot.suffix)}


def frame_size(height_flag: str, height: int, width_flag: str, width: int) -> None:
    for flag, value in ((height_flag, height), (width_flag, width)):
        check_number(flag, value, min=8, max=MAX_SIDE, multiple_of=8)


def check_max_pixels(max_pixels: int) -> None:
    check_number("--max-pixels", max_pixels, min=1)


def data_demo(out_dir: Path, frames: int) -> None:
    """The numbers and the folder; the files in DIR are checked by `write_demo` before it writes
    (a file there that is not dtk's, or not the very bytes the demo writes, needs --overwrite)."""
    check_number("--frames", frames, min=1, max=10_000)
    check_output_folder(out_dir, "DIR")


def data_photos(out_dir: Path, wallpapers: Path | None, *, cache: Path | None = None,
                overwrite: bool = False, fetch: bool = True) -> None:
    """DIR may be filled (no file dtk did not write there, unless --overwrite) and, for the photo
    set, --cache is a folder apart from DIR; checked before anything is fetched."""
    OwnedFolder(out_dir, "DIR", overwrite=overwrite).check(inputs=[wallpapers])
    if cache is not None:
        check_cache(cache, out_dir, fetch=fetch)


def eval_cmd(sharp_dir: Path, *, kernels: list, max_pixels: int, model: str | None, engine: Path | None,
             predictions: Path | None, json_out: Path | None, csv: Path | None, plot: Path | None,
             known_blur: bool = False) -> None:
    if not kernels:
        raise DtkError("--kernels names no kernel: give some of k3,k7,k11")
    if known_blur and (predictions is not None or (model is None and engine is None)):
        raise DtkError("--known-blur scores a model told each kernel beside it deciding: give --model "
                       "(default: the shipped one) or --engine"
                       + (", not --predictions" if predictions is not None else ""))
    check_max_pixels(max_pixels)
    model_file = model if model not in (None, "default") else None
    reports({"--json": json_out, "--csv": csv, **plot_paths(plot)},
            inputs=[sharp_dir, model_file, engine, predictions])


def train_cmd(*, data: Path, out: Path, resume: Path | None, overwrite: bool, width: int | None,
              tail_convs: int | None, head_width: int | None, kernel_loss_weight: float | None,
              crop: int | None, batch: int | None, epochs: int | None, steps: int | None, lr: float | None,
              sharp_prob: float | None, psnr_cap: float, val_fraction: float, seed: int,
              time_limit: float | None, threads: int | None, kernels: str = "k3,k7,k11",
              frames: str | None = None) -> None:
    parse_kernels(kernels)
    frame_positions(frames)
    check_threads(threads)
    if batch is not None:
        check_batch(batch)
    check_number("--width", width, min=1, max=512)
    check_number("--tail-convs", tail_convs, min=0, max=64)
    check_number("--head-width", head_width, min=1, max=512)
    check_tolerance("--kernel-loss-weight", kernel_loss_weight)
    check_number("--crop", crop, min=16, max=256, multiple_of=8,
                 hint="a square inside the 256x448 frames, through the U-Net's 3 poolings")
    check_number("--epochs", epochs, min=1, max=1_000_000)
    check_number("--steps", steps, min=1, max=100_000_000)
    check_number("--lr", lr, above=0, max=1)
    check_number("--sharp-prob", sharp_prob, min=0, below=1)
    check_number("--psnr-cap", psnr_cap, above=0, max=200)
    check_number("--val-fraction", val_fraction, above=0, below=1)
    check_number("--seed", seed, min=0)
    check_number("--time-limit", time_limit, above=0, max=365 * 24 * 60, hint="minutes")
    check_output_folder(out, "--out", inputs=[data])
    check_run_folder(out, resume, overwrite)


def frame_positions(frames: str | None) -> list[int] | None:
    """`dtk train --frames 1,40,80`: the frame positions to keep (None: not given, every frame);
    DtkError for an empty list or a value that is not a whole number >= 0."""
    if frames is None:
        return None
    try:
        positions = [int(s) for s in parse_list(frames, "--frames", "frame positions such as 1,40,80")]
    except ValueError:
        raise DtkError(f"--frames wants comma-separated integers, got {frames!r}") from None
    for p in positions:
        check_number("--frames", p, min=0)
    return positions


RUN_FILES = ("best.safetensors", "best.json", "last.safetensors", "last.json", "config.json", "result.json")


def check_run_folder(out: Path, resume: Path | None, overwrite: bool) -> None:
    """A training run folder that already holds a run is replaced only with --overwrite (or
    continued with --resume of a checkpoint in it)."""
    found = [name for name in RUN_FILES if (out / name).exists() or (out / name).is_symlink()]
    if not found or overwrite:
        return
    if resume is not None and Path(resume).resolve().parent == out.resolve():
        return
    raise DtkError(f"{out} already holds a training run ({', '.join(found)}): pass --overwrite to replace "
                   "it, --resume to continue it, or choose another --out")


def export_cmd(*, checkpoint: Path, output: Path, height: int, width: int, opset: int,
               overwrite: bool) -> None:
    frame_size("--height", height, "--width", width)
    check_number("--opset", opset, min=ONNX_OPSETS[0], max=ONNX_OPSETS[1],
                 hint="the ONNX opsets torch's exporter writes")
    pair = [Path(checkpoint).with_suffix(".safetensors"), Path(checkpoint).with_suffix(".json")]
    check_output_file(output, "-o", inputs=[checkpoint, *pair], overwrite=overwrite)


def frame_only(given: dict[str, bool], why: str) -> None:
    """DtkError for the first option in `given` that is on: it applies to frames only (`why`: what
    is deblurred otherwise)."""
    for flag, on in given.items():
        if on:
            raise DtkError(f"{flag} is for frame folders; {why}: drop it")


def run_cmd(input_dir: Path, request: RunRequest, *, model: Path | None, threads: int | None,
            json_out: Path | None, ov_mode: str | None = None, videos: Sequence[Any] = (),
            frames_out: Path | None = None) -> None:
    """`dtk run FOLDER`: its options (`request.check()`), and those a folder's `videos`
    (core.video.discover_videos) take or refuse; the paths of the videos are checked as each is
    planned (app.video_run)."""
    r = request
    if not input_dir.exists():
        raise DtkError(f"INPUT {input_dir} does not exist: give a folder of frames or a video file")
    if frames_out is not None:
        raise DtkError(f"--frames-out DIR is for a video file INPUT; {input_dir} is a folder: its frames "
                       "are written as PNGs and its videos as videos under OUTPUT (OUTPUT/<path>, same "
                       "name and container): drop --frames-out")
    if videos:
        frame_only({"--resize": r.resize, "--keep-size": r.keep_size, "--executor ray": r.executor == "ray"},
                   f"{input_dir} holds {len(videos)} video(s) (first: {videos[0].rel}), decoded with PyAV on "
                   "this machine and deblurred at their own size (move them out of INPUT to run its frames "
                   "so)")
    else:
        video_only = (("--codec", r.codec), ("--crf", r.crf), ("--pix-fmt", r.pix_fmt),
                      ("--resumable", r.resumable or None))
        for flag, value in video_only:
            if value is not None:
                raise DtkError(f"{flag} is for videos; {input_dir} holds none (only frames)")
    if ov_mode is not None:
        check_choice("--ov-mode", ov_mode, OV_MODES)
    r.check()
    check_threads(threads)
    reports({"--json": json_out}, inputs=[input_dir, model])


def run_video_cmd(input_path: Path, request: RunRequest, *, output: Path | None, frames_out: Path | None,
                  model: Path | None, threads: int | None, json_out: Path | None) -> None:
    """`dtk run CLIP`: one output (-o OUT.mp4 or --frames-out DIR), options that apply to a video
    (`request.check()`), and paths that are not the input (an existing OUT.mp4 only with
    --overwrite, or with a run manifest: outputs.video_output_done decides once the settings are
    known)."""
    r = request
    if (output is None) == (frames_out is None):
        raise DtkError("a video run writes either a video (-o OUT.mp4) or PNG frames (--frames-out DIR): "
                       "give one of them")
    frame_only({"--resize": r.resize, "--keep-size": r.keep_size, "--executor ray": r.executor != "local",
                f"--pipeline {r.pipeline}": r.pipeline not in ("auto", "dali", "fallback")},
               "a video is decoded by PyAV (--pipeline fallback) or DALI's video decoder (--pipeline dali; "
               "auto: DALI on a GPU when it can) and deblurred at its own size")
    r.check()
    check_threads(threads)
    inputs = [input_path, model]
    if output is not None:
        ours = manifest_path(output).is_file()
        check_video_output(output, "-o", inputs=inputs, overwrite=r.overwrite or ours, resumable=r.resumable)
    elif r.resumable:
        raise DtkError("--resumable is for a video output (-o OUT.mp4); --frames-out DIR resumes anyway")
    else:
        check_output_folder(frames_out, "--frames-out", inputs=inputs)
    reports({"--json": json_out}, inputs=[*inputs, output, frames_out])


def bench_cmd(*, models: list[Path], engine: Path | None, frames: Path | None, width: int | None,
              height: int, frame_width: int, warmup: float, duration: float | None, iterations: int | None,
              buffers: int, threads: int | None, e2e_pipeline: str, ceiling: float | None,
              quality_frames: int, min_psnr: float | None, latency_budget: float | None,
              cv_threshold: float | None, max_extend: float, json_out: Path | None, csv: Path | None,
              plot: Path | None, export_times: Path | None, known_blur: str | None = None) -> None:
    check_threads(threads)
    check_known_blur_name(known_blur)
    check_number("--width", width, min=1, max=512)
    frame_size("--height", height, "--frame-width", frame_width)
    check_number("--warmup", warmup, min=0, max=HOUR, hint="seconds")
    check_number("--duration", duration, above=0, max=DAY, hint="seconds")
    check_number("--iterations", iterations, min=1, max=10_000_000)
    check_number("--buffers", buffers, min=1, max=64)
    check_choice("--e2e-pipeline", e2e_pipeline, PIPELINES)
    check_number("--ceiling", ceiling, above=0, hint="GFLOP/s")
    check_number("--quality-frames", quality_frames, min=1, max=10_000)
    check_tolerance("--min-psnr", min_psnr)
    check_number("--latency-budget", latency_budget, above=0, hint="ms")
    check_number("--cv-threshold", cv_threshold, above=0, max=100, hint="percent")
    check_number("--max-extend", max_extend, min=0, max=HOUR, hint="seconds")
    reports({"--json": json_out, "--csv": csv, "--plot": plot, "--export-times": export_times},
            inputs=[*models, engine, frames])


def bench_compare(*, a: Path, b: Path, max_psnr_drop: float | None, json_out: Path | None) -> None:
    check_tolerance("--max-psnr-drop", max_psnr_drop)
    reports({"--json": json_out}, inputs=[a, b])


def build_engine_cmd(*, onnx_model: Path, output: Path, min_batch: int, opt_batch: int, max_batch: int,
                     workspace: float, timing_cache: Path | None, overwrite: bool,
                     json_out: Path | None) -> None:
    for flag, value in (("--min-batch", min_batch), ("--opt-batch", opt_batch), ("--max-batch", max_batch)):
        check_number(flag, value, min=1, max=MAX_BATCH)
    if not min_batch <= opt_batch <= max_batch:
        raise DtkError(f"batches must satisfy --min-batch <= --opt-batch <= --max-batch, got {min_batch}, "
                       f"{opt_batch}, {max_batch}")
    check_number("--workspace", workspace, above=0, max=1024, hint="GB")
    inputs = [onnx_model, timing_cache]
    check_output_file(output, "-o", inputs=inputs, overwrite=overwrite)
    check_output_file(sidecar_path(output), "-o (its sidecar)", inputs=inputs, overwrite=overwrite)
    reports({"--json": json_out}, inputs=[*inputs, output])


def compare_cmd(*, runners: list[str], frames: Path | None, max_frames: int, batch: int, atol: float | None,
                rtol: float | None, quantile: float, json_out: Path | None) -> None:
    check_number("--max-frames", max_frames, min=1, max=10_000)
    check_batch(batch)
    check_tolerance("--atol", atol)
    check_tolerance("--rtol", rtol)
    check_number("--quantile", quantile, above=0, below=1)
    models = [r.split(":", 1)[1] for r in runners if ":" in r]
    reports({"--json": json_out}, inputs=[frames, *models])


def quantize_cmd(*, model: Path | None, calib: Path, guard: Path | None, output: Path, overwrite: bool,
                 calib_frames: int, guard_frames: int, max_drop: float, max_float_layers: int,
                 json_out: Path | None) -> None:
    check_number("--calib-frames", calib_frames, min=1, max=100_000)
    check_number("--guard-frames", guard_frames, min=1, max=100_000)
    check_tolerance("--max-drop", max_drop)
    check_number("--max-float-layers", max_float_layers, min=0, max=10_000)
    inputs = [model, calib, guard]
    check_output_file(output, "-o", inputs=inputs, overwrite=overwrite)
    reports({"--json": json_out}, inputs=[*inputs, output])
