"""training.gain: the decision by expected gain, fitted on rows whose best option is known."""

from __future__ import annotations

import numpy as np
import torch

from toolkit.core.models.head import GainHead
from training.gain import OPTIONS, choose_margin, fit_gain_head, predicted, realised, training_rows


def _rows(n: int = 600, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic evidence whose first feature says the blur: sharp -> every option loses,
    k7 -> the network told k7 gains, k11 -> told k11 gains (the others lose)."""
    rng = np.random.default_rng(seed)
    blur = rng.choice(["none", "k7", "k11"], n)
    level = {"none": 0.05, "k7": 0.3, "k11": 0.9}
    ev = rng.uniform(0.1, 1.0, (n, 4 + 2)).astype(np.float32)
    ev[:, 0] = [level[b] * rng.uniform(0.9, 1.1) for b in blur]
    gains = np.full((n, len(OPTIONS)), -8.0, dtype=np.float32)
    gains[blur == "k7", 0], gains[blur == "k7", 1] = 5.0, 4.0
    gains[blur == "k11", 2], gains[blur == "k11", 3] = 5.0, 3.0
    return {"ev": ev, "gains": gains, "blur": blur, "photo": np.array([f"p{i % 30}" for i in range(n)]),
            "category": np.array(["own"] * n), "size": np.array(["256x448"] * n)}


def test_the_fitted_head_takes_the_right_option_and_passes_the_rest():
    torch.manual_seed(0)
    data = _rows()
    head = GainHead(4, 2)
    fit_gain_head(head, data, steps=600)
    test = _rows(300, seed=1)
    got = realised(predicted(head, test, told=False), test, margin=0.5, told=False)
    assert np.all(got[test["blur"] == "none"] == 0.0)  # passed: exactly 0 dB
    assert got[test["blur"] == "k7"].mean() > 4.5 and got[test["blur"] == "k11"].mean() > 4.5
    told = realised(predicted(head, test, told=True), test, margin=0.0, told=True)
    assert np.isnan(told[test["blur"] == "none"]).all()  # rows not told a blur
    margin, table = choose_margin(predicted(head, test, told=False), test, told=False)
    assert table[margin]["harmed"] == 0 and table[margin]["mean_gain"] > 3


def test_training_rows_tell_only_blurred_frames_their_blur():
    data = _rows(30)
    ev, known, gains, mask = training_rows(data)
    blurred = int(np.isin(data["blur"], ["k7", "k11"]).sum())
    assert len(ev) == 30 + blurred and (known[:30] == -1).all()
    assert mask[:30].all() and (mask[30:].sum(axis=1) == 2).all()  # told: that kernel's two options


def test_a_fit_depends_on_the_data_and_the_seed_only():
    """The MLP's start is drawn from the fit's seed: two heads built at different points of the
    process's random stream, fitted alike, end with the same weights."""
    data = _rows(200)
    torch.manual_seed(1)
    first = GainHead(4, 2)
    fit_gain_head(first, data, steps=50, seed=3)
    torch.rand(1000)  # the process's random stream moves on
    second = GainHead(4, 2)
    fit_gain_head(second, data, steps=50, seed=3)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
