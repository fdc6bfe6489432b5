"""A tiny training run lowers the loss; the PSNR loss weighs equal relative errors equally."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from toolkit.core.models.checkpoint import load_model
from training.train import TrainConfig, image_loss, train


def test_psnr_loss_is_kernel_fair():
    target = torch.full((2, 3, 8, 8), 0.5)
    # image 0: tiny error (a k3-like frame); image 1: 100x its MSE (a k11-like frame)
    pred = target.clone()
    pred[0] += 1e-2
    pred[1] += 1e-1
    base = image_loss(pred, target, "psnr")
    # halving the MSE of either image lowers the loss by the same 3.01 dB (minus the 60 dB cap's share)
    for i in (0, 1):
        better = pred.clone()
        better[i] = target[i] + (pred[i] - target[i]) / 2 ** 0.5
        drop = (base - image_loss(better, target, "psnr")).item()
        mse = ((pred[i] - target[i]) ** 2).mean().item()
        expected = 10 * torch.log10(torch.tensor((mse + 1e-6) / (mse / 2 + 1e-6))).item() / 2
        assert abs(drop - expected) < 1e-4
    # an exactly-unchanged image is capped at 60 dB (loss -60), not -inf
    assert abs(image_loss(target, target, "psnr").item() + 60.0) < 1e-4
    # MSE, by contrast, weighs the same relative improvement 100x more on the big error
    mse_gain = [(image_loss(pred, target, "mse") - image_loss(
        torch.stack([target[j] + (pred[j] - target[j]) / 2 ** 0.5 if j == i else pred[j] for j in range(2)]),
        target, "mse")).item() for i in (0, 1)]
    assert mse_gain[1] > 50 * mse_gain[0]


def test_tiny_training_lowers_loss(demo_dir, tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(data=str(demo_dir), out=str(out), width=8, tail_convs=1, residual=False, crop=64,
                         batch=4, epochs=3, steps=8, lr=3e-3, loss="mse", val_fraction=0.2, val_max_frames=2,
                         seed=1)
    result = train(config, log=lambda *_: None)
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == 3
    assert float(rows[-1]["train_loss"]) < 0.5 * float(rows[0]["train_loss"])
    assert (out / "curves.png").stat().st_size > 0
    doc = json.loads((out / "best.json").read_text())
    assert doc["config"]["width"] == 8 and doc["kernels"] == ["k3", "k7", "k11"]
    assert set(doc["val_sequences"]).isdisjoint(doc["train_sequences"])
    assert load_model(result["best"]).config.width == 8

    # resume from last.* continues the step count and history
    resumed = train(TrainConfig(**{**config.__dict__, "epochs": 4, "resume": str(out / "last.safetensors")}),
                    log=lambda *_: None)
    assert resumed["steps"] == 32
    assert len(list(csv.DictReader((out / "history.csv").open()))) == 4


@pytest.mark.parametrize("content", ["empty", "no-images"])
def test_train_on_frameless_folder_exits_2_and_creates_nothing(tmp_path, monkeypatch, content):
    """`dtk train EMPTY -o runs/t`: a clear error, exit 2, and no run folder (nor runs/) left behind."""
    from typer.testing import CliRunner

    from toolkit.app.cli import app

    data = tmp_path / "EMPTY"
    (data / "seq").mkdir(parents=True)
    if content == "no-images":
        (data / "seq" / "notes.txt").write_text("not a frame")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    res = CliRunner().invoke(app, ["train", "EMPTY", "-o", "runs/t", "--width", "8", "--epochs", "1",
                                   "--steps", "1"])
    out = res.output + (res.stderr if res.stderr_bytes is not None else "")
    assert res.exit_code == 2, out
    assert "Traceback" not in out and "no frames in EMPTY" in " ".join(out.split())
    assert not (tmp_path / "runs").exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_run_whose_loss_is_not_finite_stops_with_exit_3_and_keeps_the_last_finite_checkpoint(
        demo_dir, tmp_path, monkeypatch):
    """`dtk train` whose loss turns NaN (as `--lr 1` makes it) stops at once with exit 3 and says so;
    the checkpoints written before stay as they were (finite), nothing non-finite is saved."""
    import math

    import torch
    from typer.testing import CliRunner

    import training.train as tr
    from toolkit.app.cli import app

    real_loss, calls = tr.image_loss, []

    def loss_that_turns_nan(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * math.nan if len(calls) >= 3 else loss  # steps 1 and 2 fine, step 3 NaN

    monkeypatch.setattr(tr, "image_loss", loss_that_turns_nan)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(demo_dir), "-o", str(out), "--width", "2",
                                   "--tail-convs", "0", "--crop", "16", "--batch", "1", "--epochs", "3",
                                   "--steps", "1"])
    said = " ".join((res.output + (res.stderr if res.stderr_bytes is not None else "")).split())
    assert res.exit_code == 3, said
    assert "training stopped at step 3" in said and "not finite" in said and "Traceback" not in said
    assert f"{out / 'last.safetensors'} (step 2)" in said
    for name in ("best", "last"):
        weights = load_model(out / f"{name}.safetensors").parameters()
        assert all(bool(torch.isfinite(t).all()) for t in weights)
    assert json.loads((out / "last.json").read_text())["step"] == 2
    result = json.loads((out / "result.json").read_text())
    assert result["best"] == str(out / "best.safetensors") and "not finite" in result["diverged"]


def test_save_checkpoint_refuses_non_finite_weights_and_keeps_the_file_there(tmp_path):
    import torch

    from toolkit.core.errors import DtkError
    from toolkit.core.models import ModelConfig
    from toolkit.core.models.checkpoint import save_checkpoint
    from toolkit.core.models.unet import SeedUNet

    model = SeedUNet(ModelConfig(width=2, tail_convs=0))
    path = save_checkpoint(tmp_path / "m", model)
    kept = path.read_bytes()
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    with pytest.raises(DtkError, match="NaN/inf"):
        save_checkpoint(tmp_path / "m", model)
    assert path.read_bytes() == kept
