"""Checkpoint round-trip: weights, sidecar, optimizer state; resume gives an identical next step."""

from __future__ import annotations

import pytest
import torch

from toolkit.core.errors import DtkError
from toolkit.core.modelfiles import read_sidecar
from toolkit.core.models import ModelConfig
from toolkit.core.models.checkpoint import load_model, load_optimizer, save_checkpoint
from toolkit.core.models.unet import SeedUNet


def _step(model, opt, x, y):
    opt.zero_grad()
    loss = torch.mean((model(x) - y) ** 2)
    loss.backward()
    opt.step()
    return loss.item()


def test_round_trip_and_identical_resume(tmp_path):
    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=4, tail_convs=1, residual=True))
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
    model = SeedUNet(ModelConfig(width=4, tail_convs=1))
    save_checkpoint(tmp_path / "ck", model, {})
    (tmp_path / "ck.safetensors").write_bytes(b"garbage")
    with pytest.raises(DtkError, match="corrupt"):
        load_model(tmp_path / "ck.safetensors")
    (tmp_path / "ck.json").write_text("{not json")
    with pytest.raises(DtkError, match="corrupt"):
        load_model(tmp_path / "ck.safetensors")



def invert_tensor_bytes(weights, index=-1) -> str:
    """Invert every byte of one tensor of a safetensors file in place (the file still loads); its name."""
    import json
    import struct

    raw = bytearray(weights.read_bytes())
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    name = sorted(k for k in header if k != "__metadata__")[index]
    start, end = (8 + header_len + o for o in header[name]["data_offsets"])
    raw[start:end] = bytes(b ^ 0xFF for b in raw[start:end])
    weights.write_bytes(bytes(raw))
    return name


def test_tensor_hashes_recorded_and_a_damaged_tensor_is_named(tmp_path, capsys):
    import json

    model = SeedUNet(ModelConfig(width=4, tail_convs=1))
    weights = save_checkpoint(tmp_path / "ck", model, {})
    doc = read_sidecar(weights)
    assert set(doc["tensor_sha256"]) == set(model.state_dict()) and all(
        len(h) == 64 for h in doc["tensor_sha256"].values())
    load_model(weights)
    name = invert_tensor_bytes(weights)
    with pytest.raises(DtkError, match=f"tensor\\(s\\) {name} do not match"):
        load_model(weights)
    del doc["tensor_sha256"]  # a sidecar from before the field existed: loads, unverified, silently
    (tmp_path / "ck.json").write_text(json.dumps(doc))
    capsys.readouterr()
    load_model(weights)
    assert capsys.readouterr() == ("", "")


def test_cli_refuses_a_damaged_shipped_checkpoint(tmp_path, demo_dir):
    import shutil

    from typer.testing import CliRunner

    from toolkit.app.cli import app
    from toolkit.core.modelfiles import default_model_path

    shipped = default_model_path("torch")
    for ext in (".safetensors", ".json"):
        shutil.copy(shipped.with_suffix(ext), tmp_path / f"m{ext}")
    invert_tensor_bytes(tmp_path / "m.safetensors", 0)
    result = CliRunner().invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "out"), "--backend", "torch",
                                      "--model", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2 and "is damaged" in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "out").rglob("*.png"))
