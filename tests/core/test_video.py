"""core.video / core.videowrite: colour (BT.601 vs BT.709, limited vs full range) both ways on flat
colours written as YUV from the standards' own formulas; probe; the untagged-matrix rule."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from toolkit.core.video import VideoReader, probe, resolve_colour
from toolkit.core.videowrite import VideoWriter, encode_settings

av = pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")

COLOURS = [(200, 40, 40), (40, 180, 60), (50, 60, 210), (128, 128, 128), (230, 200, 20), (16, 16, 16)]
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
TAG = {"bt601": 6, "bt709": 1}  # AVCOL_SPC_SMPTE170M, AVCOL_SPC_BT709
RANGE_TAG = {"limited": 1, "full": 2}
SIDE = 64


def rgb_to_yuv(rgb, matrix, rng):
    """Y, Cb, Cr code values of an 8-bit RGB colour (ITU-R BT.601/BT.709; limited: 16..235/240)."""
    kr, kb = KR_KB[matrix]
    r, g, b = (c / 255.0 for c in rgb)
    y = kr * r + (1 - kr - kb) * g + kb * b
    pb, pr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    if rng == "limited":
        return 16 + 219 * y, 128 + 224 * pb, 128 + 224 * pr
    return 255 * y, 128 + 255 * pb, 128 + 255 * pr


def write_yuv_clip(path, matrix, rng):
    """One flat frame per colour, yuv420p code values from `rgb_to_yuv`, lossless (FFV1), tagged."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = TAG[matrix], RANGE_TAG[rng]
        for i, rgb in enumerate(COLOURS):
            y, cb, cr = (int(np.clip(round(v), 0, 255)) for v in rgb_to_yuv(rgb, matrix, rng))
            planes = np.concatenate([np.full((SIDE, SIDE), y), np.full((SIDE // 4, SIDE), cb),
                                     np.full((SIDE // 4, SIDE), cr)]).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def read_colours(path):
    with VideoReader(path) as reader:
        return [f.image[SIDE // 2, SIDE // 2].astype(int) for f in reader.frames()]


@pytest.mark.parametrize("rng", ["limited", "full"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_decoded_colours_follow_the_stream_matrix_and_range(matrix, rng, tmp_path):
    clip = tmp_path / "flat.mkv"
    write_yuv_clip(clip, matrix, rng)
    info = probe(clip)
    assert (info.colour.matrix, info.colour.range, info.colour.assumed) == (matrix, rng, False)
    got = read_colours(clip)
    assert len(got) == len(COLOURS)
    for rgb, pixel in zip(COLOURS, got, strict=True):
        assert np.abs(pixel - np.array(rgb)).max() <= 2, (rgb, pixel)
    # the test tells the conventions apart: the other matrix (or range) puts a colour off by far more
    other = "bt709" if matrix == "bt601" else "bt601"
    off = [np.abs(np.array(rgb_to_yuv(c, matrix, rng)) - rgb_to_yuv(c, other, rng)).max() for c in COLOURS]
    assert max(off) > 10


@pytest.mark.parametrize("rng", ["limited", "full"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_written_colours_and_tags_round_trip(matrix, rng, tmp_path):
    src, out = tmp_path / "flat.mkv", tmp_path / "out.mkv"
    write_yuv_clip(src, matrix, rng)
    info = probe(src)
    settings = encode_settings(out, info, "ffv1")
    with VideoReader(src, info) as reader:
        writer = VideoWriter(out, info, settings)
        for f in reader.frames():
            writer.write(np.broadcast_to(np.array(COLOURS[f.index], np.uint8), (SIDE, SIDE, 3)), f.pts)
        writer.commit()
    back = probe(out)
    assert (back.colour.matrix, back.colour.range, back.pix_fmt) == (matrix, rng, "yuv420p")
    # the YUV code values written are the standard's for that matrix and range
    with av.open(str(out)) as c:
        planes = [f.to_ndarray() for f in c.decode(video=0)]
    for rgb, p in zip(COLOURS, planes, strict=True):
        want = rgb_to_yuv(rgb, matrix, rng)
        have = (p[SIDE // 2, SIDE // 2], p[SIDE + 2, SIDE // 4], p[SIDE + SIDE // 4 + 2, SIDE // 4])
        assert np.abs(np.array(have, float) - want).max() <= 1.5, (rgb, have, want)


def test_untagged_matrix_follows_the_frame_height():
    assert resolve_colour("yuv420p", 480, 2, 0, 2, 2).matrix == "bt601"
    assert resolve_colour("yuv420p", 720, 2, 0, 2, 2).matrix == "bt709"
    assert resolve_colour("yuvj420p", 720, 2, 0, 2, 2).range == "full"
    assert resolve_colour("yuv420p", 720, 2, 0, 2, 2).assumed
    assert resolve_colour("gbrp", 720, 0, 2, 2, 2).matrix == "rgb"


def test_frames_from_timing_counts_holes_on_the_rate_grid_and_nothing_off_it():
    from toolkit.core.video import frames_from_timing

    ms = Fraction(1, 1000)
    ntsc = [round(i * 1001 / 30) for i in range(10)]  # 29.97 fps stored in milliseconds: 33 or 34 ms apart
    assert frames_from_timing(ntsc, Fraction(30000, 1001), ms)[0] == 10
    assert frames_from_timing(ntsc[:4] + ntsc[6:], Fraction(30000, 1001), ms)[0] == 10  # 2 dropped inside
    end = Fraction(1001, 3000)  # 10 frames of 1001/30000 s
    assert frames_from_timing(ntsc[:8], Fraction(30000, 1001), ms, end=end)[0] == 10  # 2 missing at the end
    assert frames_from_timing([0, 40, 100, 120, 200], 25, ms) == (5, None)  # variable rate: its packets
    assert frames_from_timing([0, 40, 80], None, ms) == (3, None)  # no rate: its packets
