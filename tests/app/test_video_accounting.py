"""Every video frame accounted for, and refusals that cost nothing, through the real CLI (`dtk run
CLIP -o OUT`, `--frames-out`, a folder holding videos): a finished output is trusted only when it
verifies, frames the demuxer drops are counted, a size change is never silently resized, streams
not copied are reported, odd sizes are written, a zero-frame clip is refused first; a refused run
prints no backend line or progress bar and leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
from fractions import Fraction

import numpy as np
import pytest
from videocli import dtk, run_video  # tests/app/videocli.py

from toolkit.core.frames import read_frame, write_png_atomic

av = pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")

SIZE = (64, 96)  # one tile per frame: the content does not matter here


def images(path):
    """The decoded RGB frames of a video (None: a frame listed as failed or dropped)."""
    from toolkit.core.video import VideoReader

    with VideoReader(path) as reader:
        return [f.image for f in reader.frames()]


def voided(path, frames):
    """Turn the Matroska SimpleBlocks of `frames` (0-based) into Void elements: the demuxer skips
    them without a word, as it skips damaged blocks."""
    with av.open(str(path)) as c:
        positions = [p.pos for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    for i in frames:
        at = data.rfind(b"\xa3", positions[i] - 8, positions[i])  # SimpleBlock's ID before its size
        assert at > 0
        data[at] = 0xEC  # EBML Void
    path.write_bytes(bytes(data))
    return path


def size_change_clip(path, sizes=((64, 96), (32, 48)), frames=3):
    """An H.264 MPEG-TS clip of `frames` frames at each size in turn, timestamps contiguous (two
    segments one after the other, as a capture that switches resolution writes them)."""
    data, start = b"", 0
    for h, w in sizes:
        part = path.with_name(f"part{h}.ts")
        with av.open(str(part), "w", format="mpegts") as c:
            v = c.add_stream("libx264", rate=25, options={"bf": "0"})
            v.height, v.width, v.pix_fmt = h, w, "yuv420p"
            for i in range(frames):
                image = np.full((h, w, 3), 40 * (start + i) % 255, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
                frame.pts, frame.time_base = start + i, Fraction(1, 25)
                for packet in v.encode(frame):
                    c.mux(packet)
            for packet in v.encode(None):
                c.mux(packet)
        data += part.read_bytes()
        part.unlink()
        start += frames
    path.write_bytes(data)
    return path


def zero_frame_clip(path):
    """A Matroska file whose header holds a video stream (size and pixel format: raw video) and no
    frame: its blocks voided."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("rawvideo", rate=25)
        v.height, v.width, v.pix_fmt = (*SIZE, "yuv420p")
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((*SIZE, 3), np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode(None):
            c.mux(packet)
    return voided(path, [0, 1])


def listing(root):
    """Every path under `root` (hidden ones included), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def nothing_started(result):
    """A refusal printed its one line: no backend line, no progress bar, no traceback."""
    assert not re.search(r"^backend: ", result.output, re.M), result.output
    assert "deblurring" not in result.output, result.output
    assert "Traceback" not in result.output


@pytest.fixture
def mkv(make_clip, tmp_path):
    """A 6-frame FFV1 Matroska clip of 64x96, no audio."""
    clip = tmp_path / "clip.mkv"
    make_clip(clip, 25, frames=6, size=SIZE, codec="ffv1", audio=False)
    return clip


# -- 1. a finished output is trusted only when it verifies ----------------------------------------

def test_a_truncated_finished_video_is_redone_not_already_done(mkv, onnx_model, tmp_path):
    out, js = tmp_path / "out.mkv", tmp_path / "s.json"
    assert run_video(mkv, "-o", out, "--codec", "ffv1", model=onnx_model).exit_code == 0
    manifest = json.loads((tmp_path / "out.mkv.dtk-run.json").read_text())
    assert manifest["check"] == {"bytes": out.stat().st_size, "frames": 6, "size": list(SIZE),
                                 "codec": "ffv1"}
    whole = out.read_bytes()
    out.write_bytes(whole[:len(whole) - 300])  # the last frames cut off, as a full disk or a copy would
    result = run_video(mkv, "-o", out, "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    assert "was made with these settings" not in result.said  # not "already done"
    assert "is not the video its run manifest recorded" in result.said
    doc = json.loads(js.read_text())
    assert doc["written"] == 6 and doc["skipped_done"] == 0 and "redoing it" in doc["warnings"][0]
    assert len(images(out)) == 6 and out.stat().st_size == len(whole)
    result = run_video(mkv, "-o", out, "--codec", "ffv1", model=onnx_model)  # now it verifies
    assert result.exit_code == 0 and "already done" in result.said


def test_a_folder_runs_truncated_video_is_redone(mkv, onnx_model, tmp_path):
    src, out, js = tmp_path / "in", tmp_path / "out", tmp_path / "s.json"
    src.mkdir()
    mkv.rename(src / "clip.mkv")
    assert run_video(src, "-o", out, "--codec", "ffv1", model=onnx_model).exit_code == 0
    video = out / "clip.mkv"
    video.write_bytes(video.read_bytes()[:-200])
    result = run_video(src, "-o", out, "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    [row] = json.loads(js.read_text())["videos"]
    assert (row["status"], row["written"]) == ("written", 6) and "redoing it" in row["warnings"][0]
    assert "is not the video its run manifest recorded" in result.said and len(images(video)) == 6


# -- 2. frames the demuxer drops are counted ------------------------------------------------------

@pytest.mark.parametrize(("damaged", "missing"), [([2, 3], ["frame 2", "frame 3"]),
                                                  ([4, 5], ["frame 4", "frame 5"])], ids=["middle", "end"])
def test_damaged_matroska_blocks_are_dropped_frames_exit_3_and_strict_exit_2(damaged, missing, mkv,
                                                                              onnx_model, tmp_path):
    voided(mkv, damaged)
    out, js = tmp_path / "out.mkv", tmp_path / "s.json"
    result = run_video(mkv, "-o", out, "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 3, result.output
    doc = json.loads(js.read_text())
    assert (doc["frames_total"], doc["written"], doc["dropped_frames"], doc["failed"]) == (6, 4, 2, 2)
    assert [f["frame"].split(" (")[0] for f in doc["failures"]] == missing
    assert "2 of the 6 frames the container counts are missing" in result.said
    result = run_video(mkv, "-o", tmp_path / "strict.mkv", "--codec", "ffv1", "--strict", model=onnx_model)
    assert result.exit_code == 2 and missing[0] in result.said and "missing from the file" in result.said
    assert not list(tmp_path.glob("*strict.mkv*"))
    result = run_video(mkv, "--frames-out", tmp_path / "pngs", "--json", js, model=onnx_model)
    assert result.exit_code == 3 and json.loads(js.read_text())["dropped_frames"] == 2


def test_a_folder_counts_a_videos_dropped_frames(mkv, onnx_model, tmp_path):
    src, js = tmp_path / "in", tmp_path / "s.json"
    src.mkdir()
    voided(mkv, [1]).rename(src / "clip.mkv")
    result = run_video(src, "-o", tmp_path / "out", "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 3, result.output
    [row] = json.loads(js.read_text())["videos"]
    assert (row["written"], row["dropped_frames"], row["failed"]) == (5, 1, 1)


def test_a_variable_rate_matroska_clip_is_not_taken_for_a_damaged_one(onnx_model, tmp_path):
    clip, js = tmp_path / "vfr.mkv", tmp_path / "s.json"
    with av.open(str(clip), "w") as c:
        v = c.add_stream("ffv1", rate=25)
        v.height, v.width, v.pix_fmt = (*SIZE, "yuv420p")
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate([0, 40, 100, 120, 200, 290]):  # off the 25 fps grid
            frame = av.VideoFrame.from_ndarray(np.full((*SIZE, 3), 30 * i, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode(None):
            c.mux(packet)
    result = run_video(clip, "-o", tmp_path / "out.mkv", "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert (doc["frames_total"], doc["written"], doc["dropped_frames"]) == (6, 6, 0)


# -- 3. a size change mid-stream ------------------------------------------------------------------

def test_a_size_change_mid_stream_fails_the_video_and_frames_out_keeps_each_size(onnx_model, tmp_path):
    clip = size_change_clip(tmp_path / "switch.ts")
    result = run_video(clip, "-o", tmp_path / "new" / "out.mp4", model=onnx_model)
    assert result.exit_code == 2, result.output
    assert "size changes mid-stream" in result.said and "--frames-out" in result.said
    assert not (tmp_path / "new").exists()  # no video, no temporary file, no folder it made

    pngs, js = tmp_path / "pngs", tmp_path / "s.json"
    assert run_video(clip, "--frames-out", pngs, model=onnx_model).exit_code == 0
    assert [read_frame(pngs / f"{i:08d}.png").shape[:2] for i in range(6)] == [(64, 96)] * 3 + [(32, 48)] * 3
    result = run_video(clip, "--frames-out", pngs, "--json", js, model=onnx_model)  # every PNG is done
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert (doc["written"], doc["skipped_done"]) == (0, 6)


def test_a_size_change_fails_that_video_of_a_folder_only(mkv, onnx_model, tmp_path):
    src, js = tmp_path / "in", tmp_path / "s.json"
    (src / "sub").mkdir(parents=True)
    size_change_clip(src / "sub" / "switch.ts")
    mkv.rename(src / "ok.mkv")
    result = run_video(src, "-o", tmp_path / "out", "--json", js, model=onnx_model)
    assert result.exit_code == 3, result.output
    rows = {r["input"].rsplit("/", 1)[1]: r for r in json.loads(js.read_text())["videos"]}
    assert rows["switch.ts"]["status"] == "failed" and "size changes" in rows["switch.ts"]["reason"]
    assert rows["ok.mkv"]["status"] == "written" and len(images(tmp_path / "out" / "ok.mkv")) == 6
    assert not (tmp_path / "out" / "sub").exists()  # the failed video's folder is not left empty


# -- 4. streams not copied --------------------------------------------------------------------------

def test_a_second_video_stream_is_reported_not_copied(onnx_model, tmp_path):
    clip, js = tmp_path / "two.mkv", tmp_path / "s.json"
    with av.open(str(clip), "w") as c:
        streams = []
        for h, w in (SIZE, (32, 48)):
            v = c.add_stream("ffv1", rate=25)
            v.height, v.width, v.pix_fmt = h, w, "yuv420p"
            streams.append((v, h, w))
        for i in range(3):
            for v, h, w in streams:
                frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 50 * i, np.uint8), format="rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = i, Fraction(1, 25)
                for packet in v.encode(frame):
                    c.mux(packet)
        for v, _h, _w in streams:
            for packet in v.encode(None):
                c.mux(packet)
    result = run_video(clip, "-o", tmp_path / "out.mkv", "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 0, result.output
    assert "stream 1 (video, ffv1) is not copied" in result.said
    doc = json.loads(js.read_text())
    assert doc["streams_not_copied"] == [{"index": 1, "type": "video", "codec": "ffv1"}]
    assert "stream 1 (video, ffv1) is not copied" in doc["warnings"][0]

    src = tmp_path / "in"
    src.mkdir()
    clip.rename(src / "two.mkv")
    result = run_video(src, "-o", tmp_path / "out", "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 0 and "stream 1 (video, ffv1) is not copied" in result.said
    [row] = json.loads(js.read_text())["videos"]
    assert row["streams_not_copied"] == [{"index": 1, "type": "video", "codec": "ffv1"}]


# -- 5. odd sizes ------------------------------------------------------------------------------------

def test_an_odd_sized_video_is_written_as_444_at_its_size_and_420_is_refused_first(make_clip, onnx_model,
                                                                                  tmp_path, monkeypatch):
    clip = tmp_path / "odd.mkv"
    make_clip(clip, 25, frames=3, size=(65, 97), codec="ffv1", audio=False)
    out = tmp_path / "out.mp4"
    result = run_video(clip, "-o", out, model=onnx_model)  # default encoder: libx264
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt, cc.width, cc.height) == ("h264", "yuv444p", 97, 65)
    assert len(images(out)) == 3

    from engines.spec import RunnerSpec

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(RunnerSpec, "open", boom)
    result = run_video(clip, "-o", tmp_path / "o420.mp4", "--pix-fmt", "yuv420p", model=onnx_model)
    assert result.exit_code == 2 and "even width and height" in result.said
    nothing_started(result)


def test_one_failing_video_never_aborts_the_others_of_a_folder(make_clip, onnx_model, tmp_path, monkeypatch):
    """An odd-sized video is written (4:4:4 at its size); an encoder error in another fails that
    one alone, listed, exit 3."""
    from toolkit.core import videowrite

    src, out, js = tmp_path / "in", tmp_path / "out", tmp_path / "s.json"
    src.mkdir()
    for name, size in (("a.mkv", (65, 97)), ("b.mkv", SIZE), ("c.mkv", SIZE)):  # a: odd, written as 4:4:4
        make_clip(src / name, 25, frames=3, size=size, codec="ffv1", audio=False)
    write = videowrite.VideoWriter.write

    def encoder_error(self, image, pts):
        if self.path.name == "b.mkv":
            raise av.error.ExternalError(542398533, "Generic error in an external library")
        return write(self, image, pts)

    monkeypatch.setattr(videowrite.VideoWriter, "write", encoder_error)
    result = run_video(src, "-o", out, "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    rows = {r["input"].rsplit("/", 1)[1]: r["status"] for r in json.loads(js.read_text())["videos"]}
    assert rows == {"a.mkv": "written", "b.mkv": "failed", "c.mkv": "written"}
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv", "a.mkv.dtk-run.json", "c.mkv",
                                                     "c.mkv.dtk-run.json"]


# -- 6. a zero-frame video -------------------------------------------------------------------------

def test_a_zero_frame_video_is_refused_before_the_model_loads(onnx_model, tmp_path, no_model_load):
    clip = zero_frame_clip(tmp_path / "empty.mkv")
    for args in (["-o", tmp_path / "out.mkv"], ["--frames-out", tmp_path / "pngs"]):
        result = dtk("run", clip, *args)
        assert result.exit_code == 2, result.output
        assert "empty.mkv holds no video frames" in result.said
        nothing_started(result)
    assert listing(tmp_path) == ["empty.mkv"]


def test_a_zero_frame_video_in_a_folder_is_counted_unreadable(mkv, onnx_model, tmp_path):
    src, js = tmp_path / "in", tmp_path / "s.json"
    src.mkdir()
    zero_frame_clip(src / "empty.mkv")
    mkv.rename(src / "ok.mkv")
    result = run_video(src, "-o", tmp_path / "out", "--codec", "ffv1", "--json", js, model=onnx_model)
    assert result.exit_code == 3, result.output
    rows = {r["input"].rsplit("/", 1)[1]: r for r in json.loads(js.read_text())["videos"]}
    assert rows["empty.mkv"]["status"] == "failed" and "no video frames" in rows["empty.mkv"]["reason"]
    assert rows["ok.mkv"]["status"] == "written"


# -- 7-10. checks before loading; a refused run leaves nothing behind and prints no bar ---------------

def test_an_output_in_a_folder_no_file_can_be_created_in_names_that_folder(mkv, tmp_path, no_model_load):
    if not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    for args in (["-o", "/proc/o.mp4"], ["--frames-out", "/proc/frames"], ["-o", tmp_path / "o.mkv",
                                                                            "--json", "/proc/s.json"]):
        result = dtk("run", mkv, *args)
        assert result.exit_code == 2, result.output
        assert "lock" not in result.said and "/proc" in result.said
        assert "not writable" in result.said or "no file can be created" in result.said
        nothing_started(result)


def refused_case(name, tmp_path, make_clip):
    """(dtk run arguments, the folder that must be left as it was, the refusal's words) of `name`."""
    if name == "unvouched PNGs":
        frames, theirs = tmp_path / "frames", tmp_path / "theirs"
        write_png_atomic(frames / "a.png", np.zeros((*SIZE, 3), np.uint8))
        write_png_atomic(theirs / "x.png", np.zeros((*SIZE, 3), np.uint8))  # no manifest vouches for it
        return [frames, "-o", theirs], theirs, "no run manifest"
    if name == "frames-out made otherwise":
        clip, pngs = tmp_path / "clip.mkv", tmp_path / "pngs"
        make_clip(clip, 25, frames=2, size=SIZE, codec="ffv1", audio=False)
        write_png_atomic(pngs / "00000000.png", np.zeros((*SIZE, 3), np.uint8))
        (pngs / ".dtk-run.json").write_text(json.dumps({"format": "dtk-run/1", "settings": {"blur": "k3"}}))
        return [clip, "--frames-out", pngs], pngs, "other settings"
    if name == "empty input":
        (tmp_path / "empty").mkdir()
        return [tmp_path / "empty", "-o", tmp_path / "new" / "out"], tmp_path, "no frames"
    if name == "missing input":
        return [tmp_path / "gone.mp4", "-o", tmp_path / "g.mp4"], tmp_path, "does not exist"
    assert name == "input linked into output"
    linked, linked_out = tmp_path / "linked", tmp_path / "linked-out"
    write_png_atomic(linked_out / "b.png", np.zeros((*SIZE, 3), np.uint8))
    linked.mkdir()
    (linked / "b.png").symlink_to(linked_out / "b.png")  # a frame of INPUT that is a file of OUTPUT
    return [linked, "-o", linked_out], linked_out, "inside OUTPUT"


@pytest.mark.parametrize("name", ["unvouched PNGs", "frames-out made otherwise", "empty input",
                                  "missing input", "input linked into output"])
def test_a_refused_run_prints_no_backend_line_or_bar_and_leaves_nothing_behind(name, make_clip, onnx_model,
                                                                               tmp_path):
    args, folder, words = refused_case(name, tmp_path, make_clip)
    before = listing(folder)
    result = run_video(*args, model=onnx_model)
    assert result.exit_code == 2, result.output
    assert words in result.said, result.said
    nothing_started(result)
    assert listing(folder) == before  # no lock, no folder, no file


def test_a_run_leaves_no_lock_and_a_finished_videos_rerun_shows_no_bar(mkv, onnx_model, tmp_path, demo_dir):
    out = tmp_path / "sharp"
    result = run_video(demo_dir, "-o", out, model=onnx_model)
    assert result.exit_code == 0, result.output
    assert not list(out.rglob(".dtk-run.lock"))  # a lock exists only while a run holds it

    video = tmp_path / "out.mkv"
    assert run_video(mkv, "-o", video, "--codec", "ffv1", model=onnx_model).exit_code == 0
    result = run_video(mkv, "-o", video, "--codec", "ffv1", model=onnx_model)
    assert result.exit_code == 0 and "already done" in result.said
    nothing_started(result)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))) == [
        "out.mkv", "out.mkv.dtk-run.json"]
