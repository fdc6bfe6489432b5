import numpy as np
import pytest
from scipy.ndimage import convolve

from toolkit.core.errors import DtkError
from toolkit.core.kernels import KERNELS, blur, gaussian_taps, get_kernel, parse_kernels


def reference_blur(image: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Independent float64 reference: direct 2-D convolution with numpy's reflect (= reflect-101) pad."""
    r = size // 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    g2 = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    g2 /= g2.sum()
    padded = np.pad(image.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
    out = np.zeros(image.shape, dtype=np.float64)
    h, w = image.shape[:2]
    for dy in range(size):
        for dx in range(size):
            out += g2[dy, dx] * padded[dy:dy + h, dx:dx + w]
    return out


def test_seed_kernel_definitions():
    assert {k: (v.size, v.sigma) for k, v in KERNELS.items()} == {
        "k3": (3, 0.3), "k7": (7, 1.0), "k11": (11, 1.6)}


@pytest.mark.parametrize("name", list(KERNELS))
def test_taps_normalised_and_symmetric(name):
    taps = KERNELS[name].taps_1d()
    assert taps.shape == (KERNELS[name].size,)
    assert taps.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(taps, taps[::-1])
    assert taps.argmax() == len(taps) // 2
    assert KERNELS[name].taps_2d().sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", list(KERNELS))
def test_blur_matches_float64_reference_within_one_lsb(name, astronaut):
    k = KERNELS[name]
    ref = np.clip(np.rint(reference_blur(astronaut, k.size, k.sigma)), 0, 255)
    out = blur(astronaut, k)
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("name", list(KERNELS))
def test_float_blur_matches_scipy_mirror(name, astronaut):
    k = KERNELS[name]
    img = astronaut.astype(np.float32)
    ref = np.stack([convolve(img[:, :, c].astype(np.float64), k.taps_2d(), mode="mirror")
                    for c in range(3)], axis=2)
    np.testing.assert_allclose(blur(img, k), ref, atol=2e-3)


def test_blur_border_is_reflect_101():
    # a single bright pixel in the corner: reflect-101 mirrors it without duplicating the edge row
    img = np.zeros((9, 9, 1), dtype=np.float32)
    img[0, 0, 0] = 1.0
    out = blur(img, "k3")
    taps = gaussian_taps(3, 0.3)
    # reflect-101 maps row/col -1 to 1 (zero here), so only the centre tap sees the pixel;
    # plain reflect (edge repeated) would add taps[0] * taps[1] terms
    assert out[0, 0, 0] == pytest.approx(taps[1] ** 2, rel=1e-5)
    assert out[1, 1, 0] == pytest.approx(taps[0] ** 2, rel=1e-5)


def test_even_or_bad_kernel_rejected():
    with pytest.raises(ValueError):
        gaussian_taps(4, 1.0)
    with pytest.raises(DtkError, match="k5"):
        get_kernel("k5")
    assert [k.name for k in parse_kernels("all")] == ["k3", "k7", "k11"]
    assert [k.name for k in parse_kernels("k11, k3")] == ["k11", "k3"]
