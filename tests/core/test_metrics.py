import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from toolkit.core.kernels import blur
from toolkit.core.metrics import format_db, json_number, psnr, rgb_to_y, ssim


@pytest.mark.parametrize("kernel", ["k3", "k7", "k11"])
def test_psnr_and_ssim_agree_with_skimage(astronaut, kernel):
    blurred = blur(astronaut, kernel)
    assert psnr(blurred, astronaut) == pytest.approx(
        peak_signal_noise_ratio(astronaut, blurred, data_range=255), rel=1e-9)
    expected = structural_similarity(astronaut, blurred, data_range=255, channel_axis=-1,
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(blurred, astronaut) == pytest.approx(expected, abs=1e-6)


def test_identical_images_give_inf_and_json_null(astronaut):
    assert psnr(astronaut, astronaut) == math.inf
    assert ssim(astronaut, astronaut) == pytest.approx(1.0)
    assert json_number(math.inf) is None
    assert json_number(31.5) == 31.5
    assert format_db(math.inf) == "inf"
    assert format_db(31.456) == "31.46"


def test_psnr_known_value():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    b[...] = 1  # MSE = 1 -> 20 log10(255)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255))


def test_y_channel_is_bt601_like_basicsr():
    white = np.full((2, 2, 3), 255, dtype=np.uint8)
    black = np.zeros((2, 2, 3), dtype=np.uint8)
    assert rgb_to_y(white)[0, 0] == pytest.approx(235.0, abs=1e-3)
    assert rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    # Y PSNR ignores a pure chroma-free difference only through luma weights
    img = np.full((8, 8, 3), 100, dtype=np.uint8)
    img2 = img.copy()
    img2[..., 1] += 10
    expected = 10 * math.log10(255**2 / (10 * 128.553 / 255) ** 2)
    assert psnr(img, img2, y_channel=True) == pytest.approx(expected)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        psnr(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)))


def test_worse_share_counts_frames_more_than_a_tenth_of_a_db_below_their_input():
    import math

    from toolkit.core.metrics import WORSE_DB, worse_share

    assert WORSE_DB == 0.1
    # (output, input): 0.05 below is not worse, 1 dB below is; identical frames (inf) count 100 dB
    pairs = [(30.0, 30.05), (40.0, 41.0), (math.inf, math.inf), (99.0, math.inf)]
    assert worse_share(pairs) == 0.5
    assert worse_share(pairs, margin=0.0) == 0.75
    assert math.isnan(worse_share([]))
