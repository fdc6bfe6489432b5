"""The photo set: held-out colour photos, validation windows, no demo photo, device batches."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from toolkit.core.metrics import psnr_capped
from training.data import grid_windows
from training.photoset import VAL_PHOTOS, is_colour, load_sources, scale_to_short, val_windows
from training.sampler import PhotoSampler, psnr_uint8, quantize, render_dead_leaves, validation_tensors


def test_validation_photos_are_colour_photos_and_never_demo_or_training():
    from toolkit.core.demo import TRAINING_EXCLUDED

    assert len(VAL_PHOTOS) == len(set(VAL_PHOTOS)) >= 5
    assert not {n.split("_", 1)[1] for n in VAL_PHOTOS} & set(TRAINING_EXCLUDED)


def test_is_colour():
    gray = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    assert not is_colour(gray)
    colour = gray.copy()
    colour[..., 0] = 255 - colour[..., 0]
    assert is_colour(colour)


def test_val_windows_squash_the_whole_photo_then_take_native_windows():
    from training.photoset import NATIVE_WINDOWS

    img = np.random.default_rng(0).integers(0, 256, (1080, 1728, 3), dtype=np.uint8)
    wins = val_windows(img)
    assert all(w.shape == (256, 448, 3) for w in wins)
    assert len(wins) == 1 + NATIVE_WINDOWS == 4  # the whole photo squashed, then 3 windows at 1:1
    grid = [w.tobytes() for w in grid_windows(img)]
    assert all(w.tobytes() in grid for w in wins[1:])
    assert scale_to_short(img, 2000) is img  # never upscales


def _records(n_crisp=60, n_soft=25, sources=("a", "b", "c", "d", "e", "f", "g", "h")):
    recs = [
        {"name": f"{c}{i}", "character": c, "colour": True, "source": sources[i % len(sources)]}
        for c, n in (("crisp", n_crisp), ("soft", n_soft))
        for i in range(n)
    ]
    recs += [{"name": "gray1", "character": "soft", "colour": False, "source": "a"}]
    recs += [
        {"name": "plasma_Grey", "character": "crisp", "colour": True, "source": "a"}
    ]  # round 2 trained on it
    recs += [{"name": "plasma_Kite", "character": "crisp", "colour": True, "source": "plasma"}]  # round-2 val
    return recs


def test_validation_split_is_stratified_deterministic_and_fair():
    import random

    from training.photoset import VAL_COUNTS, VAL_PER_SOURCE, validation_split

    recs = _records()
    val = validation_split(recs)
    by = {r["name"]: r for r in recs}
    assert len(val) >= 30 and sum(by[n]["character"] == "soft" for n in val) >= 10
    assert sum(by[n]["character"] == "soft" for n in val) == VAL_COUNTS["soft"]
    assert sum(by[n]["character"] == "crisp" for n in val) == VAL_COUNTS["crisp"]
    assert "plasma_Kite" in val  # the round-2 validation photos stay held out
    assert "plasma_Grey" not in val and "gray1" not in val  # never what round 2 trained on, never gray
    assert max(Counter(by[n]["source"] for n in val).values()) <= VAL_PER_SOURCE
    shuffled = recs[:]
    random.Random(3).shuffle(shuffled)
    assert validation_split(shuffled) == val  # order-independent


def test_the_built_split_has_enough_soft_photos_when_the_set_is_here():
    root = Path(__file__).resolve().parents[2] / "data" / "photoset"
    if not (root / "sources.json").is_file():
        pytest.skip(f"no photo set at {root} (dtk data photos {root})")
    recs = json.loads((root / "sources.json").read_text())
    val = [r for r in recs if r["split"] == "val"]
    assert len(val) >= 30 and sum(r["character"] == "soft" for r in val) >= 10
    assert sum(r["bytes"] for r in recs) <= 40 * 2**20


def test_load_sources_by_split(photos):
    assert set(load_sources(photos, "train")) == {"brick", "retina", "hubble_deep_field"}
    assert set(load_sources(photos, "val")) == {"ihc"}


def test_sampler_makes_frames_as_dtk_run_sees_them(photos):
    from toolkit.core.kernels import blur

    s = PhotoSampler(load_sources(photos, "train"), "cpu", dead_leaves=0.5, seed=1, leaves_pool=2)
    x, y, labels = s.batch(6)
    assert x.shape == y.shape == (6, 3, 256, 448)
    for t in (x, y):  # uint8 values on 0..1
        assert torch.equal((t * 255).round(), t * 255) or torch.allclose(
            (t * 255).round(), t * 255, atol=1e-4
        )
    for i, lb in enumerate(labels):
        sharp = quantize(y[i : i + 1])[0].permute(1, 2, 0).numpy()
        inp = quantize(x[i : i + 1])[0].permute(1, 2, 0).numpy()
        expected = sharp if lb == "sharp" else blur(sharp, lb)
        assert np.abs(inp.astype(int) - expected.astype(int)).max() <= 1, lb
    crop = PhotoSampler(load_sources(photos, "train"), "cpu", crop=64).batch(3)[0]
    assert crop.shape == (3, 3, 64, 64)


def test_dead_leaves_use_the_given_colours():
    colours = torch.tensor([[10, 20, 30], [200, 100, 50]], dtype=torch.uint8)
    img = render_dead_leaves(2, (32, 48), colours, torch.Generator().manual_seed(0), discs=20)
    assert img.shape == (2, 3, 32, 48) and img.dtype == torch.uint8
    assert int(img[:, 0].min()) >= 10 and int(img[:, 0].max()) <= 200


def test_device_psnr_equals_toolkit_psnr(photos):
    val = load_sources(photos, "val")["ihc"]
    wins = val_windows(val)[:3]
    vt = validation_tensors(wins, "cpu")
    blurred, sharp = vt["k7"]
    got = psnr_uint8(blurred, sharp).numpy()
    want = [
        psnr_capped(b.permute(1, 2, 0).numpy(), s.permute(1, 2, 0).numpy())
        for b, s in zip(blurred, sharp, strict=True)
    ]
    assert np.allclose(got, want, atol=1e-9)
    assert psnr_uint8(sharp, sharp).tolist() == [100.0] * len(wins)


def test_fit_two_steps_writes_checkpoints_and_a_per_photo_table(photos, tmp_path):
    from toolkit.core.models.checkpoint import load_model
    from training.fit import FitConfig, fit

    out = tmp_path / "run"
    res = fit(
        FitConfig(
            photos=str(photos),
            out=str(out),
            minutes=5,
            max_steps=2,
            batch=2,
            crop=64,
            val_windows=2,
            final_windows=2,
            dead_leaves=0,
        ),
        log=lambda *_: None,
    )
    assert res["steps"] == 2
    for f in ("best.safetensors", "best.json", "last.safetensors", "val.json", "curves.png"):
        assert (out / f).is_file(), f
    assert set(res["val"]) == {"sharp", "k3", "k7", "k11"}
    assert set(res["val"]["k7"]["per_photo"]) == {"ihc"}
    model = load_model(out / "best.safetensors")
    assert model.config.arch == "fastwiener"
    from toolkit.core.errors import DtkError

    with pytest.raises(DtkError, match="init"):
        fit(
            FitConfig(
                photos=str(photos),
                out=str(tmp_path / "r2"),
                arch="seed",
                max_steps=1,
                crop=64,
                init=str(out / "best.safetensors"),
            ),
            log=lambda *_: None,
        )


def test_fit_whose_loss_is_not_finite_stops_with_exit_3_and_saves_nothing_non_finite(photos, tmp_path,
                                                                                      monkeypatch, capsys):
    """`python -m training.fit` whose loss turns NaN stops at its next validation with `error:` and
    exit 3, before any checkpoint is saved; the checkpoints of the earlier steps stay (finite)."""
    import math

    import training.fit as fit_module
    from toolkit.core.models.checkpoint import load_model

    real_loss, calls = fit_module.batch_loss, []

    def loss_that_turns_nan(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * math.nan if len(calls) >= 3 else loss

    monkeypatch.setattr(fit_module, "batch_loss", loss_that_turns_nan)
    out = tmp_path / "run"
    code = fit_module.main([str(photos), "-o", str(out), "--max-steps", "4", "--batch", "2", "--crop", "64",
                            "--val-windows", "2", "--final-windows", "2", "--dead-leaves", "0",
                            "--val-seconds", "0"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 3, err
    assert err.startswith("error: training stopped at step 3") and "not finite" in err
    assert json.loads((out / "last.json").read_text())["step"] == 2
    for name in ("best", "last"):
        weights = load_model(out / f"{name}.safetensors").parameters()
        assert all(bool(torch.isfinite(t).all()) for t in weights)
    assert not (out / "val.json").exists()
