"""Fixed Wiener filter layers vs the FFT Wiener; the gated Wiener U-Net's structure and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.core.baselines import wiener
from toolkit.core.kernels import KERNELS, blur
from toolkit.core.metrics import psnr
from toolkit.core.models import ModelConfig, count_parameters, create_model
from toolkit.core.models.wiener import BANK, CLASSES, WienerBank, class_index, kernel_loss, wiener_taps


def _nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def _uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("kernel,balance,min_db",
                         [("k3", 1e-4, 60.0), ("k7", 3e-3, 50.0), ("k11", 3e-3, 45.0)])
def test_bank_matches_fft_wiener_on_a_real_frame(astronaut, kernel, balance, min_db):
    """The 31x31 filter layer reproduces the FFT Wiener (reflect border) on a real 256x448 photo."""
    blurred = blur(astronaut, kernel)
    reference = wiener(blurred, KERNELS[kernel], balance)
    bank = WienerBank(bank=((kernel, balance),))
    with torch.no_grad():
        out = _uint8(bank(_nchw(blurred)))
    assert psnr(out, reference) >= min_db
    # and it deblurs: closer to the sharp frame than the blurred input, as the FFT Wiener is
    if kernel != "k3":
        assert psnr(out, astronaut) > psnr(blurred, astronaut) + 2.0
        assert abs(psnr(out, astronaut) - psnr(reference, astronaut)) < 0.5


def test_taps_have_unit_dc_gain_and_are_symmetric():
    for name, balance in BANK:
        taps = wiener_taps(KERNELS[name], balance)
        assert taps.shape == (31, 31)
        assert abs(taps.sum() - 1.0) < 1e-12
        np.testing.assert_allclose(taps, taps.T, atol=1e-12)
        np.testing.assert_allclose(taps, taps[::-1, ::-1], atol=1e-12)


def test_bank_output_is_filter_major():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 48)
    bank = WienerBank()
    with torch.no_grad():
        out = bank(x)
    assert out.shape == (2, 3 * len(BANK), 40, 48)
    for f, (name, balance) in enumerate(BANK):
        single = WienerBank(bank=((name, balance),))
        with torch.no_grad():
            torch.testing.assert_close(out[:, 3 * f:3 * f + 3], single(x))
    # candidate(kernel) is the kernel's first (best-balance) filter
    assert torch.equal(bank.candidate(out, "k7"), out[:, 3:6])
    assert torch.equal(bank.candidate(out, "k11"), out[:, 6:9])


def test_gated_model_structure():
    model = create_model(ModelConfig(arch="wiener", width=8, tail_convs=1)).eval()
    assert count_parameters(model) < 15_000_000
    # the filters are fixed: not parameters, not in the checkpoint
    assert not any("bank" in name for name, _ in model.named_parameters())
    assert not any("bank" in name for name in model.state_dict())
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        y, logits = model(x, True)
    assert y.shape == x.shape and logits.shape == (2, len(CLASSES))
    # a head sure of "sharp" returns the input exactly, whatever the refiner says
    torch.nn.init.normal_(model.refine.out.weight)
    with torch.no_grad():
        model.head.mlp[-1].weight.zero_()
        model.head.mlp[-1].bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))
        torch.testing.assert_close(model(x), x)
        # sure of k7: the k7 Wiener candidate plus the refinement
        model.head.mlp[-1].bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0]))
        bank = model.bank(x)
        maps = torch.zeros(2, 4, 32, 48).index_fill_(1, torch.tensor([2]), 1.0)
        refined = model.refine(torch.cat([x, bank, maps], dim=1))
        torch.testing.assert_close(model(x), model.bank.candidate(bank, "k7") + refined, atol=1e-5, rtol=1e-5)


def test_kernel_loss_merges_sharp_and_k3():
    labels = class_index(["sharp", "k3", "k7", "k11"])
    assert labels.tolist() == [0, 1, 2, 3]
    # splitting mass between sharp and k3 costs nothing; putting it on k7 costs
    even = torch.log(torch.tensor([[0.5, 0.5, 1e-9, 1e-9]] * 2))
    assert kernel_loss(even, labels[:2]).item() < 1e-6
    wrong = torch.log(torch.tensor([[1e-9, 1e-9, 1.0, 1e-9]] * 2))
    assert kernel_loss(wrong, labels[:2]).item() > 10.0
    right = torch.log(torch.tensor([[1e-9, 1e-9, 1.0, 1e-9], [1e-9, 1e-9, 1e-9, 1.0]]))
    assert kernel_loss(right, labels[2:]).item() < 1e-6


def test_checkpoint_and_onnx_parity(tmp_path):
    from toolkit.core.models.checkpoint import load_model, save_checkpoint
    from training.export import check_parity, export_onnx

    torch.manual_seed(0)
    model = create_model(ModelConfig(arch="wiener", width=8, tail_convs=1)).eval()
    torch.nn.init.normal_(model.refine.out.weight, std=0.1)  # a non-trivial refinement
    save_checkpoint(tmp_path / "w.safetensors", model)
    loaded = load_model(tmp_path / "w.safetensors")
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    path = export_onnx(model, tmp_path / "w.onnx", height=64, width=96)
    result = check_parity(model, path, 64, 96)
    assert result["random_max_abs"] <= 1e-4 and result["real_max_abs"] <= 1e-4


def test_card_table_has_wiener_beside_the_model(demo_dir, tmp_path):
    from toolkit.core.models.checkpoint import save_checkpoint
    from training.card import card_table

    torch.manual_seed(0)
    model = create_model(ModelConfig(arch="wiener", width=8, tail_convs=1)).eval()
    save_checkpoint(tmp_path / "w.safetensors", model, {"kernels": ["k7"]})
    table, raw = card_table(str(tmp_path / "w.safetensors"), None, str(demo_dir))
    k7 = raw["demo frames"]["k7"]
    assert k7["frames"] == 10 and k7["wiener"] > k7["input"] + 3.0  # Wiener really deblurs the demo
    assert "sharp" in raw["demo frames"] and "wiener" not in raw["demo frames"]["sharp"]
    assert "| demo frames | 10 | k7 |" in table and "Wiener dB" in table.splitlines()[0]
