"""The `dtk` command line: parse, call a library function, render. Nothing else lives here."""

from __future__ import annotations

import functools
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bench.compare import EXIT_REGRESSION, compare_reports, compare_table, parse_percent, regressions
from bench.harness import BenchConfig, e2e_blur
from bench.pipeline import render_table
from bench.report import (
    bench_table,
    export_times,
    load_report,
    narrow_tables,
    notes_text,
    write_csv,
    write_plot,
)
from bench.suite import BenchRequest
from bench.variants import parse_batches
from engines.compare import CHECK_STATS, DEFAULT_QUANTILE, compare_runners
from engines.machine import collect
from engines.openvino import HINTS as OV_MODES
from engines.options import PRECISIONS
from engines.quantize import CONV_TRANSPOSE_MODES, quantize_model
from engines.quantize import METHODS as QUANT_METHODS
from engines.spec import BACKEND_CHOICES, RunnerSpec
from engines.tensorrt.build import build_engine, parse_shapes
from toolkit.app import api, preflight
from toolkit.app import evaluate as ev
from toolkit.app.report import (
    eval_table,
    human_text,
    key_value_table,
    outputs_table,
    parity_text,
    tile_text,
    videos_table,
)
from toolkit.app.request import EXECUTORS, RunRequest
from toolkit.core.console import console, dumps, err_console, print_wide, write_json
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.demo import DEMO_PHOTOS, parse_frame_size, write_demo
from toolkit.core.errors import DtkError
from toolkit.core.frames import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    discover_frames,
    multi_frame_note,
    tree_files,
)
from toolkit.core.kernels import KERNEL_NAMES, parse_kernels
from toolkit.core.metrics import format_db
from toolkit.core.modelfiles import default_model_path, resolve_model
from toolkit.core.pipeline.batch import PIPELINES
from toolkit.core.progress import make_progress, resume_aware, tile_counter
from toolkit.core.tiles import DEFAULT_OVERLAP
from toolkit.core.video import discover_videos
from training.data import write_training_photos
from training.photoset import MAX_SHORT_SIDE, photoset_summary, write_sources
from training.photosources import DEFAULT_CACHE as DEFAULT_PHOTO_CACHE


def _list_arguments_without_type_label() -> None:
    """Typer's help writes a type after an argument's name, `RUNNER... <list[str]>` for one that takes
    several values: the name and its `...` say it, as Click writes it."""
    from typer.core import TyperArgument

    shown = getattr(TyperArgument, "display_type_rich", None)
    if shown is None or getattr(shown, "_dtk_lists_bare", False):
        return

    def display_type_rich(self, ctx):
        return None if self.nargs != 1 else shown(self, ctx)

    display_type_rich._dtk_lists_bare = True
    TyperArgument.display_type_rich = display_type_rich


_list_arguments_without_type_label()


def one_of(names) -> str:
    """A choice option's metavar, written as Click writes a Choice: [a|b|c]."""
    return "[" + "|".join(names) + "]"


ROOT_HELP = """Deblur frames and videos with a small blind U-Net, and measure it.

Frames of any size are deblurred at their own size, in one pass where they fit --max-tile-pixels
(else the fewest overlapping tiles that do), one blur decision per frame (or the blur you name with
--known-blur); videos keep their frames, timestamps and audio.
Backends: ONNX Runtime, OpenVINO, PyTorch, TensorRT (auto picks one). dtk eval scores the model
against classical deconvolution; dtk bench measures speed.

Try it: dtk data demo demo && dtk run demo -o out --blur k7. Each command has --help; README.md
says more.
"""

app = typer.Typer(
    name="dtk",
    help=ROOT_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # Click's plain help: paragraphs rewrapped to the terminal, nothing cut
)
data_app = typer.Typer(help="Data to try dtk on and to train it with.\n\n"
                            "demo: the demo frames from scikit-image's photos (nothing downloaded); photos: "
                            "the photo set dtk trains and validates on (downloads packages).",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

_state = {"debug": False}


def handle_errors(fn):
    """Turn DtkError into a red one-line message and exit code 2 (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DtkError as exc:
            if _state["debug"]:
                err_console.print(traceback.format_exc())
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


# Exit codes (README "Exit codes"): 0 every frame written (or already done), 2 usage or input
# error (DtkError: nothing done), 3 the run finished but some frames failed or were skipped.
EXIT_SOME_FAILED = 3


JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Also write the result as JSON to this file ('-' = stdout).")
]


MaxPixels = Annotated[int, typer.Option(
    "--max-pixels", help="Largest frame in pixels (W x H, read from the header before decoding); a larger "
                         "one is an unreadable frame: skipped and listed, or refused with --strict.")]


def announce_runner(spec):
    """A run's on_open callback: says which backend and model, and the runner's warnings."""

    def opened(runner) -> None:
        err_console.print(f"backend: [bold]{spec.backend}[/] ({escape(spec.reason)}); "
                          f"model: {escape(str(spec.model))}")
        for warning in runner.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}")

    return opened


def warn_multi_frame(files: list[tuple[str, int]]) -> None:
    """A yellow warning per frame file of several images (animated PNG/WebP, multi-page TIFF):
    only its first image was used (`--json` lists them under "multi_frame")."""
    for path, count in files:
        err_console.print(f"[yellow]warning:[/] {escape(path)} {escape(multi_frame_note(count))}")


def emit_json(path: Path | None, obj) -> None:
    if path is None:
        return
    if str(path) == "-":
        print(dumps(obj))
    else:
        write_json(path, obj)
        err_console.print(f"wrote {path}")


@app.command()
@handle_errors
def doctor(json_out: JsonOut = None) -> None:
    """Show what this machine offers and the backend dtk picks.

    Python, torch/CUDA, ONNX Runtime and its providers, OpenVINO and its devices, TensorRT, DALI,
    Ray, the GPU; and the backend `dtk run --backend auto` would use here.
    """

    preflight.reports({"--json": json_out})
    info = collect()
    if str(json_out) != "-":
        rows = {
            "dtk": info["dtk"], "Python": info["python"], "platform": info["platform"],
            "CPU cores": info["cpu_count"],
            "torch": info["torch"] or "not installed",
            "torch CUDA": ("yes, CUDA " + str(info["cuda"])) if info.get("cuda_available") else "no",
            "ONNX Runtime": info["onnxruntime"] or "not installed",
            "ORT providers": ", ".join(info["ort_providers"]) or "—",
            "OpenVINO": info["openvino"] or "not installed (pip install openvino)",
            "OpenVINO devices": ", ".join(info["ov_devices"]) or "—",
            "TensorRT": info["tensorrt"] or "not installed",
            "DALI": info["dali"] or "not installed",
            "Ray": info["ray"] or "not installed",
            "GPU": info["gpu"] or "none",
            "compute capability": info["compute_capability"] or "—",
            "default `dtk run` backend": info["default_backend"],
        }
        console.print(key_value_table("dtk doctor", rows))
    emit_json(json_out, info)


@data_app.command("demo")
@handle_errors
def data_demo(
    out_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to create the demo frame tree in.")],
    frames: Annotated[int, typer.Option("--frames", help="Frames per sequence.")] = 4,
    overwrite: Annotated[bool, typer.Option(
        help="Write into DIR although it holds files dtk did not write there (those of the demo's names "
             "are replaced; a rerun into dtk's own demo tree needs no --overwrite).")] = False,
) -> None:
    """Write the demo frames: real photos, cut to 256x448.

    A REDS-like tree DIR/<photo>/<frame>.png from scikit-image's bundled photos (5 sequences of
    --frames frames each); nothing is downloaded.
    """

    preflight.data_demo(out_dir, frames)
    paths = write_demo(out_dir, frames, overwrite=overwrite)
    console.print(f"demo frames: {len(paths)} in {out_dir} "
                  f"({len(DEMO_PHOTOS)} sequences: {', '.join(DEMO_PHOTOS)})")


@app.command("eval")
@handle_errors
def eval_cmd(
    sharp_dir: Annotated[Path, typer.Argument(
        metavar="SHARP", help="Tree of sharp frames (REDS layout or flat), or a sharp video (frame i of "
                              "--predictions PRED.mp4 scored against its frame i).")],
    model: Annotated[str | None, typer.Option(
        help="Model to score: 'default' (the shipped one) or a .onnx/.safetensors file.")] = None,
    engine: Annotated[Path | None, typer.Option(
        help="A TensorRT engine to score instead of --model.")] = None,
    predictions: Annotated[Path | None, typer.Option(
        help="Score outputs made elsewhere (dtk run): DIR/<kernel>/<frame> or DIR/<frame> for one kernel.")
    ] = None,
    backend: Annotated[str, typer.Option(
        metavar=one_of(BACKEND_CHOICES), help="Backend for --model (a TensorRT engine: --engine).")] = "auto",
    kernels: Annotated[str, typer.Option(help="Comma-separated seed kernels: k3,k7,k11.")] = "k3,k7,k11",
    baselines: Annotated[str, typer.Option(
        help="Known-kernel deconvolution baselines: prior (regularised inverse, power-law image prior), "
             "wiener (flat Wiener), rl (Richardson-Lucy), none.")] = "prior,wiener",
    by_sequence: Annotated[bool, typer.Option(help="Also print a table per sequence.")] = False,
    native: Annotated[bool, typer.Option(
        "--native", help="Blur, deblur and score each frame at its own size (the model through tiles, as "
                         "dtk run does); default: the seed's protocol, frames resized to 256x448.")] = False,
    tile_overlap: Annotated[int, typer.Option(
        help="With --native: pixels shared by neighbouring tiles (as dtk run).")] = DEFAULT_OVERLAP,
    known_blur: Annotated[bool, typer.Option(
        "--known-blur", help="Also score the model told each kernel (as dtk run --known-blur K runs it): "
                             "the method 'model (told)' beside the model deciding.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail on an unreadable frame instead of skipping it.")] = False,
    no_ssim: Annotated[bool, typer.Option("--no-ssim", help="Skip SSIM (faster).")] = False,
    csv: Annotated[Path | None, typer.Option(help="Write one CSV row per frame x kernel x method.")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="Write a PSNR box plot to this PNG, and a strip of worst/median frames beside it.")] = None,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    json_out: JsonOut = None,
) -> None:
    """Score the model against classical deconvolution.

    PSNR/SSIM per kernel over a whole frame tree (or a video): blurred, the model and known-kernel
    deconvolution baselines vs sharp. Every sharp frame is resized to 256x448 (--native: kept at its
    own size) and blurred with each seed kernel; the model (or the predictions) and each baseline
    restore it. Means count an identical frame (PSNR inf) as 100 dB; 'identical' counts them; 'gain'
    is the mean dB over blurred; 'worse' the share of frames the method made worse than the blurred
    input by more than 0.1 dB.
    """

    total = len(discover_frames(sharp_dir, [])) if Path(sharp_dir).is_dir() else 0
    with make_progress(transient=True) as bar:
        task = bar.add_task("evaluating", total=total)
        evaluation = api.evaluate_folder(
            sharp_dir, model=model, engine=engine, predictions=predictions, backend=backend, kernels=kernels,
            baselines=baselines, native=native, tile_overlap=tile_overlap, strict=strict, ssim=not no_ssim,
            max_pixels=max_pixels, plot=plot, json_out=json_out, csv=csv, known_blur=known_blur,
            progress=lambda done, _n: bar.update(task, completed=done))
    result = evaluation.result
    if evaluation.plots:
        err_console.print("wrote " + " and ".join(str(p) for p in evaluation.plots))
    if str(json_out) != "-":
        if evaluation.model is not None:
            err_console.print(f"model: {escape(human_text(evaluation.model))}")
        console.print(eval_table(result))
        if by_sequence:
            console.print(eval_table(result, by_sequence=True))
        warn_multi_frame(result.multi_frame)
        if result.skipped:
            err_console.print(f"[yellow]skipped {len(result.skipped)} frame(s), not scored by any method "
                              "(unreadable, or a prediction that does not match):[/]")
            for path, reason in result.skipped:
                err_console.print(f"  {escape(path)}: {escape(reason)}")
    if csv is not None:
        ev.write_csv(result, csv)
        err_console.print(f"wrote {csv}")
    emit_json(json_out, evaluation.to_json())
    if not result.scores:
        first = f" (first: {result.skipped[0][0]}: {result.skipped[0][1]})" if result.skipped else ""
        err_console.print(f"[bold red]no frame was scored:[/] {len(result.skipped)} skipped{escape(first)}; "
                          f"exit code {EXIT_SOME_FAILED}")
        raise typer.Exit(EXIT_SOME_FAILED)


@data_app.command("photos")
@handle_errors
def data_photos(
    out_dir: Annotated[Path, typer.Argument(
        metavar="DIR", help="Folder to write the photo set (or frame tree) in.")],
    cache: Annotated[Path, typer.Option(
        help="Where the packages the photos come from are downloaded and unpacked (apt-get download + "
             "dpkg -x; pip download --no-deps).")] = DEFAULT_PHOTO_CACHE,
    fetch: Annotated[bool, typer.Option(
        help="Download the packages missing from --cache (--no-fetch: use only what is there).")] = True,
    max_short_side: Annotated[int, typer.Option(
        min=256, help="Short side of the photos dtk re-encodes (JPEG q95 4:4:4); lossy originals up to "
                      "1080 are kept as they are. The default keeps the set under 40 MiB.")] = MAX_SHORT_SIDE,
    wallpapers: Annotated[Path | None, typer.Option(
        help="With --frames: usr/share/wallpapers of Debian's plasma-workspace-wallpapers (its real photos; "
             "`apt-get download plasma-workspace-wallpapers && dpkg -x *.deb DIR`).")] = None,
    frames: Annotated[bool, typer.Option(
        "--frames", help="Write the older REDS-like tree of 256x448 windows (for dtk train) instead.",
    )] = False,
    partial: Annotated[bool, typer.Option(
        "--partial", help="Write the photos of the packages at hand when some are missing (default: a "
                          "missing package is an error, exit 2, nothing written).")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Write into DIR although it holds files dtk did not write there (those of "
                            "the set's names are replaced, the others stay; a rerun into dtk's own set "
                            "needs no --overwrite).")] = False,
) -> None:
    """Write the photo set dtk trains and validates on.

    Never the demo photos. Default: the photo set of `python -m training.fit` and the device check,
    assembled from the Debian and PyPI packages of training/photocatalog.py (fetched into --cache;
    only this command downloads): DIR/<photo>.jpg|webp and DIR/sources.json (package, version, path,
    licence, colour, size, JPEG quality, character crisp/soft, split).
    """
    preflight.data_photos(out_dir, wallpapers, cache=None if frames else cache, overwrite=overwrite,
                          fetch=fetch)
    if frames:
        records = write_training_photos(out_dir, wallpapers, overwrite=overwrite)
        for r in records:
            console.print(f"{r['sequence']}: {r['frames']} frames  ({r['licence']})")
        console.print(f"{sum(r['frames'] for r in records)} frames in {len(records)} sequences in {out_dir}")
        return

    res = write_sources(out_dir, cache, fetch=fetch, max_short_side=max_short_side, overwrite=overwrite,
                        partial=partial, log=lambda m: err_console.print(escape(m), highlight=False))
    console.print(escape(photoset_summary(res)))


@app.command("train")
@handle_errors
def train_cmd(
    data: Annotated[Path, typer.Argument(
        metavar="FRAMES", help="Sharp frame tree (REDS or flat), e.g. `dtk data photos --frames`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, curves).")] = Path(
        "runs/train"),
    preset: Annotated[str | None, typer.Option(help="seed (the seed report's recipe) or cpu; "
                                               "explicit options override it.")] = None,
    width: Annotated[int | None, typer.Option(help="Base width (seed: 64).")] = None,
    tail_convs: Annotated[int | None, typer.Option(help="64->64 tail convs (seed rows: 6).")] = None,
    residual: Annotated[bool | None, typer.Option("--residual/--no-residual",
                                                  help="Output = input + f(input).")] = None,
    wiener: Annotated[bool | None, typer.Option(
        "--wiener/--no-wiener", help="Blind gated Wiener model: fixed Wiener inverse filters of the seed "
        "kernels, a head that estimates the frame's kernel, a U-Net refining the mix.")] = None,
    head_width: Annotated[int | None, typer.Option(help="Kernel-head channels (--wiener).")] = None,
    kernel_loss_weight: Annotated[float | None, typer.Option(
        help="Weight of the kernel-head cross-entropy (--wiener).")] = None,
    crop: Annotated[int | None, typer.Option(help="Square random crop side (default: full frames).")] = None,
    batch: Annotated[int | None, typer.Option(help="Batch size (seed: 10).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (seed: 40).")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps per epoch (seed: 64).")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (seed: 1e-3).")] = None,
    cosine: Annotated[bool | None, typer.Option("--cosine/--no-cosine", help="Cosine LR decay to 0.")] = None,
    loss: Annotated[str | None, typer.Option(help="mse (seed) or psnr (per-image, 60 dB cap).")] = None,
    sharp_prob: Annotated[float | None, typer.Option(help="Probability of an unblurred input.")] = None,
    psnr_cap: Annotated[float, typer.Option(help="Cap (dB) of the psnr loss.")] = 60.0,
    kernels: Annotated[str, typer.Option(help="Comma-separated seed kernels.")] = "k3,k7,k11",
    frames: Annotated[str | None, typer.Option(help="Frame positions to keep: 1,40,80.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of sequences held out.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[Path | None, typer.Option(help="Resume from a last.safetensors checkpoint.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Stop cleanly after this many minutes.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a training run already in --out (default: refused).")] = False,
) -> None:
    """Train a U-Net on sharp frames blurred on the fly.

    The seed report's network and recipe (--preset seed: Adam, MSE, batch 10, 40 epochs x 64
    steps) or its gated Wiener variant (--wiener). The shipped model's architecture is trained
    with `python -m training.fit` (MODEL.md).
    """
    from dataclasses import replace

    preflight.train_cmd(data=data, out=out, resume=resume, overwrite=overwrite, width=width,
                        tail_convs=tail_convs, head_width=head_width, kernel_loss_weight=kernel_loss_weight,
                        crop=crop, batch=batch, epochs=epochs, steps=steps, lr=lr, sharp_prob=sharp_prob,
                        psnr_cap=psnr_cap, val_fraction=val_fraction, seed=seed, time_limit=time_limit,
                        threads=threads, kernels=kernels, frames=frames)
    from training.train import TrainConfig, apply_preset, train  # torch: imported per command (start-up)

    config = apply_preset(TrainConfig(data=str(data), out=str(out)), preset)
    overrides = {"width": width, "tail_convs": tail_convs, "residual": residual, "wiener": wiener,
                 "head_width": head_width, "kernel_loss_weight": kernel_loss_weight, "crop": crop,
                 "batch": batch, "epochs": epochs, "steps": steps, "lr": lr, "cosine": cosine, "loss": loss,
                 "sharp_prob": sharp_prob}
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    frame_list = preflight.frame_positions(frames)
    config = replace(config, psnr_cap_db=psnr_cap, kernels=kernels, frames=frame_list,
                     val_fraction=val_fraction, seed=seed, resume=str(resume) if resume else None,
                     time_limit=time_limit, threads=threads)
    train(config, log=err_console.print)


@app.command("export")
@handle_errors
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(
        metavar="CHECKPOINT", help="Checkpoint (.safetensors or its .json).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="ONNX file to write.")] = Path("model.onnx"),
    fp16: Annotated[bool, typer.Option(help="FP16 graph: fp16 weights and compute.")] = False,
    fp16_io: Annotated[bool, typer.Option(help="With --fp16: fp16 input/output (default fp32 I/O).")] = False,
    height: Annotated[int, typer.Option(help="Frame height (the parity check's; with --fixed-size the "
                                             "graph's).")] = 256,
    width: Annotated[int, typer.Option(help="Frame width (as --height).")] = 448,
    fixed_size: Annotated[bool, typer.Option(
        "--fixed-size", help="The graph takes only --height x --width (default: any multiple of 8, so "
                             "dtk run can deblur a whole frame in one pass).")] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17).")] = 18,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT when it exists.")] = False,
) -> None:
    """Export a checkpoint to ONNX, checked against PyTorch.

    The graph is checked with ONNX Runtime against the PyTorch model before it takes OUTPUT's
    name: a failed check leaves an existing OUTPUT as it was.
    """
    preflight.export_cmd(checkpoint=checkpoint, output=output, height=height, width=width, opset=opset,
                         overwrite=overwrite)
    from training.export import export_checkpoint  # torch: imported per command (start-up)

    result = export_checkpoint(checkpoint, output, height=height, width=width, opset=opset, fp16=fp16,
                               fp16_io=fp16_io, overwrite=overwrite, any_size=not fixed_size)
    console.print(escape(f"wrote {result['path']} ({result['bytes'] / 1e6:.2f} MB); "
                         f"parity vs PyTorch: {parity_text(result['parity'])}"))


@app.command("run")
@handle_errors
def run_cmd(
    input_dir: Annotated[Path, typer.Argument(
        metavar="INPUT", help="Tree of (blurred) frames (REDS layout or flat), videos among them too, or "
                              "a video file (mp4, mkv, mov, ...).")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Output folder (mirrors INPUT: frames as .png, videos as videos of the "
                               "same name); for a video INPUT the output video "
                               "(OUT.mp4, .mkv, .mov, ...).")] = None,
    frames_out: Annotated[Path | None, typer.Option(
        "--frames-out", help="Video INPUT: write each frame as DIR/<index>.png instead of a video "
                             "(resumable).")] = None,
    codec: Annotated[str | None, typer.Option(
        help="Videos: the output's encoder, e.g. libx264 (the default when PyAV has it), libx265, "
             "libvpx-vp9, ffv1 or utvideo (lossless).")] = None,
    crf: Annotated[int | None, typer.Option(
        help="Videos: quality of libx264/libx265/libvpx-vp9/libsvtav1 (0 = lossless; default 18 for "
             "libx264).")] = None,
    pix_fmt: Annotated[str | None, typer.Option(
        "--pix-fmt", help="Videos: the output's pixel format (default: the input's, when the "
                          "encoder takes it).")] = None,
    resumable: Annotated[bool, typer.Option(
        "--resumable", help="Videos written as videos: keep deblurred frames as PNGs in .OUT.dtk-frames/ "
                            "beside each output until it is written, so an interrupted run resumes (disk: "
                            "one PNG per frame).")] = False,
    model: Annotated[Path | None, typer.Option(
        help="X.onnx or X.safetensors (+X.json); the sibling the backend needs is found. "
             "Default: the shipped model.")] = None,
    backend: Annotated[str, typer.Option(
        metavar=one_of(BACKEND_CHOICES),
        help="auto: TensorRT or torch on a GPU, ONNX Runtime on a CPU, OpenVINO for --precision bf16 on "
             "a CPU.")] = "auto",
    batch: Annotated[int, typer.Option(help="Frames per batch.")] = 8,
    blur: Annotated[str | None, typer.Option(
        metavar=one_of(KERNEL_NAMES),
        help="Blur sharp input first with this seed kernel (default: the input is already blurred).")
    ] = None,
    known_blur: Annotated[str | None, typer.Option(
        "--known-blur", metavar=one_of(KERNEL_NAMES),
        help="The blur the frames carry, if you know it: the network is told it instead of deciding per "
             "frame (k3: frames are passed as they are). Combines with --blur.")] = None,
    resize: Annotated[bool, typer.Option(
        "--resize", help="The seed's benchmark protocol: resize every frame to 256x448, deblur, resize "
                         "back (default: deblur each frame at its own size in overlapping tiles).")] = False,
    tile_overlap: Annotated[int, typer.Option(
        help="Pixels shared by neighbouring tiles at native size (multiple of 8, 0..128; "
             "default 64 = twice the network's reach, docs/native.md).")] = DEFAULT_OVERLAP,
    max_tile_pixels: Annotated[int | None, typer.Option(
        "--max-tile-pixels", help="The most pixels one network pass holds: a frame that fits is deblurred "
                                  "in one pass, a larger one in the fewest tiles that fit (default: a 1080p "
                                  "frame, ~2 GB with ONNX Runtime, less where memory is short).")] = None,
    keep_size: Annotated[bool, typer.Option(
        "--keep-size", help="With --resize: keep outputs at 256x448 (default: resized back to each "
                            "input's size).")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Redo every frame, also into an OUTPUT made with other settings (default: "
                            "resume, skipping finished frames; other settings are refused).")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Fail on an unreadable frame instead of skipping and listing it.")] = False,
    precision: Annotated[str, typer.Option(
        metavar=one_of(PRECISIONS), help="torch; fp16 also ORT's TensorRT EP; bf16 also OpenVINO.")] = "fp32",
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model (torch).")] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="NHWC memory format (torch).")
                             ] = False,
    cuda_graphs: Annotated[bool | None, typer.Option(
        "--cuda-graphs/--no-cuda-graphs", help="Capture a CUDA graph per batch size (torch on CUDA; "
                                               "default: on unless --compile).")] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op CPU threads of the backend.")] = None,
    ov_mode: Annotated[str | None, typer.Option(
        "--ov-mode", metavar=one_of(OV_MODES),
        help="OpenVINO: latency (one request per batch, the default) or throughput (its streams, the "
             "batch's tiles spread over an async request queue).")] = None,
    pipeline: Annotated[str, typer.Option(
        metavar=one_of(PIPELINES),
        help="Frame pipeline (auto: DALI on a GPU when installed, else the "
             "torch GPU blur when CUDA is there, else the CPU fallback). A video file: its decoder, "
             "auto or fallback (PyAV), or dali (DALI: VP8/VP9/MJPEG on a CPU, H.264/HEVC/AV1 too on a "
             "GPU).")] = "auto",
    executor: Annotated[str, typer.Option(
        metavar=one_of(EXECUTORS),
        help="local (this machine) or ray (a Ray cluster, same outputs; pip install .[ray]).")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster to join, e.g. HEAD:6379 (default: RAY_ADDRESS, else a local Ray).")] = None,
    workers: Annotated[int, typer.Option(help="Ray actors, each loading the model once (--executor ray).")
                       ] = 2,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per Ray actor (0 on CPU-only clusters).")
                               ] = 0.0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    json_out: JsonOut = None,
) -> None:
    """Deblur frames and videos at their own size.

    INPUT is a folder of frames (REDS layout or flat; videos in it too) or one video file. A
    folder becomes a mirrored folder of PNGs; a video becomes a video with the same frames,
    timestamps, colour tags and audio (-o OUT.mp4), or one PNG per frame (--frames-out DIR).
    Resumable; Ctrl-C stops cleanly.

    Each frame is deblurred at its own size: in one pass where it fits (a 1080p frame by default;
    --max-tile-pixels), else cut into the fewest overlapping tiles that do (frames are padded,
    never enlarged), one blur decision per frame, the tiles' interiors stitched back;
    --blur blurs it at that size. --resize is the seed's protocol instead (resize to 256x448,
    deblur, resize back unless --keep-size). OUTPUT must not be INPUT, inside it, or contain it.
    OUTPUT/.dtk-run.json records the model, backend, precision, blur, mode and sizes:
    a rerun with the same ones skips frames whose output is already a complete PNG; other
    ones are refused unless --overwrite. Videos in the tree (mp4, mkv, mov, ...) are written as
    videos of the same name under OUTPUT, as `dtk run CLIP -o OUT` writes one; a rerun skips
    those already done. Exit codes: 0 all written, 2 usage or input error, 3 finished but some
    frames or videos failed or were skipped.
    """

    request = RunRequest(batch=batch, blur=blur, known_blur=known_blur, resize=resize, keep_size=keep_size,
                         tile_overlap=tile_overlap, max_tile_pixels=max_tile_pixels, overwrite=overwrite,
                         strict=strict, pipeline=pipeline, max_pixels=max_pixels, codec=codec, crf=crf,
                         pix_fmt=pix_fmt, resumable=resumable, executor=executor, workers=workers,
                         gpus_per_worker=gpus_per_worker, ray_address=ray_address)
    runner_options = dict(precision=precision, compile=compile_, channels_last=channels_last,
                          cuda_graphs=cuda_graphs, threads=threads, hint=ov_mode, size=FRAME_SIZE)
    if input_dir.is_file():
        video_run_cmd(input_dir, request, output=output, frames_out=frames_out, model=model, backend=backend,
                      runner_options=runner_options, json_out=json_out)
        return
    if output is None:
        raise DtkError("give the output folder: dtk run INPUT -o OUTPUT")
    videos = discover_videos(input_dir, []) if input_dir.is_dir() else []
    preflight.run_cmd(input_dir, request, model=model, threads=threads, json_out=json_out, ov_mode=ov_mode,
                      videos=videos, frames_out=frames_out)
    spec = RunnerSpec.choose(backend, model, **runner_options)
    preflight.reports({"--json": json_out}, inputs=[spec.model])
    total = len(tree_files(input_dir, IMAGE_EXTENSIONS, [])) if input_dir.is_dir() else 0
    if executor == "ray":
        with err_console.status(f"deblurring {total} frames on Ray with {workers} worker(s)..."):
            summary = api.run_folder(input_dir, output, spec, request)
    else:
        opened = announce_runner(spec)
        with make_progress() as bar:
            task = bar.add_task("deblurring", total=total)

            def on_video(i: int, n: int, video) -> None:
                label = f"video {i}/{n} {video.rel}"
                frames = video.info.frames if video.info else None
                status = "" if video.status == "to do" else f": {video.status}"
                err_console.print(f"{escape(label)} ({frames or 'no'} frames){status}", highlight=False)
                done = frames if video.status == "already done" else 0
                bar.reset(task, total=frames, completed=done, description=label, label=label,
                          done_before=done)

            summary = api.run_folder(input_dir, output, spec, request, on_open=opened,
                                     progress=resume_aware(bar, task), on_tiles=tile_counter(bar, task),
                                     on_video=on_video)
    nothing_to_do = (summary.written == 0 and not summary.failed and not summary.interrupted
                     and summary.skipped_done == summary.frames_total
                     and all(v.status == "already done" for v in summary.videos))
    if str(json_out) != "-" and nothing_to_do:
        videos_done = f", {len(summary.videos)} video(s) already done" if summary.videos else ""
        console.print(f"nothing to do: {summary.frames_total} frame(s) found, {summary.skipped_done} already "
                      f"done{videos_done} in {escape(str(output))} (--overwrite redoes them)")
    elif str(json_out) != "-" and summary.videos and not summary.frames_total:
        console.print(videos_table(summary.videos, str(output)))
    elif str(json_out) != "-":
        shares = summary.shares()
        ratio = summary.to_json()["end_to_end_vs_compute"]
        rows = {
            "backend": human_text(summary.backend),
            "frames": f"{summary.frames_total} found: {summary.written} written, "
                      f"{summary.skipped_done} already done, {len(summary.failed)} failed",
            "wall time": f"{summary.wall_s:.2f} s (+ {summary.plan_s:.2f} s listing/resume check)",
            "mode": (f"native size: {summary.network_passes} network passes "
                     f"({tile_text(summary.tile_sizes)}; overlap {summary.tile_overlap} px) + "
                     f"{summary.head_passes} head-only passes (one blur decision per frame; "
                     f"{summary.passed_whole} passed as they are)"
                     if summary.mode == "native"
                     else "resized to 256x448 and back (--resize)")
                    + (f"; told the blur {summary.known_blur} (--known-blur), nothing decided"
                       if summary.known_blur else ""),
            "end to end": f"{summary.frames_per_s:.2f} frames/s"
                          + (f", {summary.network_passes / summary.wall_s:.1f} network passes/s"
                             if summary.mode == "native" and summary.wall_s > 0 else ""),
            **({"memory": f"peak {summary.peak_rss_mb:.0f} MiB resident; one pass holds at most "
                          f"{summary.max_tile_pixels:,} pixels (--max-tile-pixels)"}
               if summary.peak_rss_mb and summary.max_tile_pixels else {}),
            "compute only": f"{summary.compute_frames_per_s:.2f} frames/s"
                            + (f" (end to end = {100 * ratio:.0f}% of it)" if ratio else ""),
            "time shares": f"waiting for data {100 * shares['data_wait']:.0f}%, computing "
                           f"{100 * shares['compute']:.0f}%, waiting for writes "
                           f"{100 * shares['write_wait']:.0f}%, other {100 * shares['other']:.0f}%",
            "output": str(output),
        }
        console.print(key_value_table("dtk run", rows))
        if summary.videos:
            console.print(videos_table(summary.videos, str(output)))
    if str(json_out) != "-":
        warn_multi_frame(summary.multi_frame)
        problems = summary.failed + [p for v in summary.videos for p in v.problems()]
        for path, reason in problems:
            err_console.print(f"[yellow]not written:[/] {escape(path)}: {escape(reason)}")
        for warning in (w for v in summary.videos for w in v.warnings):
            err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    emit_json(json_out, summary.to_json())
    if summary.interrupted:
        err_console.print("[yellow]interrupted:[/] every PNG and video written is complete; run the same "
                          "command again to resume" + (" (a video cut short starts over; --resumable keeps "
                                                        "its finished frames)" if summary.videos else ""))
        raise typer.Exit(130)
    if summary.failed or summary.videos_failed:
        parts = [f"{len(summary.failed)} frame(s) not written (failed or skipped)"] if summary.failed else []
        parts += [f"{len(summary.videos_failed)} video(s) not written whole"] if summary.videos_failed else []
        err_console.print(f"[yellow]{'; '.join(parts)}[/]; exit code {EXIT_SOME_FAILED}")
        raise typer.Exit(EXIT_SOME_FAILED)


def video_run_cmd(input_path: Path, request: RunRequest, *, output: Path | None, frames_out: Path | None,
                  model: Path | None, backend: str, runner_options: dict[str, Any],
                  json_out: Path | None) -> None:
    """`dtk run CLIP -o OUT.mp4` / `--frames-out DIR`: parse, api.run_video, render."""
    preflight.run_video_cmd(input_path, request, output=output, frames_out=frames_out, model=model,
                            threads=runner_options["threads"], json_out=json_out)
    spec = RunnerSpec.choose(backend, model, **runner_options)

    announce = announce_runner(spec)
    with make_progress() as bar:  # shown once the runner opens: a refusal or "already done" shows none
        task = bar.add_task("deblurring", total=None)

        def opened(runner) -> None:
            announce(runner)
            bar.update(task)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = api.run_video(input_path, spec, request, output=output, frames_out=frames_out,
                                on_open=opened, progress=progress, on_tiles=tile_counter(bar, task))
    already = bool(summary.frames_total) and summary.skipped_done == summary.frames_total
    if str(json_out) != "-" and already:
        console.print(f"already done: {escape(summary.output)} was made with these settings from all "
                      f"{summary.frames_total} frames (--overwrite redoes it)")
    elif str(json_out) != "-":
        shares = summary.shares()
        video = summary.video
        rows = {
            "backend": human_text(summary.backend),
            "input": f"{video['codec']} {video['size'][1]}x{video['size'][0]} {video['pix_fmt']}, "
                     f"{video['frames']} frames at {video['rate']} fps, colour {video['colour']['matrix']} "
                     f"{video['colour']['range']}" + (" (assumed)" if video['colour']['assumed'] else "")
                     + f", {len(video['audio'])} audio stream(s)",
            "frames": f"{summary.frames_total} in the clip: {summary.written} written, "
                      f"{summary.skipped_done} already done, {len(summary.failed)} failed",
            "decoder": summary.decoder,
            **({"known blur": f"{summary.known_blur}: told, nothing decided"} if summary.known_blur else {}),
            "wall time": f"{summary.wall_s:.2f} s",
            "end to end": f"{summary.frames_per_s:.2f} frames/s",
            "compute only": f"{summary.compute_frames_per_s:.2f} frames/s",
            "time shares": f"decode {100 * shares['decode']:.0f}%, compute {100 * shares['compute']:.0f}%, "
                           f"encode {100 * shares['encode']:.0f}%, other {100 * shares['other']:.0f}%",
            "output": summary.output + (f" ({enc['codec']}, crf {enc['crf']}, {enc['pix_fmt']})"
                                        if (enc := summary.encode) else " (PNG frames)"),
        }
        console.print(key_value_table("dtk run (video)", rows))
        for frame, reason in summary.failed:
            err_console.print(f"[yellow]not written:[/] {escape(frame)}: {escape(reason)}")
    if str(json_out) != "-":
        if summary.dropped:
            err_console.print(f"[yellow]warning:[/] {summary.dropped} of the {summary.frames_total} frames "
                              "the container counts are missing from the file (dropped by the demuxer: "
                              "damaged data)")
        for warning in summary.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}")
    emit_json(json_out, summary.to_json())
    if summary.interrupted:
        err_console.print("[yellow]interrupted:[/] no video was written under the final name (PNG frames "
                          "written are complete); run the same command again"
                          + (" to resume" if request.resumable or frames_out
                             else " (it starts over; --resumable keeps finished frames)"))
        raise typer.Exit(130)
    if summary.failed:
        err_console.print(f"[yellow]{len(summary.failed)} frame(s) not written[/] (corrupt, dropped or "
                          f"failed); exit code {EXIT_SOME_FAILED}")
        raise typer.Exit(EXIT_SOME_FAILED)


bench_app = typer.Typer(
    help="Measure speed and quality per backend and batch size.\n\n"
         "Rows per backend x variant x batch size, timed as trtexec times them. Warm-up is excluded; "
         "each call gets one of several pre-made input batches in turn; latency is per call (one "
         "batch): min/mean/median/p90/p95/p99/max in ms (CUDA events on GPU, perf_counter_ns on CPU); "
         "throughput = images / wall time of the timed calls. "
         "GFLOP/s = counted conv FLOPs per image x images/s; --roofline adds its share of a "
         "measured fp32 matmul ceiling. Example: dtk bench --width 64 --batch 1,4 --roofline",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(bench_app, name="bench")


@bench_app.callback()
@handle_errors
def bench(
    ctx: typer.Context,
    model: Annotated[list[Path] | None, typer.Option(
        metavar="MODEL", help="Model file (X.onnx and/or X.safetensors+X.json); repeat to put models side "
                              "by side (e.g. fp32 and int8). Default: the shipped model.")] = None,
    engine: Annotated[Path | None, typer.Option(help="A built TensorRT engine (backend tensorrt).")] = None,
    width: Annotated[int | None, typer.Option(
        help="Benchmark a random-init seed U-Net of this width (64 = the seed's), "
             "not a trained model.")] = None,
    backend: Annotated[str, typer.Option(
        help="Comma-separated backends: onnxruntime,openvino,torch,tensorrt or all; auto (default): the "
             "backend and variant dtk run uses here.")] = "auto",
    variants: Annotated[str | None, typer.Option(
        help="Comma-separated variants (default per device). torch: eager, channels_last, bf16, compile, "
             "cuda-fp32, cuda-fp16, cuda-bf16; onnxruntime: cpu-fp32, gpu, gpu-trt-fp16; "
             "openvino: cpu-latency, cpu-throughput, cpu-bf16; "
             "tensorrt: engine.")] = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    height: Annotated[int, typer.Option(help="Input height (multiple of 8).")] = 256,
    frame_width: Annotated[int, typer.Option("--frame-width", help="Input width (multiple of 8).")] = 448,
    warmup: Annotated[float, typer.Option(
        help="Warm-up seconds per row, excluded (at least one call).")] = 1.0,
    duration: Annotated[float | None, typer.Option(
        help="Measure at least this many seconds per row (neither this nor --iterations: "
             "3 s and 3 calls).")] = None,
    iterations: Annotated[int | None, typer.Option(
        help="Measure at least this many calls per row (alone: exactly this many).")] = None,
    buffers: Annotated[int, typer.Option(help="Distinct input batches rotated call by call.")] = 4,
    threads: Annotated[int | None, typer.Option(
        help="CPU threads per runner (default: the backend's).")] = None,
    e2e: Annotated[bool, typer.Option("--e2e", help="Also time end to end as dtk run works: frame files "
                                                    "through the real pipeline (decode), cut into tiles, "
                                                    "into the runner (frames/s and tiles/s).")] = False,
    e2e_size: Annotated[str | None, typer.Option(
        help="--e2e on frames of this size, WIDTHxHEIGHT (e.g. 1280x720, 1920x1080), made of real photos "
             "at their own scale (default: --frames, else the 448x256 demo frames).")] = None,
    e2e_only: Annotated[bool, typer.Option("--e2e-only", help="Only the end-to-end rows.")] = False,
    frames: Annotated[Path | None, typer.Option(
        help="Frame tree for --e2e and the quality columns (default: demo frames in a temp dir); or a video "
             "file for --e2e (decoded with PyAV; quality then on demo frames).")] = None,
    e2e_pipeline: Annotated[str, typer.Option(
        metavar=one_of(PIPELINES), help="Pipeline for --e2e (as dtk run --pipeline).")] = "auto",
    blur_e2e: Annotated[str | None, typer.Option(
        "--blur", help="--e2e frames are blurred with this kernel at their own size first, as dtk run "
                       "--blur does (k3|k7|k11, or none: as given; default k7, or the --known-blur "
                       "one): the work users ask for, not sharp frames the gate passes.")] = None,
    known_blur: Annotated[str | None, typer.Option(
        "--known-blur", metavar=one_of(KERNEL_NAMES),
        help="The --e2e rows run told this blur (as dtk run --known-blur), and the quality columns score "
             "frames blurred with it, told it.")] = None,
    roofline: Annotated[bool, typer.Option("--roofline", help="Measure the fp32 matmul ceiling (CPU; GPU too "
                                                              "when present) and show % of it.")] = False,
    ceiling: Annotated[float | None, typer.Option(
        help="CPU ceiling in GFLOP/s to use instead of measuring it.")] = None,
    pipeline_bench: Annotated[bool, typer.Option(
        "--pipeline", help="Also run the DALI vs fallback pipeline benchmark (bench/pipeline.py).")] = False,
    quality: Annotated[bool, typer.Option(
        "--quality/--no-quality", help="Score each runner on real frames: PSNR per kernel vs sharp, error vs "
                                       "the first model's fp32 CPU reference.")] = True,
    quality_frames: Annotated[int, typer.Option(help="Frames scored per kernel (k7, k11).")] = 4,
    min_psnr: Annotated[float | None, typer.Option(
        help="A row whose PSNR on any kernel is below this (dB) fails quality: exit 3.")] = None,
    latency_budget: Annotated[float | None, typer.Option(
        help="Name the batch with the best throughput whose p99 latency (max under 100 calls) fits in "
             "this many ms, per backend/variant.")] = None,
    cv_threshold: Annotated[float | None, typer.Option(
        help="Stability: above this CV (%) of call latency a row runs on (default 5 CPU, 1 GPU).")] = None,
    max_extend: Annotated[float, typer.Option(
        help="Stability: at most this many extra seconds per row (0: never extend).")] = 5.0,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Every column (calls, CV, mean/max latency, memory, errors vs the reference, "
                       "tiles/s); default: a table within 100 columns (every figure is in --json).")] = False,
    json_out: JsonOut = None,
    csv: Annotated[Path | None, typer.Option(help="Write one CSV row per table row.")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="Write a PNG: throughput vs batch, latency vs throughput (Pareto front), latency CDF.")] = None,
    export_times_to: Annotated[Path | None, typer.Option(
        "--export-times", help="Write every timed call (start, latency in ms) of every row as JSON.")] = None,
) -> None:
    """Benchmark every backend x variant x batch size; `dtk bench compare A.json B.json` compares two runs."""
    if ctx.invoked_subcommand is not None:
        return

    preflight.bench_cmd(models=list(model or []), engine=engine, frames=frames, width=width, height=height,
                        frame_width=frame_width, warmup=warmup, duration=duration, iterations=iterations,
                        buffers=buffers, threads=threads, e2e_pipeline=e2e_pipeline, ceiling=ceiling,
                        quality_frames=quality_frames, min_psnr=min_psnr, latency_budget=latency_budget,
                        cv_threshold=cv_threshold, max_extend=max_extend, json_out=json_out, csv=csv,
                        plot=plot, export_times=export_times_to, known_blur=known_blur)

    config = BenchConfig(batches=parse_batches(batch), size=(height, frame_width), warmup_s=warmup,
                         duration_s=duration, iterations=iterations, buffers=buffers,
                         cv_threshold=cv_threshold / 100 if cv_threshold is not None else None,
                         max_extend_s=max_extend, known_blur=known_blur,
                         e2e_blur=e2e_blur(blur_e2e, known_blur))
    req = BenchRequest(config=config, models=list(model or []), engine=engine, width=width,
                       backends=backend, variants=variants, threads=threads, e2e=e2e or e2e_only,
                       frames_dir=frames, pipeline_kind=e2e_pipeline, compute=not e2e_only, roofline=roofline,
                       e2e_size=parse_frame_size(e2e_size) if e2e_size else None,
                       ceiling_gflops=ceiling, pipeline_bench=pipeline_bench, quality=quality,
                       quality_frames=quality_frames, min_psnr=min_psnr, latency_budget_ms=latency_budget)
    report = api.bench(req, progress=lambda msg: err_console.print(f"[dim]bench: {escape(msg)}[/]")).to_json()
    if str(json_out) != "-":
        for table in [bench_table(report)] if wide else narrow_tables(report):
            print_wide(table)
        for line in notes_text(report):
            console.print(escape(line))
        pipe = report["extra"].get("pipeline")
        if pipe and pipe.get("rows"):
            console.print(render_table(pipe))
        elif pipe:
            err_console.print(f"[yellow]pipeline benchmark skipped:[/] {escape(str(pipe.get('skipped')))}")
    emit_json(json_out, report)
    if csv is not None:
        err_console.print(f"wrote {write_csv(report, csv)}")
    if plot is not None:
        err_console.print(f"wrote {write_plot(report, plot)}")
    if export_times_to is not None:
        err_console.print(f"wrote {export_times(report, export_times_to)}")
    failed = [r for r in report["rows"] if r["status"] == "failed quality"]
    if failed:
        err_console.print(f"[red]{len(failed)} row(s) failed quality[/] (--min-psnr {min_psnr:g} dB); "
                          f"exit code {EXIT_SOME_FAILED}")
        raise typer.Exit(EXIT_SOME_FAILED)


@bench_app.command("compare")
@handle_errors
def bench_compare(
    a: Annotated[Path, typer.Argument(metavar="A.json", help="Baseline report (dtk bench --json A.json).")],
    b: Annotated[Path, typer.Argument(metavar="B.json", help="Report to compare with it.")],
    max_slowdown: Annotated[str | None, typer.Option(
        help="Regression gate: exit 1 when a matching row's images/s fell by more than this (5%).")] = None,
    max_psnr_drop: Annotated[float | None, typer.Option(
        help="Regression gate: exit 1 when a matching row lost more than this many dB on a kernel.")] = None,
    json_out: JsonOut = None,
) -> None:
    """Compare two dtk bench reports; a regression gate for CI.

    Ratios B/A per matching row (model, backend, variant, batch, mode): images/s, median, p99;
    with --max-slowdown / --max-psnr-drop a regression gate (exit 1).
    """

    limit = parse_percent(max_slowdown) if max_slowdown is not None else None
    preflight.bench_compare(a=a, b=b, max_psnr_drop=max_psnr_drop, json_out=json_out)
    result = compare_reports(load_report(a), load_report(b))
    result["regressions"] = regressions(result, limit, max_psnr_drop)
    if str(json_out) != "-":
        console.print(compare_table(result, str(a), str(b)))
    emit_json(json_out, result)
    if result["regressions"]:
        for line in result["regressions"]:
            err_console.print(f"[red]regression:[/] {escape(line)}")
        raise typer.Exit(EXIT_REGRESSION)


@app.command("build-engine")
@handle_errors
def build_engine_cmd(
    onnx_model: Annotated[Path, typer.Argument(
        metavar="MODEL.onnx", help="The ONNX model (fp16 export, fp32, or Q/DQ int8).")],
    output: Annotated[Path, typer.Option(
        "-o", "--output", metavar="ENGINE", help="Engine file to write (+ ENGINE.json sidecar).")],
    fp16: Annotated[bool | None, typer.Option(
        "--fp16/--fp32", help="Engine precision; default: the graph's own (TensorRT 11 builds FP16 only "
                              "from an FP16 ONNX, INT8 from a Q/DQ ONNX).")] = None,
    min_batch: Annotated[int, typer.Option(help="Smallest batch of the optimization profile.")] = 1,
    opt_batch: Annotated[int, typer.Option(help="Batch TensorRT tunes for.")] = 8,
    max_batch: Annotated[int, typer.Option(help="Largest batch (the runner splits bigger ones).")] = 32,
    shapes: Annotated[str | None, typer.Option(
        "--shapes", help="Frame sizes HEIGHTxWIDTH to add a profile each for, comma-separated (e.g. "
                         "720x1280,1080x1920): dtk run deblurs a frame of such a size in one pass (the "
                         "graph must take any size: dtk export's default). Their batches scale to the "
                         "default profile's pixels.")] = None,
    workspace: Annotated[float, typer.Option(help="Builder workspace limit in GB.")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(
        help="Timing cache file, loaded and updated (default: one per TensorRT version and GPU "
             "under ~/.cache/dtk/tensorrt).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing engine.")] = False,
    json_out: JsonOut = None,
) -> None:
    """Build a TensorRT engine from an ONNX model (GPU).

    One optimization profile over the batch (H x W from the ONNX, else 256x448), and one per
    --shapes frame size; ENGINE.json beside it records the TensorRT version, GPU, precision and
    profiles. Needs TensorRT (pip install .[gpu]).
    """

    frame_shapes = parse_shapes(shapes) if shapes is not None else []
    preflight.build_engine_cmd(onnx_model=onnx_model, output=output, min_batch=min_batch, opt_batch=opt_batch,
                               max_batch=max_batch, workspace=workspace, timing_cache=timing_cache,
                               overwrite=overwrite, json_out=json_out)
    precision = None if fp16 is None else ("fp16" if fp16 else "fp32")
    sidecar = build_engine(onnx_model, output, precision=precision, min_batch=min_batch, opt_batch=opt_batch,
                           max_batch=max_batch, workspace_gb=workspace, timing_cache=timing_cache,
                           overwrite=overwrite, log=err_console.print, shapes=frame_shapes)
    emit_json(json_out, sidecar.to_json())


@app.command("compare")
@handle_errors
def compare_cmd(
    runners: Annotated[list[str] | None, typer.Argument(
        metavar="RUNNER",
        help="backend[:MODEL] (torch, onnxruntime, openvino, tensorrt), the first the reference; default: "
             "torch, onnxruntime and onnxruntime on the shipped fp16 graph.")] = None,
    frames: Annotated[Path | None, typer.Option(
        "--frames", help="Sharp frames folder (default: the built-in demo frames).")] = None,
    max_frames: Annotated[int, typer.Option(help="Frames used (each blurred with every kernel).")] = 5,
    blur: Annotated[str, typer.Option("--blur", help="Kernels, comma-separated.")] = "k7,k11",
    batch: Annotated[int, typer.Option(help="Frames per batch.")] = 4,
    atol: Annotated[float | None, typer.Option(
        help="Absolute tolerance (0..1 scale); with --rtol, a pair fails when both are exceeded "
             "(Polygraphy's rule) and the command exits 1.")] = None,
    rtol: Annotated[float | None, typer.Option(
        help="Relative tolerance (of the reference's output).")] = None,
    check_stat: Annotated[str, typer.Option(
        metavar=one_of(CHECK_STATS), help="Error statistic checked against the tolerances.")] = "max",
    quantile: Annotated[float, typer.Option(help="Quantile of the error reported (and checked).")
                        ] = DEFAULT_QUANTILE,
    json_out: JsonOut = None,
) -> None:
    """Compare backends' outputs on the same blurred frames.

    Runners on the same blurred real frames, compared with Polygraphy's comparator. Per runner (vs
    the first) and kernel: max / mean / median / quantile absolute error, max relative error and the
    PSNR between the outputs. Exit 1 when a tolerance is given and exceeded.
    """

    if not runners:
        runners = ["torch", "onnxruntime"]
        fp16 = default_model_path("onnxruntime").with_name("dtk-unet-fp16.onnx")
        if fp16.is_file():
            runners.append(f"onnxruntime:{fp16}")
    preflight.compare_cmd(runners=runners, frames=frames, max_frames=max_frames, batch=batch, atol=atol,
                          rtol=rtol, quantile=quantile, json_out=json_out)
    report = compare_runners(runners, frames_dir=frames, max_frames=max_frames,
                             kernels=[k.name for k in parse_kernels(blur, "--blur")], batch_size=batch,
                             quantile=quantile, atol=atol, rtol=rtol, check_stat=check_stat,
                             log=err_console.print)
    if str(json_out) != "-":
        console.print(outputs_table(report))
    emit_json(json_out, report.to_json())
    if report.passed is False:
        failed = ", ".join(f"{p.other} ({p.kernel})" for p in report.failed_pairs())
        err_console.print(f"[bold red]outside the tolerance:[/] {escape(failed)}")
        raise typer.Exit(1)


@app.command("quantize")
@handle_errors
def quantize_cmd(
    model: Annotated[Path | None, typer.Argument(
        metavar="MODEL.onnx", help="fp32 ONNX model (default: the shipped one).")] = None,
    calib: Annotated[Path, typer.Option("--calib", help="Sharp real frames to calibrate on (REDS or flat).")
                     ] = ...,
    output: Annotated[Path, typer.Option("--output", "-o", help="Q/DQ INT8 ONNX file to write.")] = ...,
    calib_frames: Annotated[int, typer.Option(help="Calibration frames (each blurred k3, k7, k11).")] = 16,
    guard_frames: Annotated[int, typer.Option(help="Guard frames (disjoint from calibration).")] = 16,
    method: Annotated[str, typer.Option(
        metavar=one_of(QUANT_METHODS), help="Calibration method.")] = "minmax",
    max_drop: Annotated[float, typer.Option(help="Largest PSNR drop (dB) allowed per kernel.")] = 0.1,
    guard: Annotated[Path | None, typer.Option(
        help="Guard frames folder (default: every other sequence of --calib).")] = None,
    conv_transpose: Annotated[str, typer.Option(
        metavar=one_of(CONV_TRANSPOSE_MODES), help="ConvTranspose: per-tensor int8 or float.")
    ] = "per-tensor",
    max_float_layers: Annotated[int, typer.Option(help="Most layers kept in float to pass the guard.")] = 4,
    quantize_bank: Annotated[bool, typer.Option(
        "--quantize-bank", help="Quantize the fixed deconvolution bank too (default: kept in float; "
                                "int8 cannot hold its ~10x gains).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT when it exists.")] = False,
    json_out: JsonOut = None,
) -> None:
    """Write a calibrated INT8 model, or nothing if PSNR drops.

    A Q/DQ ONNX graph for ONNX Runtime, OpenVINO and TensorRT. Symmetric int8 activations and
    weights (zero points 0), per-channel Conv weights. The fixed bank,
    the decision head and convs fed by a Concat stay float. The guard runs fp32 and int8 on frames
    blurred with each seed kernel; a drop above --max-drop keeps the most sensitive layers in float,
    and if that is not enough the command exits 2 without writing.
    """

    if model is None and not default_model_path("onnxruntime").is_file():
        raise DtkError(f"no shipped model here ({default_model_path('onnxruntime')} missing): "
                       "pass an fp32 ONNX model: `dtk quantize model.onnx --calib FRAMES -o model-int8.onnx`")
    source = resolve_model(model, "onnxruntime")
    preflight.quantize_cmd(model=source, calib=calib, guard=guard, output=output, overwrite=overwrite,
                           calib_frames=calib_frames, guard_frames=guard_frames, max_drop=max_drop,
                           max_float_layers=max_float_layers, json_out=json_out)
    try:
        report = quantize_model(source, calib, output, calib_frames=calib_frames, guard_frames=guard_frames,
                                method=method, max_drop_db=max_drop, guard_dir=guard,
                                conv_transpose=conv_transpose, max_float_layers=max_float_layers,
                                quantize_bank=quantize_bank, log=err_console.print)
    except DtkError as exc:
        failed = getattr(exc, "report", None)
        if failed is not None:
            emit_json(json_out, failed.to_json())
        raise
    if str(json_out) != "-":
        rows = {f"{g.kernel} PSNR fp32 / int8": f"{format_db(g.fp32_psnr_db)} / {format_db(g.int8_psnr_db)} "
                f"dB (drop {g.drop_db:+.3f} dB; int8 vs fp32 {format_db(g.int8_vs_fp32_psnr_db)} dB)"
                for g in report.guard}
        rows.update({"method": report.method,
                     "layers kept in float": report.float_summary(),
                     "calibration": f"{len(report.calibration_frames)} frames x 3 kernels, sha256 "
                                    f"{report.calibration_sha256[:16]}",
                     "guard frames": str(len(report.guard_frames)), "time": f"{report.seconds:.1f} s",
                     "output": str(report.output)})
        console.print(key_value_table("dtk quantize", rows))
    emit_json(json_out, report.to_json())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
