"""training.card on a photo set: per kernel x character (crisp / soft) columns."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from training.card import character_table, group_stats, photoset_card


def test_group_stats_worst_gain_and_worse_share_as_dtk_eval():
    s = group_stats([30.0, 40.0, math.inf], [30.05, 41.0, math.inf])
    assert s["frames"] == 3
    assert s["worst_gain"] == pytest.approx(-1.0)
    assert s["worse_share"] == pytest.approx(1 / 3)  # 0.05 dB below is not "worse"; 1 dB below is
    assert s["mean"] == pytest.approx((30 + 40 + 100) / 3)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from toolkit.core.demo import skimage_photo_path
    from toolkit.core.frames import read_frame

    root = tmp_path_factory.mktemp("photoset")
    records = []
    for name, split, character in (
        ("retina", "val", "soft"),
        ("ihc", "val", "crisp"),
        ("brick", "train", "crisp"),
    ):
        img = read_frame(skimage_photo_path(name))[:300, :500]
        Image.fromarray(img).save(root / f"{name}.jpg", quality=95)
        records.append(
            {"name": name, "file": f"{name}.jpg", "split": split, "colour": True, "character": character}
        )
    (root / "sources.json").write_text(json.dumps(records))
    return root


def test_photoset_card_reports_each_character(tiny_set):
    res = photoset_card({"model": "toolkit/assets/dtk-unet.safetensors"}, str(tiny_set), batch=8, forced=True)
    assert res["photos"] == {"crisp": ["ihc"], "soft": ["retina"]}
    assert res["frames"]["all"] == res["frames"]["crisp"] + res["frames"]["soft"] == res["windows"]
    assert res["frames"]["squashed"] == 2
    for method, kernels in (("model", ("sharp", "k3", "k7", "k11")), ("prior inverse", ("k7", "k11"))):
        for k in kernels:
            row = res["table"][method][k]
            for g in ("crisp", "soft", "all"):
                m = row[g]
                assert set(m) >= {"mean", "worst_gain", "worse_share", "frames"}
                assert 0.0 <= m["worse_share"] <= 1.0
                assert m["worst_gain"] <= m["mean"] - m["input"] + 1e-9
    blurred = res["table"]["blurred"]["k7"]["soft"]
    assert blurred["worst_gain"] == 0.0 and blurred["worse_share"] == 0.0
    # told the true kernel, the network deblurs every k7/k11 frame (the gate may pass some)
    told = res["table"]["model (true kernel)"]
    assert set(told) == {"k7", "k11"}
    for k in ("k7", "k11"):
        assert told[k]["crisp"]["mean"] > res["table"]["blurred"][k]["crisp"]["mean"] + 1.0
    text = character_table(res)
    assert "| k7 | model | soft |" in text and "| k11 | prior inverse | crisp |" in text
    assert "| k7 | model (true kernel) | crisp |" in text
    assert "worse by > 0.1 dB" in text
