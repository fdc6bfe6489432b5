"""The `dtk` command line: parse, call a library function, render. Nothing else lives here."""

from __future__ import annotations

import functools
import traceback
from pathlib import Path
from typing import Annotated

import typer

from toolkit.errors import DtkError
from toolkit.report import console, dumps, err_console, write_json

app = typer.Typer(
    name="dtk",
    help="Batch inference and benchmarking toolkit for image deblurring (seed U-Net, 256x448 frames).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in data: demo frame trees from real photos.", no_args_is_help=True)
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
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    _state["debug"] = debug


def not_built(command: str, issue: int):
    """A planned command that does not exist yet: says so and exits 2 (no silent stub)."""

    def fn() -> None:
        err_console.print(f"[bold red]error:[/] `dtk {command}` is planned (issue #{issue}) "
                          "but not built yet in this version of dtk.")
        raise typer.Exit(2)

    fn.__doc__ = f"(not built yet: issue #{issue}) planned; exits 2 for now."
    return fn


JsonOut = Annotated[
    Path | None, typer.Option("--json", help="Also write the result as JSON to this file ('-' = stdout).")
]


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
    """Show what this machine offers: Python, torch/CUDA, ONNX Runtime, TensorRT, DALI, GPU."""
    from toolkit.doctor import collect
    from toolkit.report import key_value_table

    info = collect()
    if str(json_out) != "-":
        rows = {
            "dtk": info["dtk"], "Python": info["python"], "platform": info["platform"],
            "CPU cores": info["cpu_count"],
            "torch": info["torch"] or "not installed",
            "torch CUDA": ("yes, CUDA " + str(info["cuda"])) if info.get("cuda_available") else "no",
            "ONNX Runtime": info["onnxruntime"] or "not installed",
            "ORT providers": ", ".join(info["ort_providers"]) or "—",
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
    out_dir: Annotated[Path, typer.Argument(help="Folder to create the demo frame tree in.")],
    frames: Annotated[int, typer.Option("--frames", help="Frames per sequence.")] = 4,
    overwrite: Annotated[bool, typer.Option(help="Rewrite an existing demo tree.")] = False,
) -> None:
    """Write a small REDS-like tree (<photo>/<frame>.png, 256x448) from scikit-image's real photos."""
    from toolkit.demo import DEMO_PHOTOS, write_demo

    paths = write_demo(out_dir, frames, overwrite=overwrite)
    console.print(f"demo frames: {len(paths)} in {out_dir} "
                  f"({len(DEMO_PHOTOS)} sequences: {', '.join(DEMO_PHOTOS)})")


@app.command("eval")
@handle_errors
def eval_cmd(
    sharp_dir: Annotated[Path, typer.Argument(help="Tree of sharp frames (REDS layout or flat).")],
    kernels: Annotated[str, typer.Option(help="Comma-separated seed kernels: k3,k7,k11.")] = "k3,k7,k11",
    strict: Annotated[bool, typer.Option(help="Fail on an unreadable frame instead of skipping it.")] = False,
    no_ssim: Annotated[bool, typer.Option("--no-ssim", help="Skip SSIM (faster).")] = False,
    json_out: JsonOut = None,
) -> None:
    """PSNR/SSIM per kernel over a whole frame tree: blurred vs sharp (the baseline column).

    Every frame is resized to 256x448 and blurred with each seed kernel. Means count an
    identical frame (PSNR inf) as 100 dB; the 'identical' column counts them.
    """
    from toolkit.evaluate import evaluate_tree
    from toolkit.frames import discover_frames
    from toolkit.kernels import parse_kernels
    from toolkit.progress import make_progress
    from toolkit.report import eval_table

    ks = parse_kernels(kernels)
    total = len(discover_frames(sharp_dir))
    with make_progress(transient=True) as bar:
        task = bar.add_task("evaluating", total=total)
        result = evaluate_tree(sharp_dir, ks, strict=strict, with_ssim=not no_ssim,
                               progress=lambda done, _n: bar.update(task, completed=done))
    if str(json_out) != "-":
        console.print(eval_table(result))
        if result.skipped:
            err_console.print(f"[yellow]skipped {len(result.skipped)} unreadable frame(s):[/]")
            for path, reason in result.skipped:
                err_console.print(f"  {path}: {reason}")
    emit_json(json_out, result.to_json())


app.command("train", help=not_built("train", 3).__doc__)(not_built("train", 3))
app.command("export", help=not_built("export", 3).__doc__)(not_built("export", 3))
app.command("run", help=not_built("run", 5).__doc__)(not_built("run", 5))
app.command("bench", help=not_built("bench", 7).__doc__)(not_built("bench", 7))
app.command("build-engine", help=not_built("build-engine", 6).__doc__)(not_built("build-engine", 6))
app.command("quantize", help=not_built("quantize", 11).__doc__)(not_built("quantize", 11))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
