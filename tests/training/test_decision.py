"""training.decision: a second decision MLP fitted on frozen evidence at the frames' own scale."""

from __future__ import annotations

import json

import numpy as np
import torch

from toolkit.core.demo import skimage_photo_path
from toolkit.core.frames import read_frame, resize_frame
from toolkit.core.kernels import blur


def test_frames_evidence_is_what_a_run_decides_on(round3c_dir):
    from engines.tiled import Tiling, frame_evidence, frames_evidence
    from engines.torch import TorchRunner
    from toolkit.core.convert import to_nchw
    from toolkit.core.tiles import pad_frame

    runner = TorchRunner(round3c_dir / "r3c.safetensors")  # a gated model: decides over its grid
    photo = read_frame(skimage_photo_path("chelsea"))
    frames = [blur(resize_frame(photo, (320, 520)), "k7"), blur(resize_frame(photo, (256, 448)), "k11")]
    ev = frames_evidence(runner, frames)
    assert ev.shape == (2, 32) and ev.dtype == np.float32
    tiling = Tiling()
    grid = tiling.grid(320, 520)
    want, _ = frame_evidence(runner, [pad_frame(frames[0], grid.padded)], [grid], 8)
    assert np.allclose(ev[0], want[0], atol=1e-6)
    assert np.allclose(ev[1], np.asarray(runner.evidence(to_nchw([frames[1]])))[0], atol=1e-6)


def test_false_k11_counts_per_threshold():
    from training.decision import false_strong

    q = np.array([[0, 0.1, 0.9], [0, 0.04, 0.96], [0, 0, 1.0], [0.5, 0.5, 0.0]])
    counts = false_strong(q, np.array([1, 0, 2, 2]))  # a k7 frame at 0.9, a sharp one at 0.96
    assert counts["0.85"] == 2 and counts["0.9"] == 1 and counts["0.95"] == 1 and counts["0.97"] == 0


def test_gate_counts_what_a_gate_decides_too_strong():
    from training.decision import gate_counts

    classes = np.array([0, 0, 1, 2])
    p = np.array([[0.0, 1.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.2, 0.8]])
    q = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    loose = gate_counts(p, classes, q, 0.99, 0.99, 0.0)
    assert (loose["sharp_deblurred"], loose["sharp_frames"], loose["k7_as_k11"]) == (1, 2, 1)
    assert loose["gain"] == round((-30.0 + 0.0 - 9.0 + 6.0) / 4, 3)
    agreed = gate_counts(p, classes, q, 0.99, 0.99, 0.6)  # the sharp frame only one MLP believes
    assert (agreed["sharp_deblurred"], agreed["k7_as_k11"]) == (0, 1)


def test_the_fit_penalises_classes_stronger_than_the_truth():
    from torch import nn

    from training.decision import fit_mlp, probabilities, too_strong

    assert too_strong(torch.tensor([0, 1, 2])).tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    rng = np.random.default_rng(0)
    # two overlapping clouds of evidence: pass (0) and k7 (1)
    ev = np.exp(np.concatenate([rng.normal(0, 1, (200, 4)), rng.normal(1, 1, (200, 4))])).astype(np.float32)
    classes = np.repeat([0, 1], 200)

    def fitted(over):
        torch.manual_seed(0)
        mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        return probabilities(fit_mlp(mlp, ev, classes, np.ones(400), steps=300, over=over), ev)

    plain, careful = fitted(0.0), fitted(8.0)
    # a frame of the pass class taken for k7: fewer with the penalty, at the same threshold
    assert (careful[classes == 0, 1] > 0.5).sum() < (plain[classes == 0, 1] > 0.5).sum()


def test_decision_fits_the_second_mlp_only_and_calibration_uses_it(photos, tmp_path, round3c_dir):
    from toolkit.core.models.checkpoint import load_model
    from training import calibrate as cal
    from training import decision

    start = round3c_dir / "r3c.safetensors"  # round 3's tool: a gated model
    out = tmp_path / "strong"
    decision.main([str(start), "--photos", str(photos), "-o", str(out), "--steps", "20",
                   "--calibration", "1", "--native", "512x384", "--folds", "2"])
    data = np.load(f"{out}.evidence.npz")
    # brick is gray; ihc is a validation photo; the colour training photos have no original in a
    # package cache here, so none is one calibrate --native decides on
    assert set(data["photo"]) == {"hubble_deep_field", "retina"}
    assert set(data["label"]) == {"sharp", "k3", "k7", "k11"} and data["ev"].shape[1] == 32
    model, shipped = load_model(f"{out}.safetensors"), load_model(start)
    assert model.config.head_strong
    before, after = shipped.state_dict(), model.state_dict()
    # everything but the second MLP untouched (the shipped one has its own, refitted here from
    # the first MLP)
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("head.strong."))
    assert not torch.equal(after["head.strong.2.weight"], before["head.mlp.2.weight"])
    doc = json.loads((tmp_path / "strong.json").read_text())
    assert doc["decision_fit"]["steps"] == 20 and doc["config"]["head_strong"] is True
    for counts in doc["decision_fit"]["false_k11_out_of_fold"].values():  # own scale; windows
        assert set(counts) == {str(g) for g in cal.GRID}
        assert list(counts.values()) == sorted(counts.values(), reverse=True)

    cal.main([f"{out}.safetensors", "--photos", str(photos), "-o", str(tmp_path / "gated"),
              "--calibration", "1", "--strong-floor", "0.9"])
    res = cal.load_outcomes(tmp_path / "gated.outcomes.npz")
    assert all(r["strong"].shape == r["probs"].shape for r in res.values())
    gated = load_model(tmp_path / "gated.safetensors")
    assert gated.config.head_strong and gated.config.gate_deblur in cal.GRID
    assert gated.config.gate_strong >= 0.9
