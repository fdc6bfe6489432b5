"""`dtk run CLIP -o OUT.mp4` / `--frames-out DIR` through the real CLI: frame-exact timing, copied
audio, the same pixels as `dtk run` on the clip's PNG frames, resume, refusals and corrupt input."""

from __future__ import annotations

import json
import time
from fractions import Fraction

import numpy as np
import pytest
from videocli import dtk, run_video  # tests/app/videocli.py

from toolkit.app.request import RunRequest
from toolkit.core.frames import read_frame, write_png_atomic
from toolkit.core.metrics import psnr

av = pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")


def streams(path):
    """(video pts as seconds, size, colour tags), [(audio pts as seconds, packet bytes)]."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        cc = vs.codec_context
        tags = (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc)
        size = (cc.height, cc.width)
        times = sorted(Fraction(p.pts) * vs.time_base for p in c.demux(vs) if p.size)
    with av.open(str(path)) as c:
        sound = [(Fraction(p.pts) * p.time_base, bytes(p)) for p in c.demux(c.streams.audio[0]) if p.size]
    return times, size, tags, sound


def decoded(path):
    from toolkit.core.video import VideoReader

    with VideoReader(path) as reader:
        return [f.image for f in reader.frames()]


# the NTSC rate checks timestamps and audio only: the deblurred pixels do not depend on the rate
@pytest.mark.parametrize(("rate", "frames", "against_pngs"), [(Fraction(25), 24, True),
                                                              (Fraction(30000, 1001), 12, False)],
                         ids=["25fps", "29.97fps"])
def test_video_out_is_frame_exact_with_its_audio_and_matches_the_png_run(rate, frames, against_pngs,
                                                                         make_clip, onnx_model, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, rate, frames=frames)
    out, js = tmp_path / "sharp.mp4", tmp_path / "run.json"
    result = run_video(clip, "-o", out, "--codec", "libx264", "--crf", "0", "--blur", "k7", "--json", js,
                       model=onnx_model)
    assert result.exit_code == 0, result.output

    times_in, size_in, tags_in, sound_in = streams(clip)
    times_out, size_out, tags_out, sound_out = streams(out)
    assert len(times_in) == len(times_out) == frames
    assert times_out == times_in and size_out == size_in == (272, 480) and tags_out == tags_in
    assert sound_out == sound_in and len(sound_in) > 10  # the AAC packets, byte for byte, same times

    doc = json.loads(js.read_text())
    assert doc["written"] == frames and doc["failed"] == 0 and doc["encode"]["codec"] == "libx264"
    assert set(doc["time_shares"]) == {"decode", "compute", "encode", "other"} and doc["compute_s"] > 0
    manifest = json.loads((tmp_path / "sharp.mp4.dtk-run.json").read_text())
    assert manifest["settings"]["video"]["source"]["rate"] == str(rate)
    assert manifest["settings"]["video"]["output"]["crf"] == 0 and manifest["settings"]["blur"] == "k7"
    if not against_pngs:
        return

    # the same clip as PNG frames through `dtk run` on a folder
    frames_dir, frames_sharp = tmp_path / "frames", tmp_path / "frames-sharp"
    for i, image in enumerate(decoded(clip)):
        write_png_atomic(frames_dir / f"{i:08d}.png", image)
    result = dtk("run", frames_dir, "-o", frames_sharp, "--model", onnx_model, "--backend", "onnxruntime",
                 "--threads", "1", "--batch", "4", "--blur", "k7")
    assert result.exit_code == 0, result.output
    expected = [read_frame(p) for p in sorted(frames_sharp.glob("*.png"))]
    got = decoded(out)
    assert len(got) == len(expected) == 24
    scores = [psnr(a, b) for a, b in zip(got, expected, strict=True)]
    assert min(scores) >= 45.0, scores

    # --frames-out: the very PNGs of the folder run
    pngs = tmp_path / "pngs"
    result = run_video(clip, "--frames-out", pngs, "--blur", "k7", model=onnx_model)
    assert result.exit_code == 0, result.output
    for i, want in enumerate(expected):
        assert np.array_equal(read_frame(pngs / f"{i:08d}.png"), want), i


def test_frames_out_resumes_and_refuses_other_settings(make_clip, onnx_model, tmp_path):
    clip, pngs = tmp_path / "clip.mkv", tmp_path / "pngs"
    make_clip(clip, 25, frames=6, size=(256, 448), codec="ffv1")
    assert run_video(clip, "--frames-out", pngs, model=onnx_model).exit_code == 0
    (pngs / "00000003.png").unlink()
    (pngs / "00000004.png").write_bytes((pngs / "00000004.png").read_bytes()[:100])  # truncated
    js = tmp_path / "s.json"
    result = run_video(clip, "--frames-out", pngs, "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert (doc["written"], doc["skipped_done"]) == (2, 4)
    assert all(read_frame(pngs / f"{i:08d}.png").shape == (256, 448, 3) for i in range(6))
    result = run_video(clip, "--frames-out", pngs, "--blur", "k3", model=onnx_model)
    assert result.exit_code == 2 and "other settings" in result.said


def test_existing_output_needs_overwrite_and_output_may_not_be_the_input(make_clip, tmp_path, no_model_load):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, 25, frames=2, size=(256, 448), audio=False)
    before = clip.read_bytes()
    result = dtk("run", clip, "-o", clip)
    assert result.exit_code == 2 and "never writes over its inputs" in result.said
    (tmp_path / "old.mp4").write_bytes(b"x")
    result = dtk("run", clip, "-o", tmp_path / "old.mp4")
    assert result.exit_code == 2 and "--overwrite" in result.said
    result = dtk("run", clip, "-o", tmp_path / "out.mp4", "--frames-out", tmp_path / "d")
    assert result.exit_code == 2 and "give one of them" in result.said
    result = dtk("run", clip, "-o", tmp_path / "out.xyz")
    assert result.exit_code == 2 and "suffixes" in result.said
    result = dtk("run", clip, "-o", tmp_path / "out.mp4", "--codec", "ffv1", "--crf", "3")
    assert result.exit_code == 2 and "no CRF scale" in result.said
    result = dtk("run", clip, "-o", tmp_path / "out.mp4", "--crf", "99")
    assert result.exit_code == 2 and "--crf must be" in result.said
    result = dtk("run", clip, "-o", tmp_path / "out.mp4", "--resize")
    assert result.exit_code == 2 and "--resize is for frame folders" in result.said
    assert clip.read_bytes() == before and not (tmp_path / "out.mp4").exists()


def test_a_rerun_skips_the_finished_video_clears_a_killed_runs_file_and_waits_for_no_one(
        make_clip, onnx_model, tmp_path, monkeypatch):
    from engines.spec import RunnerSpec
    from toolkit.app.outputs import lock_path_for

    clip, out, js = tmp_path / "clip.mkv", tmp_path / "sharp.mkv", tmp_path / "again.json"
    make_clip(clip, 25, frames=3, size=(256, 448), codec="ffv1", audio=False)
    assert run_video(clip, "-o", out, "--codec", "ffv1", model=onnx_model).exit_code == 0
    before = out.stat().st_mtime_ns
    killed = tmp_path / ".sharp.mkv.0badc0de.tmp"  # what a SIGKILLed run leaves
    killed.write_bytes(b"half a video")
    other = tmp_path / ".other.mkv.0badc0de.tmp"  # another output's: not ours to remove
    other.write_bytes(b"x")

    def boom(*_a, **_k):
        raise AssertionError("a finished video's rerun loaded the model")

    with monkeypatch.context() as m:
        m.setattr(RunnerSpec, "open", boom)
        result = run_video(clip, "-o", out, "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    assert "already done" in result.said and out.stat().st_mtime_ns == before
    doc = json.loads(js.read_text())
    assert (doc["written"], doc["skipped_done"], doc["failed"]) == (0, 3, 0)
    assert not killed.exists() and other.exists()

    result = run_video(clip, "-o", out, "--codec", "ffv1", "--blur", "k7", model=onnx_model)
    assert result.exit_code == 2 and "other settings" in result.said and "--overwrite" in result.said
    assert out.stat().st_mtime_ns == before

    from toolkit.app.outputs import file_lock

    with file_lock(lock_path_for(out), out):  # a second run while one writes OUT: refused
        result = run_video(clip, "-o", out, "--codec", "ffv1", "--overwrite", model=onnx_model)
    assert result.exit_code == 2 and "another dtk run is writing" in result.said
    assert out.stat().st_mtime_ns == before
    result = run_video(clip, "-o", out, "--codec", "ffv1", "--blur", "k7", "--overwrite", model=onnx_model)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "sharp.mkv.dtk-run.json").read_text())["settings"]["blur"] == "k7"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".other.mkv.0badc0de.tmp"]


def test_a_container_that_cannot_hold_the_codecs_is_refused_first(make_clip, tmp_path, no_model_load):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, 25, frames=2, size=(256, 448))  # H.264 + AAC
    result = dtk("run", clip, "-o", tmp_path / "out.webm", "--codec", "libvpx-vp9")
    assert result.exit_code == 2 and "cannot hold the input's aac audio" in result.said
    result = dtk("run", clip, "-o", tmp_path / "out.mp4", "--codec", "utvideo")
    assert result.exit_code == 2 and "cannot hold utvideo video" in result.said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_the_default_encoder_fits_the_output_container(make_clip, onnx_model, tmp_path):
    from toolkit.core.videowrite import default_codec

    assert default_codec("mp4") == "libx264" and default_codec("webm") == "libvpx-vp9"
    clip = tmp_path / "clip.webm"
    make_clip(clip, 25, frames=3, size=(256, 448), codec="libvpx-vp9", audio=False)
    result = run_video(clip, "-o", tmp_path / "out.webm", model=onnx_model)  # no --codec
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "out.webm")) as c:
        assert c.streams.video[0].codec_context.name == "vp9" and c.streams.video[0].frames in (0, 3)
    assert len(decoded(tmp_path / "out.webm")) == 3


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n" * 40,
                                     "truncated"], ids=["empty", "text", "truncated"])
def test_a_file_that_is_no_video_is_a_one_line_error(content, make_clip, tmp_path, no_model_load):
    bad = tmp_path / "bad.mp4"
    if content == "truncated":
        make_clip(tmp_path / "ok.mp4", 25, frames=4, size=(256, 448))
        bad.write_bytes((tmp_path / "ok.mp4").read_bytes()[:300])  # the header cut short
    else:
        bad.write_bytes(content)
    result = dtk("run", bad, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "bad.mp4" in result.said
    assert not list(tmp_path.glob("*out.mp4*"))


def test_audio_only_file_is_refused(tmp_path, no_model_load):
    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as out:
        sound = out.add_stream("flac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*sound.encode(frame), *sound.encode(None)]:
            out.mux(packet)
    result = dtk("run", path, "-o", tmp_path / "out.mkv")
    assert result.exit_code == 2 and "no video stream" in result.said


def test_corrupt_frame_mid_stream_is_listed_exit_3_and_strict_exit_2(make_clip, onnx_model, tmp_path):
    clip = tmp_path / "clip.mov"
    make_clip(clip, 25, frames=6, size=(256, 448), codec="png", pix_fmt="rgb24", audio=False)
    with av.open(str(clip)) as c:
        payloads = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(clip.read_bytes())
    at = data.find(payloads[3])
    assert at > 0
    middle = at + len(payloads[3]) // 2
    data[middle:middle + 64] = b"\xff" * 64  # inside frame 3's compressed image data
    clip.write_bytes(bytes(data))

    out, js = tmp_path / "out.mkv", tmp_path / "s.json"
    result = run_video(clip, "-o", out, "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 3, result.output
    doc = json.loads(js.read_text())
    assert doc["written"] == 5 and [f["frame"].split(" (")[0] for f in doc["failures"]] == ["frame 3"]
    assert [im is None for im in decoded(out)] == [False] * 3 + [True] + [False] * 2  # its hole, accounted
    result = run_video(clip, "-o", tmp_path / "strict.mkv", "--codec", "ffv1", "--strict", model=onnx_model)
    assert result.exit_code == 2 and "frame 3" in result.said
    assert not list(tmp_path.glob("*strict.mkv*"))  # no video, no temporary file left


def interrupt_second_batch(monkeypatch) -> None:
    """Ctrl-C while the run deblurs its second batch of frames."""
    from engines import tiled
    from toolkit.app import execute

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return tiled.deblur_frames(*args, **kwargs)

    monkeypatch.setattr(execute, "deblur_frames", interrupted)


def test_interrupted_run_leaves_no_video_under_the_final_name(make_clip, onnx_model, tmp_path, monkeypatch):
    clip, out = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    make_clip(clip, 25, frames=8, size=(256, 448))
    interrupt_second_batch(monkeypatch)
    result = run_video(clip, "-o", out, model=onnx_model)
    assert result.exit_code == 130 and "interrupted" in result.said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no video, temp file or manifest


def test_eval_scores_a_video_output_against_its_sharp_video(make_clip, onnx_model, tmp_path):
    clip, out, js = tmp_path / "clip.mp4", tmp_path / "out.mp4", tmp_path / "eval.json"
    make_clip(clip, Fraction(30000, 1001), frames=6, size=(256, 448))
    assert run_video(clip, "-o", out, "--blur", "k7", "--crf", "0", model=onnx_model).exit_code == 0
    result = dtk("eval", clip, "--predictions", out, "--kernels", "k7", "--native", "--baselines", "none",
                 "--no-ssim", "--json", js)
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert doc["root"] == str(clip)
    rows = {(r["kernel"], r["method"]): r for r in doc["summary"]}
    assert rows[("k7", "predictions")]["frames"] == rows[("k7", "blurred")]["frames"] == 6
    short = tmp_path / "short.mp4"
    make_clip(short, Fraction(30000, 1001), frames=5, size=(256, 448))
    result = dtk("eval", clip, "--predictions", short, "--kernels", "k7", "--native")
    assert result.exit_code == 2 and "does not hold" in result.said


def test_variable_frame_rate_keeps_every_timestamp(onnx_model, tmp_path):
    from toolkit.core.demo import pan_windows, skimage_photo_path

    clip, out = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    stamps = [0, 40, 100, 120, 200, 290, 300, 380]  # ms: irregular gaps
    images = pan_windows(read_frame(skimage_photo_path("coffee")), len(stamps), (256, 448))
    with av.open(str(clip), "w") as c:
        video = c.add_stream("libx264", rate=25, options={"crf": "12", "bf": "0"})
        video.width, video.height, video.pix_fmt = 448, 256, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        for image, pts in zip(images, stamps, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for packet in video.encode(frame):
                c.mux(packet)
        for packet in video.encode(None):
            c.mux(packet)
    with av.open(str(clip)) as c:
        times_in = [Fraction(f.pts) * f.time_base for f in c.decode(video=0)]
    assert times_in == [Fraction(ms, 1000) for ms in stamps]  # the clip really is VFR
    assert run_video(clip, "-o", out, "--crf", "0", model=onnx_model).exit_code == 0
    with av.open(str(out)) as c:
        assert [Fraction(f.pts) * f.time_base for f in c.decode(video=0)] == times_in


def test_resumable_run_resumes_after_an_interrupt_and_cleans_up(make_clip, onnx_model, tmp_path, monkeypatch):
    clip, out, whole = tmp_path / "clip.mp4", tmp_path / "out.mp4", tmp_path / "whole.mp4"
    make_clip(clip, Fraction(30000, 1001), frames=8, size=(256, 448))
    assert run_video(clip, "-o", whole, "--crf", "0", model=onnx_model).exit_code == 0  # never interrupted
    interrupt_second_batch(monkeypatch)
    result = run_video(clip, "-o", out, "--crf", "0", "--resumable", model=onnx_model)
    assert result.exit_code == 130 and "to resume" in result.said
    work = tmp_path / ".out.mp4.dtk-frames"
    assert not out.exists()
    assert sorted(p.name for p in work.glob("*.png")) == [f"{i:08d}.png" for i in range(4)]

    monkeypatch.undo()  # the run is not interrupted again
    js = tmp_path / "s.json"
    result = run_video(clip, "-o", out, "--crf", "0", "--resumable", "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert (doc["written"], doc["skipped_done"], doc["network_passes"]) == (4, 4, 4)  # only 4 deblurred
    assert not work.exists()
    assert streams(out)[0] == streams(clip)[0] and streams(out)[3] == streams(clip)[3]
    assert all(np.array_equal(a, b) for a, b in zip(decoded(out), decoded(whole), strict=True))


def frame_folder_with_a_video(root, make_clip):
    """root/seq/00000000.png, 00000001.png (real photos) and root/sub/deeper/clip.mp4 (6 frames)."""
    (root / "sub" / "deeper").mkdir(parents=True)
    images = make_clip(root / "sub" / "deeper" / "clip.mp4", 25, frames=6, size=(256, 448))
    for i, image in enumerate(images[:2]):
        write_png_atomic(root / "seq" / f"{i:08d}.png", image[:, ::-1])
    return root / "sub" / "deeper" / "clip.mp4"


def test_folder_with_frames_and_a_video_writes_both_and_a_rerun_skips_them(make_clip, onnx_model, tmp_path):
    src, out, js = tmp_path / "in", tmp_path / "out", tmp_path / "run.json"
    clip = frame_folder_with_a_video(src, make_clip)
    result = run_video(src, "-o", out, "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    assert "video 1/1 sub/deeper/clip.mp4" in result.said
    assert sorted(p.name for p in (out / "seq").glob("*.png")) == ["00000000.png", "00000001.png"]
    video = out / "sub" / "deeper" / "clip.mp4"
    assert streams(video)[0] == streams(clip)[0] and streams(video)[1] == (256, 448)  # timing, size
    assert streams(video)[3] == streams(clip)[3]  # the audio, copied
    doc = json.loads(js.read_text())
    assert (doc["frames_total"], doc["written"], doc["failed"]) == (2, 2, 0)
    [row] = doc["videos"]
    assert (row["status"], row["frames"], row["written"], row["rate"]) == ("written", 6, 6, "25")
    assert row["encode"]["codec"] == "libx264" and row["output"] == str(video)
    assert json.loads((out / "sub/deeper/clip.mp4.dtk-run.json").read_text())["failed"] == 0

    before = video.stat().st_mtime_ns
    result = run_video(src, "-o", out, "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert (doc["written"], doc["skipped_done"], doc["videos"][0]["status"]) == (0, 2, "already done")
    assert video.stat().st_mtime_ns == before
    result = run_video(src, "-o", out, "--crf", "0", model=onnx_model)  # another encoding: refused
    assert result.exit_code == 2 and "other settings" in result.said and "--overwrite" in result.said
    assert video.stat().st_mtime_ns == before


def test_a_corrupt_video_among_good_ones_is_listed_and_the_others_written(make_clip, onnx_model, tmp_path):
    src, out, js = tmp_path / "in", tmp_path / "out", tmp_path / "run.json"
    (src / "bad").mkdir(parents=True)
    make_clip(src / "good.mkv", 25, frames=6, size=(256, 448), codec="ffv1", audio=False)
    (src / "bad" / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    result = run_video(src, "-o", out, "--json", js, "--codec", "ffv1", model=onnx_model)
    assert result.exit_code == 3, result.output
    assert "bad/broken.mp4" in result.said and "Traceback" not in result.output
    assert len(decoded(out / "good.mkv")) == 6
    assert not (out / "bad").exists() or not list((out / "bad").iterdir())
    doc = json.loads(js.read_text())
    rows = {r["input"]: r for r in doc["videos"]}
    assert rows[str(src / "good.mkv")]["status"] == "written"
    assert rows[str(src / "bad" / "broken.mp4")]["status"] == "failed"
    assert "broken.mp4" in rows[str(src / "bad" / "broken.mp4")]["reason"]


def test_folder_options_that_do_not_apply_are_refused_first(make_clip, tmp_path, no_model_load):
    src = tmp_path / "in"
    frame_folder_with_a_video(src, make_clip)
    result = dtk("run", src, "-o", tmp_path / "out", "--frames-out", tmp_path / "pngs")
    assert result.exit_code == 2 and "--frames-out DIR is for a video file INPUT" in result.said
    assert "Traceback" not in result.output
    result = dtk("run", src, "-o", tmp_path / "out", "--resize")
    assert result.exit_code == 2 and "--resize is for frame folders" in result.said
    assert "holds 1 video(s) (first: sub/deeper/clip.mp4)" in result.said
    frames_only = tmp_path / "frames"
    write_png_atomic(frames_only / "a.png", read_frame(src / "seq" / "00000000.png"))
    result = dtk("run", frames_only, "-o", tmp_path / "out", "--codec", "ffv1")
    assert result.exit_code == 2 and "--codec is for videos" in result.said
    assert not (tmp_path / "out").exists() and not (tmp_path / "pngs").exists()


def test_folder_video_interrupted_resumes_with_resumable(make_clip, onnx_model, tmp_path, monkeypatch):
    src, out, js = tmp_path / "in", tmp_path / "out", tmp_path / "run.json"
    src.mkdir()
    make_clip(src / "clip.mkv", 25, frames=8, size=(256, 448), codec="ffv1", audio=False)
    interrupt_second_batch(monkeypatch)
    result = run_video(src, "-o", out, "--codec", "ffv1", "--resumable", model=onnx_model)
    assert result.exit_code == 130 and "interrupted" in result.said
    assert not (out / "clip.mkv").exists() and len(list((out / ".clip.mkv.dtk-frames").glob("*.png"))) == 4
    monkeypatch.undo()
    result = run_video(src, "-o", out, "--codec", "ffv1", "--resumable", "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    row = json.loads(js.read_text())["videos"][0]
    assert (row["status"], row["written"], row["skipped_done"]) == ("written", 4, 4)
    assert len(decoded(out / "clip.mkv")) == 8 and not (out / ".clip.mkv.dtk-frames").exists()


def test_decoding_and_encoding_overlap_compute(make_clip, tmp_path, monkeypatch):
    """A clip runs through the folder run's loop: the next batch is decoded and the previous one
    encoded (with the audio copied beside it) while the runner works on this one."""
    from test_run import Sleepy  # tests/app/test_run.py

    from toolkit.app.video_run import deblur_video, plan_video
    from toolkit.core.video import VideoReader
    from toolkit.core.videowrite import VideoWriter

    clip, out = tmp_path / "clip.mp4", tmp_path / "out.mkv"
    make_clip(clip, 25, frames=10, size=(256, 448))
    job = plan_video(clip, output=out, frames_out=None, codec="ffv1")
    write, frames = VideoWriter.write, VideoReader.frames

    def slow_write(self, image, pts):  # encoding a large frame
        time.sleep(0.15)
        write(self, image, pts)

    def slow_frames(self, on_packet=None):  # decoding large frames
        for f in frames(self, on_packet=on_packet):
            time.sleep(0.15)
            yield f

    monkeypatch.setattr(VideoWriter, "write", slow_write)
    monkeypatch.setattr(VideoReader, "frames", slow_frames)
    s = deblur_video(job, Sleepy(0.3), RunRequest(batch=1))  # 10 batches: in turn >= 6 s, overlapped ~3.3 s
    assert s.written == 10 and not s.failed and out.is_file()
    assert s.decode_s + s.encode_s < 0.4 * s.compute_s, s.to_json()
    assert s.wall_s < 1.4 * s.compute_s, s.to_json()
    assert len(decoded(out)) == 10 and len(streams(out)[3]) == len(streams(clip)[3])  # every audio packet
