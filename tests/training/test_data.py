"""Training data: split by sequence (never by frame), seeded sampler, frame restriction, allowed photos."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.core.demo import TRAINING_EXCLUDED
from toolkit.core.errors import DtkError
from toolkit.core.kernels import KERNELS, blur
from training.data import (
    SHARP,
    BlurSampler,
    allowed_photo_sources,
    grid_windows,
    load_frames,
    split_by_sequence,
)


def test_split_by_sequence_never_by_frame(demo_dir):
    frames = load_frames(demo_dir)
    train, val = split_by_sequence(frames.names, 0.4, seed=3)
    assert set(train).isdisjoint(val) and sorted(train + val) == frames.names
    assert len(val) == 2
    assert split_by_sequence(list(reversed(frames.names)), 0.4, seed=3) == (train, val)
    train_px = {f.tobytes() for n in train for f in frames.sequences[n]}
    assert not any(f.tobytes() in train_px for n in val for f in frames.sequences[n])
    with pytest.raises(DtkError):
        split_by_sequence(["only"], 0.5)


def test_frames_restriction_and_sampler(demo_dir):
    frames = load_frames(demo_dir, frames=[1])
    assert all(len(v) == 1 for v in frames.sequences.values())
    kernels = list(KERNELS.values())
    a = BlurSampler(frames, kernels, crop=(64, 96), sharp_prob=0.3, seed=7)
    b = BlurSampler(frames, kernels, crop=(64, 96), sharp_prob=0.3, seed=7)
    xa, ya, la = a.batch(12)
    xb, yb, lb = b.batch(12)
    assert xa.shape == (12, 3, 64, 96) and la == lb and bool((xa == xb).all())
    assert SHARP in la and set(la) - {SHARP} <= set(KERNELS)
    for x, y, label in zip(xa, ya, la, strict=True):
        if label == SHARP:
            assert bool((x == y).all())
    # crops come from the blurred full frame, so they match a crop of blur(frame)
    one = load_frames(demo_dir, frames=[0]).subset(["astronaut"])
    sampler = BlurSampler(one, [KERNELS["k11"]], crop=(64, 96), seed=1)
    inp, target, _ = sampler.sample()
    y, x = sampler.last_origin
    full = one.sequences["astronaut"][0]
    assert np.array_equal(full[y:y + 64, x:x + 96], target)
    assert np.array_equal(blur(full, "k11")[y:y + 64, x:x + 96], inp)


def test_allowed_photos_exclude_demo():
    names = [n.split("_", 1)[1] for n, _, _ in allowed_photo_sources()]
    assert names and TRAINING_EXCLUDED.isdisjoint(names)


def test_grid_windows_cover_image():
    image = np.arange(600 * 1000 * 3, dtype=np.uint32).reshape(600, 1000, 3)
    wins = grid_windows(image, (256, 448))
    assert len(wins) == 3 * 3 and all(w.shape == (256, 448, 3) for w in wins)
    assert wins[-1][-1, -1, 0] == image[-1, -1, 0]
