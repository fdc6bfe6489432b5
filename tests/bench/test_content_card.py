"""bench.content_card on a one-photo set with the shipped model: every group scored blind, told and
against the prior; a blurred recording is blurred before its encoder and scored against its scene."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import content_card
from toolkit.core.frames import read_frame, write_png_atomic
from toolkit.core.kernels import blur, get_kernel
from toolkit.core.metrics import psnr
from training.content import category_frame, category_scene

pytest.importorskip("av", reason="the video categories need PyAV (pip install .[cpu])")


@pytest.fixture(scope="module")
def photoset(tmp_path_factory):
    from toolkit.core.demo import skimage_photo_path

    root = tmp_path_factory.mktemp("photoset")
    write_png_atomic(root / "coffee.png", read_frame(skimage_photo_path("coffee")))  # 400 x 600
    records = [{"name": "coffee", "file": "coffee.png", "split": "val", "character": "crisp"}]
    (root / "sources.json").write_text(json.dumps(records))
    return root


def test_card_scores_each_group_and_a_recording_blurred_before_its_encoder(photoset, tmp_path):
    out = tmp_path / "card"
    assert content_card.main([str(photoset), "-o", str(out), "--size", "224x128", "--categories",
                              "own,h264-recorded", "--kernels", "none,k7"]) == 0
    doc = json.loads((out / "content-card.json").read_text())
    rows = {(e["group"], e["size"], e["kernel"]): e for e in doc["summary"]}
    assert set(rows) == {(g, s, k) for g in ("crisp", "recorded") for s in ("own", "256x448")
                         for k in ("none", "k7")}
    assert rows[("crisp", "own", "none")]["input"] == 100.0  # an unblurred photo is its own scene
    assert rows[("recorded", "own", "none")]["input"] < 60  # the encoder's loss, against the scene
    for e in rows.values():
        assert e["kernel"] == "none" or {"blind", "told", "prior"} <= set(e)
        assert np.isfinite(e["blind"]["gain"]) and 0 <= e["blind"]["worse_share"] <= 1
    assert "| recorded | own |" in (out / "content-card.md").read_text()


def test_a_recorded_frame_is_the_blurred_scene_through_the_encoder(photoset):
    image = read_frame(photoset / "coffee.png")
    scene = category_scene(image, (128, 224), "h264-recorded")
    recorded = category_frame(image, (128, 224), "h264-recorded", "coffee", blur="k7")
    blurred_scene = blur(scene, get_kernel("k7"))
    assert psnr(recorded, blurred_scene) > 30  # the same picture, encoded
    assert psnr(recorded, blurred_scene) > psnr(recorded, scene) + 3  # blurred before the encoder
