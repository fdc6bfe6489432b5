"""Architectures by name: every registered one builds, checkpoints carry the name, old sidecars load."""

from __future__ import annotations

import json

import pytest

from toolkit.core.models import ModelConfig, architectures, create_model
from toolkit.core.models.checkpoint import load_model, save_checkpoint


def test_every_architecture_builds_and_knows_its_name():
    assert architectures() == ["fastwiener", "seed", "wiener"]
    for name in architectures():
        model = create_model(ModelConfig(arch=name, width=8, tail_convs=1))
        assert model.arch == name and model.config.arch == name


def test_unknown_architecture_names_the_registered_ones():
    with pytest.raises(ValueError, match="fastwiener, seed, wiener"):
        create_model(ModelConfig(arch="resnet"))


def test_sidecar_records_arch_and_old_wiener_flag_still_loads(tmp_path):
    model = create_model(ModelConfig(arch="wiener", width=8, tail_convs=1))
    weights = save_checkpoint(tmp_path / "m.safetensors", model)
    sidecar = tmp_path / "m.json"
    doc = json.loads(sidecar.read_text())
    assert doc["arch"] == "wiener" and doc["config"]["arch"] == "wiener"
    # a sidecar from before the registry: arch "seed" + wiener: true meant the gated Wiener U-Net
    doc.pop("arch")
    doc["config"].update(arch="seed", wiener=True)
    sidecar.write_text(json.dumps(doc))
    assert type(load_model(weights)).__name__ == "WienerUNet"


def test_the_seed_unet_module_does_not_dispatch_to_the_others():
    from pathlib import Path

    import toolkit.core.models.unet as unet

    text = Path(unet.__file__).read_text()
    assert "fastwiener" not in text and "WienerUNet" not in text
