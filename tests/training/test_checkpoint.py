"""Checkpoint round-trip: weights, sidecar, optimizer state; resume gives an identical next step."""

from __future__ import annotations

import pytest
import torch

from toolkit.errors import DtkError
from training.checkpoint import load_model, load_optimizer, read_sidecar, save_checkpoint
from training.unet import SeedUNet, UNetConfig


def _step(model, opt, x, y):
    opt.zero_grad()
    loss = torch.mean((model(x) - y) ** 2)
    loss.backward()
    opt.step()
    return loss.item()


def test_round_trip_and_identical_resume(tmp_path):
    torch.manual_seed(0)
    model = SeedUNet(UNetConfig(width=4, tail_convs=1, residual=True))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    _step(model, opt, x, y)
    path = save_checkpoint(tmp_path / "ck", model, {"step": 1, "kernels": ["k3"]}, optimizer=opt)
    assert path.suffix == ".safetensors"
    assert read_sidecar(tmp_path / "ck.json")["config"]["width"] == 4

    restored = load_model(tmp_path / "ck.json").train()
    for a, b in zip(model.state_dict().values(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    opt2 = torch.optim.Adam(restored.parameters(), lr=1e-3)
    load_optimizer(opt2, path)
    loss_a = _step(model, opt, x, y)
    loss_b = _step(restored, opt2, x, y)
    assert loss_a == loss_b
    for a, b in zip(model.parameters(), restored.parameters(), strict=True):
        assert torch.equal(a, b)


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(DtkError, match="not found"):
        load_model(tmp_path / "nothing.safetensors")
    model = SeedUNet(UNetConfig(width=4, tail_convs=1))
    save_checkpoint(tmp_path / "ck", model, {})
    (tmp_path / "ck.safetensors").write_bytes(b"garbage")
    with pytest.raises(DtkError, match="corrupt"):
        load_model(tmp_path / "ck.safetensors")
    (tmp_path / "ck.json").write_text("{not json")
    with pytest.raises(DtkError, match="corrupt"):
        load_model(tmp_path / "ck.safetensors")
