"""training.ceiling: the gated mean against what the refiner, a perfect gate and the evidence allow."""

from __future__ import annotations

import json

import numpy as np

from training.ceiling import ROWS, ceiling, main, separable


def test_a_point_dominated_by_a_negative_cannot_be_separated():
    negatives = np.array([[0.9, 0.2], [0.3, 0.95]])
    points = np.array([[0.95, 0.5],    # above both negatives in the first column: separable
                       [0.8, 0.1],     # below the first negative in both: not
                       [0.9, 0.2],     # equal to a negative: a gate taking it takes the negative too
                       [0.5, 0.99]])   # above the second in its second column: separable
    assert separable(points, negatives).tolist() == [True, False, False, True]
    assert separable(points, np.zeros((0, 2))).all()


def outcome(probs, psnr):
    probs = np.array(probs, dtype=float)
    return {"probs": probs, "strong": probs.copy(), "psnr": np.array(psnr, dtype=float)}


def test_ceiling_rows_by_hand():
    sharp = outcome([[0.5, 0.4, 0.1]], [[100, 40, 35]])  # P(blurred) 0.5
    k3 = outcome([[0.9, 0.1, 0.0]], [[80, 45, 40]])       # 0.1
    # k7: one frame the gate takes (P 0.9999) and gains; one it passes whose evidence (0.45) is below the
    # sharp frame's (0.5), so no monotone gate may take it; one passed (0.7) that the refiner would harm
    k7 = outcome([[0.0001, 0.9999, 0.0], [0.55, 0.45, 0.0], [0.3, 0.7, 0.0]],
                 [[30, 36, 20], [40, 43, 30], [45, 41, 30]])
    k11 = outcome([[0.0, 0.0, 1.0]], [[28, 30, 33]])
    table = ceiling({"sharp": sharp, "k3": k3, "k7": k7, "k11": k11}, deblur=0.999, strong=0.999)
    assert table["k7"]["gated"] == np.mean([36, 40, 45])
    assert table["k7"]["true kernel"] == np.mean([36, 43, 41])
    assert table["k7"]["perfect gate"] == np.mean([36, 43, 45])
    assert table["k7"]["evidence bound"] == np.mean([36, 40, 45]) and table["k7"]["separable"] == 2
    assert table["k11"]["gated"] == 33 and all(table["k11"][r] == 33 for r in ROWS)


def test_ceiling_cli_on_the_shipped_model(photos, tmp_path, capsys):
    from toolkit.core.modelfiles import default_model_path

    js = tmp_path / "ceiling.json"
    main([str(default_model_path("torch")), "--photoset", str(photos), "--bar", "k7=30", "--json", str(js)])
    printed = capsys.readouterr().out
    doc = json.loads(js.read_text())
    for label in ("k7", "k11"):
        row = doc["ceiling"][label]
        assert row["frames"] == 4  # the one validation photo of the fixture: squashed + 3 windows
        assert row["gated"] <= row["perfect gate"] and row["true kernel"] <= row["perfect gate"]
        assert row["evidence bound"] <= row["perfect gate"]
        assert f"| {label} | 4 (" in printed
    again = tmp_path / "again.json"  # the saved outcomes: the same table without the network
    main([str(default_model_path("torch")), "--outcomes", str(js.with_suffix(".outcomes.npz")),
          "--json", str(again)])
    assert json.loads(again.read_text())["ceiling"] == doc["ceiling"]
