"""The tile grid of native-resolution runs: coverage, partition, alignment, padding, bounds."""

import cv2
import numpy as np
import pytest

from toolkit.core.errors import DtkError
from toolkit.core.tiles import (
    ALIGN,
    DEFAULT_OVERLAP,
    check_overlap,
    evidence_tiles,
    pad_frame,
    tile_grid,
)

SIZES = [(256, 448), (720, 1280), (1080, 1920), (1081, 1921), (257, 449), (100, 60), (1, 1),
         (1, 2000), (2000, 1), (263, 4000), (4320, 7680)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("overlap", [0, 32, DEFAULT_OVERLAP, 128])
def test_interiors_partition_the_frame_and_tiles_cover_it(size, overlap):
    g = tile_grid(*size, overlap=overlap)
    ph, pw = g.padded
    assert ph >= max(size[0], 256) and pw >= max(size[1], 448)
    assert ph % ALIGN == 0 and pw % ALIGN == 0
    kept = np.zeros((ph, pw), dtype=np.int32)
    covered = np.zeros((ph, pw), dtype=bool)
    for t in g.tiles:
        assert t.y % ALIGN == 0 and t.x % ALIGN == 0  # same pixel phases as a whole-frame pass
        assert 0 <= t.y <= ph - 256 and 0 <= t.x <= pw - 448
        y0, y1, x0, x1 = t.keep
        assert t.y <= y0 < y1 <= t.y + 256 and t.x <= x0 < x1 <= t.x + 448  # kept inside its tile
        kept[y0:y1, x0:x1] += 1
        covered[t.y:t.y + 256, t.x:t.x + 448] = True
    assert covered.all()
    assert (kept == 1).all()  # every pixel from exactly one tile


@pytest.mark.parametrize("size", [(720, 1280), (1080, 1920), (1000, 3000)])
def test_kept_pixels_are_at_least_half_the_overlap_from_inner_tile_edges(size):
    overlap = DEFAULT_OVERLAP
    g = tile_grid(*size, overlap=overlap)
    ph, pw = g.padded
    for t in g.tiles:
        y0, y1, x0, x1 = t.keep
        if y0 > 0:
            assert y0 - t.y >= overlap // 2
        if y1 < ph:
            assert t.y + 256 - y1 >= overlap // 2
        if x0 > 0:
            assert x0 - t.x >= overlap // 2
        if x1 < pw:
            assert t.x + 448 - x1 >= overlap // 2


def test_tile_counts_of_common_frame_sizes():
    assert len(tile_grid(256, 448)) == 1
    assert len(tile_grid(100, 60)) == 1  # smaller frames are padded to one tile, never enlarged
    assert len(tile_grid(720, 1280)) == 16
    assert len(tile_grid(1080, 1920)) == 30
    assert tile_grid(720, 1280).overlap_share == pytest.approx(1 - 720 * 1280 / (16 * 256 * 448))


def test_evidence_tiles_cover_the_frame_without_overlap_where_it_fits():
    g = tile_grid(1024, 1792)  # 4 x 4 tiles exactly
    assert evidence_tiles(g) == [(y, x) for y in (0, 256, 512, 768) for x in (0, 448, 896, 1344)]
    assert evidence_tiles(tile_grid(256, 448)) == [(0, 0)]


@pytest.mark.parametrize("bad", [-8, 4, 7, 136, 1000])
def test_bad_overlaps_are_refused(bad):
    with pytest.raises(DtkError, match="--tile-overlap"):
        check_overlap(bad)


def test_zero_and_negative_sides_are_refused():
    with pytest.raises(DtkError, match="cannot be deblurred"):
        tile_grid(0, 448)


def test_padding_is_reflect_101_like_opencv_and_a_noop_when_it_fits():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (100, 60, 3), dtype=np.uint8)
    padded = pad_frame(image, (256, 448))
    assert padded.shape == (256, 448, 3)
    ref = cv2.copyMakeBorder(image, 0, 156, 0, 388, cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(padded, ref)
    exact = rng.integers(0, 256, (256, 448, 3), dtype=np.uint8)
    assert pad_frame(exact, (256, 448)) is exact


def test_one_pixel_sides_are_replicated():
    line = np.arange(3 * 5, dtype=np.uint8).reshape(1, 5, 3)
    padded = pad_frame(line, (256, 448))
    assert padded.shape == (256, 448, 3)
    np.testing.assert_array_equal(padded[:, :5], np.repeat(line, 256, axis=0))
