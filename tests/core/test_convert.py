"""One rounding rule for float -> uint8, wherever dtk converts."""

from __future__ import annotations

import numpy as np
import torch

from toolkit.core.convert import from_nchw, nchw_to_nhwc_uint8, round_uint8, to_nchw, unit_to_uint8
from toolkit.core.kernels import blur
from training.sampler import quantize


def test_ties_round_to_even_and_clip():
    x = np.array([-3.0, 0.5, 1.5, 2.5, 254.5, 300.0])
    assert round_uint8(x).tolist() == [0, 0, 2, 2, 254, 255]


def test_unit_and_255_scales_agree_with_torch():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 8, 8), dtype=np.float32) * 1.2 - 0.1
    x.flat[:4] = np.array([0.5, 1.5, 2.5, 3.5], dtype=np.float32) / 255  # exact ties
    a = unit_to_uint8(x)
    b = quantize(torch.from_numpy(x)).numpy()
    assert np.array_equal(a, b)
    assert np.array_equal(nchw_to_nhwc_uint8(x), a.transpose(0, 2, 3, 1))
    assert all(np.array_equal(f, a[i].transpose(1, 2, 0)) for i, f in enumerate(from_nchw(x)))


def test_round_trip_is_exact():
    img = np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    assert np.array_equal(nchw_to_nhwc_uint8(to_nchw(img)), img)
    assert np.array_equal(from_nchw(to_nchw(list(img)))[1], img[1])


def test_blur_uses_the_same_rule(astronaut):
    out = blur(astronaut, "k7")
    ref = round_uint8(blur(astronaut.astype(np.float32), "k7"))
    assert np.array_equal(out, ref)
