"""The tile grid of native-resolution runs: coverage, partition, alignment, padding, bounds."""

import cv2
import numpy as np
import pytest

from toolkit.core.errors import DtkError
from toolkit.core.tiles import (
    ALIGN,
    ANY_SIZE,
    DEFAULT_OVERLAP,
    TILE_STEP,
    check_overlap,
    choose_tile,
    evidence_tiles,
    fixed_tile,
    large_tile,
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


FULL_HD = 1088 * 1920


@pytest.mark.parametrize("size", [(720, 1280), (1080, 1920), (256, 448), (719, 1279), (300, 2000)])
def test_a_frame_that_fits_the_budget_is_one_tile_of_its_own_size(size):
    tile = choose_tile(*size, ANY_SIZE, FULL_HD)
    assert tile == tuple(-(-s // ALIGN) * ALIGN for s in size)  # padded to ALIGN only: no enlarging
    assert len(tile_grid(*size, tile)) == 1


def test_small_frames_are_padded_as_before_large_tiles():
    assert choose_tile(100, 60, ANY_SIZE, FULL_HD) == (256, 448)
    assert choose_tile(200, 1000, ANY_SIZE, FULL_HD) == (256, 1000)


@pytest.mark.parametrize("size", [(720, 1280), (1080, 1920), (2160, 3840), (4320, 7680), (263, 4000)])
@pytest.mark.parametrize("budget", [FULL_HD, 921_600, 300_000, 114_688])
def test_large_tiles_are_the_fewest_that_fit_the_budget(size, budget):
    th, tw = large_tile(*size, budget)
    grid = tile_grid(*size, (th, tw))
    assert th * tw <= budget
    if len(grid) > 1:  # sides of cut frames: a few sizes, multiples of TILE_STEP, or the whole axis
        assert all(s % TILE_STEP == 0 or s == p for s, p in zip((th, tw), grid.padded, strict=True))
    # no grid of fewer tiles (sides multiples of TILE_STEP, or the whole axis) fits the budget
    def side(length, count):  # the shortest side `count` tiles of it can have
        if count == 1:
            return length
        shortest = -(-(length + (count - 1) * DEFAULT_OVERLAP) // count)
        return min(length, -(-shortest // TILE_STEP) * TILE_STEP)

    ny, nx = len({t.y for t in grid.tiles}), len({t.x for t in grid.tiles})
    assert len(grid) == ny * nx
    for a in range(1, ny * nx):
        for b in range(1, (ny * nx - 1) // a + 1):
            assert side(grid.padded[0], a) * side(grid.padded[1], b) > budget


def test_a_budget_no_tile_fits_is_refused():
    with pytest.raises(DtkError, match="--max-tile-pixels"):
        large_tile(720, 1280, 1000)


def test_fixed_sizes_the_largest_that_fits_the_frame_else_the_smallest():
    sizes = [(256, 448), (720, 1280), (1080, 1920)]
    assert fixed_tile(1080, 1920, sizes) == (1080, 1920)
    assert fixed_tile(1079, 1920, sizes) == (1080, 1920)  # 1079 rows pad to 1080 (ALIGN) anyway
    assert fixed_tile(1000, 1920, sizes) == (720, 1280)  # 1080 rows would pad the frame
    assert fixed_tile(720, 1000, sizes) == (256, 448)
    assert fixed_tile(100, 100, sizes) == (256, 448)  # none fits: the smallest, as before
    assert fixed_tile(1080, 1920, sizes, max_pixels=1_000_000) == (720, 1280)  # the budget caps it
    assert choose_tile(1080, 1920, [(256, 448)], FULL_HD) == (256, 448)
