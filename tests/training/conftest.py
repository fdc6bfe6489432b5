"""A tiny photo set of real photos (scikit-image's, never the demo ones) in the photo set's layout."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from training.photoset import is_colour


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from toolkit.core.demo import skimage_photo_path
    from toolkit.core.frames import read_frame

    root = tmp_path_factory.mktemp("photos")
    records = []
    for name, split, character in (("brick", "train", "crisp"), ("retina", "train", "soft"),
                                   ("hubble_deep_field", "train", "crisp"), ("ihc", "val", "crisp")):
        img = read_frame(skimage_photo_path(name))
        Image.fromarray(img).save(root / f"{name}.jpg", quality=95)
        records.append({"name": name, "file": f"{name}.jpg", "split": split, "colour": is_colour(img),
                        "character": character})
    (root / "sources.json").write_text(json.dumps(records))
    return root
