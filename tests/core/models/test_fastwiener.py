"""The shipped fast model: its fixed bank equals the FFT prior inverse; sharp frames pass; blur is undone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.core.baselines import prior_inverse
from toolkit.core.kernels import KERNELS, blur
from toolkit.core.metrics import psnr, psnr_capped
from toolkit.core.models.fastwiener import (
    CLASSES,
    PRIOR_BANK,
    SeparableBank,
    class_index,
    prior_taps,
    separable_terms,
)


@pytest.fixture(scope="module")
def photo():
    """A real 256x448 colour frame: the first demo frame of scikit-image's chelsea (never trained on)."""
    from toolkit.core.demo import pan_windows, skimage_photo_path
    from toolkit.core.frames import read_frame

    return np.ascontiguousarray(pan_windows(read_frame(skimage_photo_path("chelsea")), 1)[0])


@pytest.fixture(scope="module")
def shipped():
    from toolkit.core.modelfiles import default_model_path
    from toolkit.core.models.checkpoint import load_model

    return load_model(default_model_path("torch"))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255)


def to_img(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1) * 255).round().byte().numpy().transpose(1, 2, 0)


def test_rank_8_terms_rebuild_the_41x41_taps():
    for kernel, balance in PRIOR_BANK:
        taps = prior_taps(kernel, balance)
        assert taps.shape == (41, 41) and abs(taps.sum() - 1) < 1e-9
        v, h = separable_terms(taps)
        rebuilt = sum(np.outer(v[i], h[i]) for i in range(len(v)))
        assert np.abs(rebuilt - taps).max() < 1e-3 * np.abs(taps).max()


@pytest.mark.parametrize("kernel", ["k7", "k11"])
def test_bank_matches_the_fft_prior_inverse_on_a_real_photo(photo, kernel):
    blurred = blur(photo, kernel)
    with torch.no_grad():
        bank = SeparableBank()
        spatial = to_img(bank.candidate(bank(to_tensor(blurred)), kernel))
    fft = prior_inverse(blurred, KERNELS[kernel])
    assert psnr(spatial, fft) > 40  # same filter, up to truncation and rank
    gain_spatial = psnr_capped(spatial, photo) - psnr_capped(blurred, photo)
    gain_fft = psnr_capped(fft, photo) - psnr_capped(blurred, photo)
    assert gain_spatial > 2.0 and abs(gain_spatial - gain_fft) < 0.3


def test_bank_outputs_are_filter_major():
    bank = SeparableBank()
    x = torch.zeros(1, 3, 64, 96)
    x[:, 1] = 0.5  # green only
    with torch.no_grad():
        y = bank(x)
    assert y.shape == (1, 3 * len(PRIOR_BANK), 64, 96)
    # a flat field stays flat in its own colour; rank 8 lowers the DC gain by 0.1 % (k7) and 0.34 % (k11),
    # which the shipped refiner was trained with (see MODEL.md)
    for f in range(len(PRIOR_BANK)):
        assert torch.allclose(y[:, 3 * f + 1], torch.full_like(y[:, 0], 0.5), rtol=0, atol=2.5e-3)
        assert y[:, 3 * f].abs().max() < 1e-4 and y[:, 3 * f + 2].abs().max() < 1e-4


def test_labels_map_sharp_and_k3_to_pass():
    assert class_index(["sharp", "k3", "k7", "k11"]).tolist() == [0, 0, 1, 2]
    assert CLASSES[0] == "pass"


def test_shipped_model_passes_sharp_and_k3_undoes_k7_and_never_harms(shipped, photo):
    """Round 3's contract: a pass is exactly the input; a deblurred frame is better than it."""
    from toolkit.core.models import count_parameters

    assert shipped.config.arch == "fastwiener" and count_parameters(shipped) < 15_000_000
    assert shipped.config.gate_deblur > 0  # the conservative gate (toolkit.core.models.head.gate)
    inputs = {k: photo if k == "sharp" else blur(photo, k) for k in ("sharp", "k3", "k7", "k11")}
    with torch.no_grad():
        out = {k: to_img(shipped(to_tensor(x))) for k, x in inputs.items()}
    for k in ("sharp", "k3"):
        assert np.array_equal(out[k], inputs[k]), k
    assert psnr_capped(out["k7"], photo) > psnr_capped(inputs["k7"], photo) + 2.0
    assert np.array_equal(out["k11"], inputs["k11"]) or (
        psnr_capped(out["k11"], photo) > psnr_capped(inputs["k11"], photo) + 2.0)


def test_bf16_autocast_leaves_the_bank_in_fp32(photo):
    bank = SeparableBank()
    x = to_tensor(blur(photo, "k11"))
    with torch.no_grad():
        ref = bank(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = bank(x)
    assert y.dtype == torch.float32 and torch.equal(y, ref)


def test_told_a_blur_the_frame_does_not_carry_the_shipped_model_passes_it(shipped, photo):
    """Round 4's told decision weighs only the told kernel's options, against its expected gain:
    a sharp frame told k7 or k11, and a k7 frame told k11, come back exactly as they went in; a k7
    frame told k7 is deblurred (docs/known-blur.md)."""
    k7 = blur(photo, "k7")
    with torch.no_grad():
        for x, told in ((photo, 1.0), (photo, 2.0), (k7, 2.0)):
            out = to_img(shipped(to_tensor(x), known=torch.tensor([[told]])))
            assert np.array_equal(out, x), told
        out = to_img(shipped(to_tensor(k7), known=torch.tensor([[1.0]])))
    assert psnr_capped(out, photo) > psnr_capped(k7, photo) + 2.0
