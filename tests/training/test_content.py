"""training.content: the content categories users' frames are, made from a real photo."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.core.errors import DtkError
from training.content import (
    CATEGORIES,
    GROUPS,
    TRAINING_CATEGORIES,
    category_frame,
    category_scene,
    training_frames,
)


@pytest.fixture(scope="module")
def photo():
    from toolkit.core.demo import skimage_photo_path
    from toolkit.core.frames import read_frame

    return read_frame(skimage_photo_path("coffee"))  # 400 x 600: holds every category's window


@pytest.mark.parametrize("name", list(CATEGORIES))
def test_every_category_makes_a_frame_of_the_size_asked(photo, name):
    frame = category_frame(photo, (128, 224), name, "coffee")
    assert frame is not None and frame.shape == (128, 224, 3) and frame.dtype == np.uint8
    again = category_frame(photo, (128, 224), name, "coffee")
    np.testing.assert_array_equal(frame, again)  # deterministic in (photo, category)


def test_categories_change_the_frame_as_their_kind_does(photo):
    own = category_frame(photo, (128, 224), "own", "coffee")
    for name in ("jpeg", "h264", "hevc", "denoised", "noisy", "up2x-lanczos"):
        other = category_frame(photo, (128, 224), name, "coffee")
        assert np.abs(other.astype(int) - own.astype(int)).mean() > 0.2, name
    up = category_frame(photo, (128, 224), "up2x-lanczos", "coffee").astype(float).mean(axis=2)
    rows = (up - up.mean(axis=1, keepdims=True)) * np.hanning(224)
    power = (np.abs(np.fft.rfft(rows, axis=1)) ** 2).mean(axis=0)
    f = np.fft.rfftfreq(224)
    assert power[f > 0.3].mean() < power[(f > 0.1) & (f < 0.2)].mean() / 100  # nothing above 0.25


def test_a_photo_too_small_gives_none_and_an_unknown_name_is_refused(photo):
    assert category_frame(photo[:100, :100], (128, 224), "own") is None
    with pytest.raises(DtkError, match="unknown content category"):
        category_frame(photo, (128, 224), "sepia")


def test_training_frames_cover_random_categories(photo):
    frames = training_frames({"coffee": photo}, (64, 96), 12, np.random.default_rng(0), label="t")
    assert len(frames) == 12 and {f["size"] for f in frames} == {"t"}
    assert len({f["category"] for f in frames}) > 4 and {f["group"] for f in frames} <= set(GROUPS)


def test_training_leaves_out_blurred_first_categories_and_a_scene_needs_the_photos_scale(photo):
    frames = training_frames({"coffee": photo}, (64, 96), 40, np.random.default_rng(1))
    assert "h264-recorded" not in TRAINING_CATEGORIES
    assert {f["category"] for f in frames} <= set(TRAINING_CATEGORIES)
    assert category_scene(photo, (128, 224), "own").shape == (128, 224, 3)
    with pytest.raises(DtkError, match="resamples"):
        category_scene(photo, (128, 224), "up2x-lanczos")
