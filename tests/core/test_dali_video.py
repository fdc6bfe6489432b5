"""core.pipeline.dali_video: which decoder runs, and DALI's RGB against PyAV's (the reference) on
flat colours of known value (VP9, lossless) for BT.601/BT.709, limited and full range."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from toolkit.core.errors import DtkError
from toolkit.core.pipeline import _dali_available
from toolkit.core.pipeline.dali_video import choose_decoder, colour_fix, unsupported
from toolkit.core.video import Colour, VideoInfo

COLOURS = [(200, 40, 40), (40, 180, 60), (50, 60, 210), (128, 128, 128), (230, 200, 20), (16, 16, 16),
           (255, 255, 255), (0, 0, 0)]
TAG = {"bt601": 6, "bt709": 1}
RANGE_TAG = {"limited": 1, "full": 2}


def info(codec, pix_fmt="yuv420p"):
    return VideoInfo(path="clip.mkv", container="matroska", codec=codec, width=448, height=256,
                     pix_fmt=pix_fmt, frames=8, rate=Fraction(25), time_base=Fraction(1, 1000),
                     colour=Colour("bt709", "limited"))


def test_choice_of_decoder_per_pipeline_device_and_codec():
    assert choose_decoder(info("h264"), "fallback", gpu=True) == "pyav"
    assert choose_decoder(info("vp9"), "auto", gpu=False) == "pyav"  # CPU: PyAV stays the default
    assert choose_decoder(info("h264"), "auto", gpu=False) == "pyav"
    assert choose_decoder(info("h264"), "auto", gpu=True) == "pyav"  # NVDEC path not yet run on a GPU
    if not _dali_available():  # the quickstart's venv: asking for DALI says how to get it
        with pytest.raises(DtkError, match="DALI not installed"):
            choose_decoder(info("h264"), "dali", gpu=True)
    else:
        assert choose_decoder(info("h264"), "dali", gpu=True) == "dali-gpu"
    assert choose_decoder(info("h264", "yuv420p10le"), "auto", gpu=True) == "pyav"
    assert choose_decoder(info("ffv1"), "auto", gpu=True) == "pyav"
    assert unsupported(info("vp9"), "cpu") is None and unsupported(info("libdav1d"), "gpu") is None
    assert "needs DALI on a GPU" in unsupported(info("h264"), "cpu")
    with pytest.raises(DtkError, match="frame folders"):
        choose_decoder(info("vp9"), "torch", gpu=False)


@pytest.mark.skipif(not _dali_available(), reason="DALI not installed (pip install .[dali])")
def test_dali_on_a_cpu_takes_vp9_and_refuses_h264_naming_it():
    assert choose_decoder(info("vp9"), "dali", gpu=False) == "dali-cpu"
    with pytest.raises(DtkError, match=r"cannot decode h264.*GPU.*--pipeline fallback"):
        choose_decoder(info("h264"), "dali", gpu=False)
    with pytest.raises(DtkError, match="8-bit 4:2:0"):
        choose_decoder(info("vp9", "yuv444p"), "dali", gpu=False)


def test_colour_fix_is_identity_for_bt601_and_keeps_grey():
    assert colour_fix("bt601") is None
    fix = colour_fix("bt709")
    assert np.allclose(fix @ np.ones(3), np.ones(3))  # greys stay grey (Y unchanged)


@pytest.mark.skipif(not _dali_available(), reason="DALI not installed (pip install .[dali])")
@pytest.mark.parametrize("rng", ["limited", "full"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_dali_colours_match_pyav_within_2_levels(matrix, rng, tmp_path):
    av = pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")
    from toolkit.core.pipeline.dali_video import dali_frames
    from toolkit.core.video import VideoReader

    clip = tmp_path / "flat.webm"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libvpx-vp9", rate=25, options={"lossless": "1"})
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = TAG[matrix], RANGE_TAG[rng]
        swscale_matrix = 5 if matrix == "bt601" else 1
        for rgb in COLOURS:
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), rgb, np.uint8), format="rgb24").reformat(
                format="yuv420p", dst_colorspace=swscale_matrix, dst_color_range=RANGE_TAG[rng])
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with VideoReader(clip) as reader:
        ref = [f.image for f in reader.frames()]
    with VideoReader(clip) as reader:
        got = list(dali_frames(reader, "cpu"))
    assert len(got) == len(ref) == len(COLOURS)
    for rgb, want, f in zip(COLOURS, ref, got, strict=True):
        assert np.abs(want[32, 32].astype(int) - rgb).max() <= 2
        assert np.abs(f.image.astype(int) - want).max() <= 2, (rgb, f.image[32, 32], want[32, 32])
