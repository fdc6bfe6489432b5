"""Round 4's decision by expected gain: band energies, the gain head's decision rule, export."""

from __future__ import annotations

import numpy as np
import torch

from toolkit.core.models.bands import BandEnergies
from toolkit.core.models.head import GAIN_OPTIONS, gain_decision


def _reference_bands(frame: np.ndarray) -> np.ndarray:
    """The same energies by SciPy's Gaussian filter (mode 'mirror' is reflect-101)."""
    from scipy.ndimage import gaussian_filter

    from toolkit.core.models.bands import BAND_SIGMAS, LUMA, TRUNCATE

    y = frame.astype(np.float64) @ np.array(LUMA) / 255.0
    levels = [y] + [gaussian_filter(y, s, mode="mirror", truncate=TRUNCATE) for s in BAND_SIGMAS]
    return np.array([np.mean((a - b) ** 2) for a, b in zip(levels, levels[1:], strict=False)])


def test_band_energies_match_scipy_and_pool_over_tiles(astronaut):
    x = torch.from_numpy(astronaut.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    got = BandEnergies()(x).numpy()[0]
    np.testing.assert_allclose(got, _reference_bands(astronaut), rtol=1e-4)
    # a Gaussian blur empties the finest bands: k11 leaves them near the 8-bit rounding floor
    from toolkit.core.kernels import blur

    k11 = torch.from_numpy(blur(astronaut, "k11").transpose(2, 0, 1)[None] / 255.0)
    soft = BandEnergies()(k11).numpy()[0]
    assert soft[0] < got[0] / 20 and soft[-1] > got[-1] / 3


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
    assert model.evidence(x).shape == (1, 16 + 7)
    export_onnx(model, tmp_path / "g.onnx")  # raises unless ONNX Runtime matches torch, told too
