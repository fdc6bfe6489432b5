"""toolkit.app.request.RunRequest: the one typed value of a run's options, checked once."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from toolkit.app import api
from toolkit.app.request import RunRequest
from toolkit.core.errors import DtkError


def test_a_request_is_frozen_picklable_and_equal_to_its_copy():
    r = RunRequest(batch=2, blur="k7", known_blur="k11", tile_overlap=32).check()
    assert pickle.loads(pickle.dumps(r)) == r  # what Ray sends to its actors
    assert pickle.loads(pickle.dumps(r)).tiling == r.tiling
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.batch = 4  # type: ignore[misc]
    assert r.but(overwrite=True).overwrite and not r.overwrite


@pytest.mark.parametrize(("options", "message"), [
    ({"batch": 0}, "--batch"),
    ({"blur": "k5"}, "unknown blur kernel"),
    ({"known_blur": "k5"}, "k5"),
    ({"keep_size": True}, "--keep-size keeps"),
    ({"tile_overlap": 7}, "overlap"),
    ({"max_tile_pixels": 10}, "tile"),
    ({"pipeline": "gpu"}, "unknown --pipeline"),
    ({"max_pixels": 0}, "--max-pixels must be"),
    ({"executor": "slurm"}, "--executor"),
    ({"workers": 0}, "--workers"),
    ({"gpus_per_worker": -1}, "--gpus-per-worker"),
])
def test_check_names_the_option(options, message):
    with pytest.raises(DtkError, match=message):
        RunRequest(**options).check()


@pytest.mark.parametrize(("options", "message"), [
    ({"overwrite": "yes"}, "--overwrite must be True or False, got 'yes'"),
    ({"workers": "2"}, "--workers must be a whole number, got '2'"),
    ({"batch": True}, "--batch must be a whole number"),
    ({"crf": 18.5}, "--crf must be a whole number or None"),
    ({"ray_address": 3}, "--ray-address must be a string or None"),
])
def test_a_value_of_the_wrong_kind_is_named(options, message):
    with pytest.raises(DtkError, match=message):
        RunRequest(**options).check()
    RunRequest(batch=np.int64(4), tile_overlap=np.int64(32)).check()  # NumPy integers are whole numbers


def test_the_api_takes_a_request_or_its_fields_never_both_nor_a_typo(demo_dir, tmp_path, no_model_load):
    assert api.run_request(None, {"batch": 2}) == RunRequest(batch=2)
    assert api.run_request(RunRequest(batch=3), {}) == RunRequest(batch=3)
    with pytest.raises(DtkError, match="not both"):
        api.run_request(RunRequest(), {"batch": 2})
    with pytest.raises(DtkError, match="unknown run option.*bach"):
        api.Deblurrer().run(demo_dir, tmp_path / "out", bach=2)
    with pytest.raises(DtkError, match="set when the Deblurrer is made"):
        api.Deblurrer().run(demo_dir, tmp_path / "out", batch=2)
