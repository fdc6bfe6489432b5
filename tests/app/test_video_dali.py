"""`dtk run CLIP --pipeline dali|auto|fallback` through the real CLI: DALI's video decoder against
PyAV's (core.pipeline.dali_video) on a VP9 clip of real photos, the refusal of H.264 on a CPU, and
`auto` falling back to PyAV, recorded in the --json summary."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from videocli import dtk, run_video  # tests/app/videocli.py

from toolkit.core.metrics import psnr
from toolkit.core.pipeline import _dali_available

av = pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")
MIN_PSNR = 45.0  # DALI vs PyAV per frame; measured 49.4-51.8 dB on such clips (VP9, BT.709 limited)


needs_dali = pytest.mark.skipif(not _dali_available(), reason="DALI not installed (pip install .[dali])")


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


def run_both_decoders(clip, tmp_path, model, dali_decoder):
    """`dtk run CLIP` with --pipeline dali and fallback into lossless DIR/<pipeline>.mkv; checks
    each run's decoder and that DALI's 8 frames match PyAV's (timestamps exact, pixels within
    MIN_PSNR); returns {pipeline: --json summary}."""
    summaries = {}
    for pipeline, decoder in (("dali", dali_decoder), ("fallback", "pyav")):
        out, doc = tmp_path / f"{pipeline}.mkv", tmp_path / f"{pipeline}.json"
        result = run_video(clip, "-o", out, "--codec", "ffv1", "--pipeline", pipeline, "--json", doc,
                           model=model)
        assert result.exit_code == 0, result.output
        summaries[pipeline] = json.loads(doc.read_text())
        assert summaries[pipeline]["decoder"] == decoder
    (dali, dali_t), (ref, ref_t) = (frames_and_times(tmp_path / f"{p}.mkv") for p in ("dali", "fallback"))
    assert len(dali) == len(ref) == 8 and dali_t == ref_t
    assert min(psnr(a, b) for a, b in zip(dali, ref, strict=True)) >= MIN_PSNR
    return summaries


@needs_dali
def test_dali_decoder_matches_pyav_frames_times_and_audio(make_clip, onnx_model, tmp_path):
    clip = tmp_path / "pan.mkv"
    make_clip(clip, Fraction(25), frames=8, size=(256, 448), codec="libvpx-vp9")
    summaries = run_both_decoders(clip, tmp_path, onnx_model, "dali-cpu")
    for summary in summaries.values():
        assert (summary["written"], summary["failed"]) == (8, 0)
    assert audio_packets(tmp_path / "dali.mkv") == audio_packets(clip)


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
    run_both_decoders(clip, tmp_path, onnx_model, "dali-gpu")


def test_help_and_import_leave_dali_unloaded():
    import subprocess
    import sys

    code = ("import sys, toolkit, toolkit.app.video_run; from typer.testing import CliRunner; "
            "from toolkit.app.cli import app; CliRunner().invoke(app, ['--help']); "
            "print('nvidia.dali' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@needs_dali
def test_a_folder_run_with_dali_decodes_its_videos_with_dali_where_dali_can(make_clip, onnx_model, tmp_path):
    from toolkit.core.frames import write_png_atomic

    src, out, js = tmp_path / "in", tmp_path / "out", tmp_path / "run.json"
    for sub in ("a", "b"):
        (src / sub).mkdir(parents=True)
    images = make_clip(src / "a" / "pan.mkv", Fraction(25), frames=4, size=(256, 448), codec="libvpx-vp9",
                       audio=False)
    make_clip(src / "b" / "pan.mp4", Fraction(25), frames=4, size=(256, 448), audio=False)  # H.264
    write_png_atomic(src / "seq" / "00000000.png", images[0])
    result = run_video(src, "-o", out, "--pipeline", "dali", "--codec", "ffv1", "--json", js,
                       model=onnx_model)
    assert result.exit_code == 0, result.output
    rows = {row["input"].split("/")[-2]: row for row in json.loads(js.read_text())["videos"]}
    assert (rows["a"]["decoder"], rows["b"]["decoder"]) == ("dali-cpu", "pyav")  # no H.264 on DALI's CPU
    assert all(row["status"] == "written" and row["written"] == 4 for row in rows.values())
    got, want = frames_and_times(out / "a" / "pan.mkv"), frames_and_times(out / "b" / "pan.mp4")
    assert len(got[0]) == len(want[0]) == 4 and got[1] == want[1]
