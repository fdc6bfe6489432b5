"""`dtk run CLIP --pipeline dali|auto|fallback` through the real CLI: DALI's video decoder against
PyAV's (core.pipeline.dali_video) on a VP9 clip of real photos, the refusal of H.264 on a CPU, and
`auto` falling back to PyAV, recorded in the --json summary."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from typer.testing import CliRunner

from toolkit.app.cli import app

av = pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")
MIN_PSNR = 45.0  # DALI vs PyAV per frame; measured 49.4-51.8 dB on such clips (VP9, BT.709 limited)


def dali_missing():
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return True
    return False


needs_dali = pytest.mark.skipif(dali_missing(), reason="DALI not installed (pip install .[dali])")


@pytest.fixture(scope="module")
def onnx_model(tiny_model_dir):
    return tiny_model_dir / "m.onnx"


def dtk(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    result.said = " ".join(result.output.split())
    return result


def run_video(clip, *extra, model):
    return dtk("run", clip, "--model", model, "--backend", "onnxruntime", "--threads", "1", "--batch", "4",
               *extra)


def frames_and_times(path):
    """RGB frames (PyAV) and video pts in seconds of a video file."""
    from toolkit.core.video import VideoReader

    with VideoReader(path) as reader:
        frames = list(reader.frames())
        tb = reader.stream.time_base
    return [f.image for f in frames], [Fraction(f.pts) * tb for f in frames]


def audio_packets(path):
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@needs_dali
def test_dali_decoder_matches_pyav_frames_times_and_audio(make_clip, onnx_model, tmp_path):
    clip = tmp_path / "pan.mkv"
    make_clip(clip, Fraction(25), frames=8, size=(256, 448), codec="libvpx-vp9")
    outs = {}
    for pipeline in ("dali", "fallback"):
        out, doc = tmp_path / f"{pipeline}.mkv", tmp_path / f"{pipeline}.json"
        result = run_video(clip, "-o", out, "--codec", "ffv1", "--pipeline", pipeline, "--json", doc,
                           model=onnx_model)
        assert result.exit_code == 0, result.output
        summary = json.loads(doc.read_text())
        assert summary["decoder"] == ("dali-cpu" if pipeline == "dali" else "pyav")
        assert (summary["written"], summary["failed"]) == (8, 0)
        outs[pipeline] = out
    (dali, dali_t), (ref, ref_t) = frames_and_times(outs["dali"]), frames_and_times(outs["fallback"])
    assert len(dali) == len(ref) == 8 and dali_t == ref_t
    assert min(psnr(a, b) for a, b in zip(dali, ref, strict=True)) >= MIN_PSNR
    assert audio_packets(outs["dali"]) == audio_packets(clip)


@needs_dali
def test_dali_on_a_cpu_refuses_h264_naming_it_before_the_model_loads(make_clip, tmp_path, no_model_load):
    from toolkit.core.pipeline import _torch_cuda_available

    if _torch_cuda_available():
        pytest.skip("a GPU is visible: DALI decodes H.264 there (test_dali_gpu_decodes_h264)")
    clip = tmp_path / "pan.mp4"
    make_clip(clip, Fraction(25), frames=4, size=(256, 448), audio=False)
    result = dtk("run", clip, "-o", tmp_path / "out.mp4", "--pipeline", "dali")
    assert result.exit_code == 2, result.output
    said = result.said
    assert "cannot decode h264" in said and "GPU" in said and "--pipeline fallback" in said
    assert "Traceback" not in result.output and not (tmp_path / "out.mp4").exists()


def test_auto_decodes_h264_with_pyav_and_says_so(make_clip, onnx_model, tmp_path):
    clip = tmp_path / "pan.mp4"
    make_clip(clip, Fraction(25), frames=4, size=(256, 448), audio=False)
    doc = tmp_path / "run.json"
    result = run_video(clip, "--frames-out", tmp_path / "png", "--pipeline", "auto", "--json", doc,
                       model=onnx_model)
    assert result.exit_code == 0, result.output
    summary = json.loads(doc.read_text())
    assert (summary["decoder"], summary["written"]) == ("pyav", 4)


@pytest.mark.gpu
@needs_dali
def test_dali_gpu_decodes_h264_like_pyav(make_clip, onnx_model, tmp_path):
    clip = tmp_path / "pan.mp4"
    make_clip(clip, Fraction(25), frames=8, size=(256, 448))
    outs = {}
    for pipeline in ("dali", "fallback"):
        out, doc = tmp_path / f"{pipeline}.mkv", tmp_path / f"{pipeline}.json"
        result = run_video(clip, "-o", out, "--codec", "ffv1", "--pipeline", pipeline, "--json", doc,
                           model=onnx_model)
        assert result.exit_code == 0, result.output
        assert json.loads(doc.read_text())["decoder"] == ("dali-gpu" if pipeline == "dali" else "pyav")
        outs[pipeline] = out
    (dali, dali_t), (ref, ref_t) = frames_and_times(outs["dali"]), frames_and_times(outs["fallback"])
    assert len(dali) == len(ref) == 8 and dali_t == ref_t
    assert min(psnr(a, b) for a, b in zip(dali, ref, strict=True)) >= MIN_PSNR


def test_help_and_import_leave_dali_unloaded():
    import subprocess
    import sys

    code = ("import sys, toolkit, toolkit.app.video_run; from typer.testing import CliRunner; "
            "from toolkit.app.cli import app; CliRunner().invoke(app, ['--help']); "
            "print('nvidia.dali' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
