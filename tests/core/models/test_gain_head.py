"""Round 4's decision by expected gain: band energies, the gain head's decision rule, export."""

from __future__ import annotations

import numpy as np
import torch

from toolkit.core.models.bands import BandEnergies
from toolkit.core.models.head import GAIN_OPTIONS, gain_decision


def _reference_bands(frame: np.ndarray) -> np.ndarray:
    """The same energies by NumPy: each band's taps convolved along every 4th row / column."""
    from toolkit.core.models.bands import BANDS, LUMA, STRIDE, TAPS, band_edges, bandpass_taps

    y = frame.astype(np.float64) @ np.array(LUMA) / 255.0
    edges, p = band_edges(BANDS), TAPS // 2
    out = []
    for lines in (y[STRIDE // 2::STRIDE], y[:, STRIDE // 2::STRIDE].T):
        padded = np.pad(lines, ((0, 0), (p, p)), mode="reflect")  # reflect-101
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            taps = bandpass_taps(lo, hi)
            filtered = np.stack([np.convolve(row, taps[::-1], mode="valid") for row in padded])
            out.append(np.mean(filtered ** 2))
    return np.array(out)


def test_band_energies_match_numpy_and_see_a_cut_off(astronaut):
    x = torch.from_numpy(astronaut.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    got = BandEnergies()(x).numpy()[0]
    np.testing.assert_allclose(got, _reference_bands(astronaut), rtol=1e-3, atol=1e-9)
    # a 2x upscale leaves nothing above 0.25 cycles/pixel; a k7 blur rolls off without a cut
    import cv2

    from toolkit.core.kernels import blur

    def bands(img):
        return BandEnergies()(torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0))[0]

    up = cv2.resize(astronaut[::2, ::2], (448, 256), interpolation=cv2.INTER_LANCZOS4)
    sharp, up, k7 = (np.log10(bands(i).numpy()[:16]) for i in (astronaut, up, blur(astronaut, "k7")))
    # bands 3 and 7: 0.09-0.12 and 0.22-0.25 cycles/pixel (below 2x's cut); band 10: 0.31-0.34 (above)
    assert abs((up[3] - up[7]) - (sharp[3] - sharp[7])) < 0.3  # below its cut: the photo's own slope
    assert k7[3] - k7[7] > sharp[3] - sharp[7] + 0.5  # a Gaussian rolls off there already
    assert up[7] - up[10] > k7[7] - k7[10] + 0.7  # the upscale falls off a cliff above it


def test_the_decision_takes_the_best_option_above_the_margin_and_obeys_the_told_blur():
    # rows: a clear k7 gain, nothing above the margin, prior better than the network for k11
    gains = torch.tensor([[3.0, 2.0, -5.0, -4.0], [0.2, 0.1, -1.0, 0.3], [1.0, 0.5, 2.0, 4.0]])
    p, refine = gain_decision(gains, None, margin=0.5, told_margin=0.0)
    assert p.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert refine.flatten().tolist() == [1, 0, 0]  # row 3: the k11 prior inverse alone
    told = torch.tensor([[2.0], [2.0], [0.0]])  # k11, k11, k3 (a pass)
    p, refine = gain_decision(gains, told, margin=0.5, told_margin=0.0)
    assert p.tolist() == [[1, 0, 0], [0, 0, 1], [1, 0, 0]]  # row 1: both k11 options lose: a pass
    assert refine.flatten().tolist() == [0, 0, 0]
    assert len(GAIN_OPTIONS) == gains.shape[1]


def test_a_gain_head_model_passes_exactly_and_exports_with_parity(tmp_path, astronaut):
    pytest = __import__("pytest")
    pytest.importorskip("polygraphy", reason="ONNX export folds constants with Polygraphy (.[cpu])")
    from toolkit.core.models import ModelConfig, create_model
    from training.export import export_onnx

    torch.manual_seed(0)
    model = create_model(ModelConfig(arch="fastwiener", width=8, head_width=16, gain_head=True,
                                     gain_margin=1e3, gain_margin_told=-1e3)).eval()
    x = torch.from_numpy(astronaut.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        assert torch.equal(model(x), x)  # no option reaches a margin of 1000 dB: exactly the input
        told = model(x, known=torch.tensor([[1.0]]))
    assert float((told - x).abs().max()) > 0.01  # told k7 with a margin below any gain: deblurred
    assert model.evidence(x).shape == (1, 16 + 32)
    export_onnx(model, tmp_path / "g.onnx")  # raises unless ONNX Runtime matches torch, told too

    # such a model decides a frame on its own evidence: a 320x576 frame is one pass, no head passes
    from engines.onnxruntime import OrtRunner
    from engines.tiled import Tiling, deblur_frames, frames_evidence

    frame = np.ascontiguousarray(np.tile(astronaut, (2, 2, 1))[:320, :576])
    with OrtRunner(tmp_path / "g.onnx") as runner:
        assert runner.decides_whole_frame
        own = runner.evidence(frame.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
        np.testing.assert_allclose(frames_evidence(runner, [frame], Tiling()), own, rtol=1e-5, atol=1e-7)
        result = deblur_frames(runner, [frame], Tiling())
        assert result.evidence_tiles == 0 and result.tiles_per_frame == [1]
