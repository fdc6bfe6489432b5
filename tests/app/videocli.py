"""`dtk` through the real CLI in-process, for the video tests (test_video_run, test_video_dali)."""

from __future__ import annotations

from typer.testing import CliRunner

from toolkit.app.cli import app


def dtk(*args):
    """Run `dtk ARGS`; the result's `said` is its output with Rich's wrapping undone."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    result.said = " ".join(result.output.split())
    return result


def run_video(clip, *extra, model):
    """`dtk run CLIP EXTRA` with `model` on ONNX Runtime (1 thread, batch 4)."""
    return dtk("run", clip, "--model", model, "--backend", "onnxruntime", "--threads", "1", "--batch", "4",
               *extra)
