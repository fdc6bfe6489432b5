"""Round-3 training: natural softening, head-only fits with held-out calibration photos, and the
threshold calibration that puts no harm first."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toolkit.core.demo import skimage_photo_path
from toolkit.core.errors import DtkError
from toolkit.core.frames import read_frame, resize_frame
from toolkit.core.kernels import blur
from training.calibrate import calibrate, score_gate
from training.photoset import calibration_split
from training.soften import defocus_taps, gaussian_2d, motion_taps, soften_frames


def detail(frames: torch.Tensor) -> float:
    f = frames.float()
    return float((f[..., 1:] - f[..., :-1]).abs().mean())


def test_softening_kernels_and_frames():
    for taps in (defocus_taps(3.2), gaussian_2d(1.3), motion_taps(8.0, 0.7)):
        assert abs(taps.sum() - 1) < 1e-9 and (taps >= 0).all()
        assert np.allclose(taps, taps[::-1, ::-1])  # centred: softening never shifts the photo
    photo = resize_frame(read_frame(skimage_photo_path("astronaut")), (256, 448))
    frames = torch.from_numpy(photo.transpose(2, 0, 1)[None].copy()).repeat(6, 1, 1, 1)
    rng = np.random.default_rng(3)
    for share in (0.0, 1.0):  # in part of the frame / frame-wide and mild
        soft = soften_frames(frames, rng, uniform_share=share)
        assert soft.shape == frames.shape and soft.dtype == torch.uint8
        for a, b in zip(soft, frames, strict=True):
            assert detail(a[None]) < detail(b[None])


def test_calibration_photos_are_training_photos_of_both_characters(photos):
    held = calibration_split(photos, 1)
    assert held == {"hubble_deep_field", "retina"}  # brick is gray; ihc is a validation photo


def test_head_fit_trains_the_head_only_then_calibration_writes_a_gate(photos, tmp_path, round3c_dir):
    from toolkit.core.models.checkpoint import load_model
    from training import calibrate as cal
    from training.fit import FitConfig, fit

    out = tmp_path / "head"
    res = fit(FitConfig(photos=str(photos), out=str(out), max_steps=3, batch=2, val_windows=2,
                        final_windows=2, dead_leaves=0, train="head", head_shares=4, soften=0.5,
                        calibration=1, init=str(round3c_dir / "r3c.safetensors")), log=lambda *_: None)
    assert res["steps"] == 3
    meta = json.loads((out / "config.json").read_text())
    assert meta["calibration_photos"] == ["hubble_deep_field", "retina"]
    assert meta["train_photos"] == ["brick"]
    start = load_model(round3c_dir / "r3c.safetensors").state_dict()
    after = load_model(out / "last.safetensors")
    trained = after.state_dict()
    assert all(torch.equal(trained[k], v) for k, v in start.items() if k.startswith("refine."))
    assert not torch.equal(trained["head.features.0.0.weight"], start["head.features.0.0.weight"])
    assert after.config.head_shares == 4 and after.evidence_width == 32 + 4
    shipped = load_model(round3c_dir / "r3c.safetensors").config  # the start's architecture, resized
    assert after.config.head_strong == shipped.head_strong and after.config.gate_agree == shipped.gate_agree

    cal.main([str(out / "last.safetensors"), "--photos", str(photos), "-o", str(tmp_path / "gated")])
    gated = load_model(tmp_path / "gated.safetensors")
    assert gated.config.gate_deblur in cal.GRID and gated.config.gate_agree in cal.AGREE_GRID
    doc = json.loads((tmp_path / "gated.json").read_text())
    assert doc["calibration"]["photos"] == ["hubble_deep_field", "retina"]
    assert all(torch.equal(gated.state_dict()[k], v) for k, v in trained.items())
    assert doc["calibration"]["frontier"][0]["harmed"] == doc["calibration"]["best"]["harmed"]
    cal.main([str(out / "last.safetensors"), "--photos", str(photos), "-o", str(tmp_path / "again"),
              "--outcomes", str(tmp_path / "gated.outcomes.npz")])  # chosen again, no network pass
    assert load_model(tmp_path / "again.safetensors").config == gated.config

    # a refiner refitted afterwards leaves the photos the gate was calibrated on out, so they still
    # judge it fairly; calibrating again on those photos (--photos-of) needs no fit sidecar
    ref = tmp_path / "ref"
    fit(FitConfig(photos=str(photos), out=str(ref), max_steps=1, batch=2, val_windows=2, final_windows=2,
                  dead_leaves=0, train="refiner", head_shares=4, hold_out=str(tmp_path / "gated.safetensors"),
                  init=str(tmp_path / "gated.safetensors")), log=lambda *_: None)
    assert json.loads((ref / "config.json").read_text())["train_photos"] == ["brick"]
    refit = load_model(ref / "last.safetensors").state_dict()
    assert all(torch.equal(refit[k], v) for k, v in trained.items() if k.startswith("head."))
    assert not torch.equal(refit["refine.out.weight"], trained["refine.out.weight"])
    cal.main([str(ref / "last.safetensors"), "--photos", str(photos), "-o", str(tmp_path / "regated"),
              "--photos-of", str(tmp_path / "gated.safetensors")])
    assert json.loads((tmp_path / "regated.json").read_text())["calibration"]["photos"] == [
        "hubble_deep_field", "retina"]
    with pytest.raises(DtkError, match="refusing to write into -o"):  # the photo set is an input
        fit(FitConfig(photos=str(photos), out=str(photos / "runs"), max_steps=1), log=lambda *_: None)
    assert not (photos / "runs").exists()
    with pytest.raises(DtkError, match="names no calibration photos"):
        fit(FitConfig(photos=str(photos), out=str(tmp_path / "no"), max_steps=1, train="refiner",
                      hold_out=str(out / "last.safetensors")), log=lambda *_: None)


def outcome(probs, psnr):
    return {"probs": np.array(probs, dtype=float), "psnr": np.array(psnr, dtype=float)}


def test_calibration_puts_no_harm_before_gain():
    # a sharp frame the head half-believes is k7, and two k7 frames it is sure of
    res = {
        "sharp": outcome([[0.4, 0.55, 0.05]], [[100, 34, 30]]),
        "k7": outcome([[0.02, 0.9, 0.08], [0.1, 0.7, 0.2]], [[36, 42, 30], [35, 41, 31]]),
    }
    loose = score_gate(res, 0.5, 0.99)
    assert loose["harmed"] == 1 and loose["labels"]["sharp"]["decided"] == [0, 1, 0]
    best, rows = calibrate(res)
    assert best["harmed"] == 0 and best["labels"]["k7"]["decided"] == [0, 2, 0]
    assert 0.6 <= best["deblur"] < 0.9 and best["strong"] >= 0.3
    assert all(r["harmed"] > 0 or r["gain"] <= best["gain"] for r in rows)
    assert best["deblur"] == 0.85 and best["strong"] == max(r["strong"] for r in rows)  # ties: the strictest


def test_calibration_with_a_second_mlp_chooses_the_agreement_that_blocks_a_confident_error():
    # the first MLP is sure the sharp frame of a soft photo is k7; the second MLP is not; both are
    # sure of the two k7 frames
    res = {
        "sharp": outcome([[0.0001, 0.9999, 0.0]], [[100, 34, 30]]) | {"strong": np.array([[0.8, 0.2, 0.0]])},
        "k7": outcome([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], [[36, 42, 30], [35, 41, 31]])
        | {"strong": np.array([[0.01, 0.98, 0.01], [0.0, 0.97, 0.03]])},
    }
    assert score_gate(res, 0.999, 0.999)["harmed"] == 1  # no agreement
    best, _ = calibrate(res)
    assert best["harmed"] == 0 and best["agree"] == 0.98  # the highest that keeps both k7 frames
    assert best["labels"]["k7"]["decided"] == [0, 2, 0]
    kept, rows = calibrate(res, deblur=0.999)  # --keep-deblur: only the model's own deblur threshold
    assert {r["deblur"] for r in rows} == {0.999} and kept["harmed"] == 0


def test_frontier_keeps_the_rows_nothing_beats():
    from training.calibrate import frontier

    rows = [{"harmed": 0, "gain": 1.0}, {"harmed": 0, "gain": 1.5}, {"harmed": 2, "gain": 1.2},
            {"harmed": 3, "gain": 2.0}, {"harmed": 5, "gain": 1.9}]
    assert [(r["harmed"], r["gain"]) for r in frontier(rows)] == [(0, 1.5), (3, 2.0)]


def test_native_outcomes_decide_on_tile_evidence_and_score_forced_decisions(tmp_path, round3c_dir):
    from toolkit.core.metrics import capped, psnr
    from training.calibrate import NATIVE_LABELS, native_outcomes

    photo = resize_frame(read_frame(skimage_photo_path("chelsea")), (320, 520))  # 2 x 2 tiles
    res = native_outcomes((round3c_dir / "r3c.safetensors"), [photo], log=lambda *_: None)
    assert set(res) == set(NATIVE_LABELS)
    for label, r in res.items():
        assert r["probs"].shape == (1, 3) and np.isclose(r["probs"].sum(), 1.0, atol=1e-5)
        blurred = photo if label == "sharp" else blur(photo, label)
        assert r["psnr"][0, 0] == capped(psnr(blurred, photo))
    k7 = res["k7"]
    assert np.isfinite(k7["psnr"][0, 1]) and k7["psnr"][0, 1] > k7["psnr"][0, 0] + 1.0  # deblurred as k7
