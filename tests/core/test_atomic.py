"""The one atomic writer: whole files, the umask's mode (not mkstemp's 0600), no leftovers."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from toolkit.core.atomic import TEMP_PATTERN, stale_temp_files, temp_name, write_bytes_atomic
from toolkit.core.frames import write_png_atomic


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_umask_mode(tmp_path, umask022):
    p = write_bytes_atomic(tmp_path / "a" / "b.bin", b"hello")
    assert p.read_bytes() == b"hello" and mode(p) == 0o644
    png = write_png_atomic(tmp_path / "f.png", np.zeros((4, 4, 3), np.uint8))
    assert mode(png) == 0o644
    os.umask(0o077)
    assert mode(write_bytes_atomic(tmp_path / "private.bin", b"x")) == 0o600
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.bin", "f.png", "private.bin"]


def test_checkpoint_files_get_the_umask_mode(tmp_path, umask022):
    from toolkit.core.modelfiles import checkpoint_paths
    from toolkit.core.models import ModelConfig
    from toolkit.core.models.checkpoint import save_checkpoint
    from toolkit.core.models.unet import SeedUNet

    save_checkpoint(tmp_path / "m.safetensors", SeedUNet(ModelConfig(width=8)))
    weights, sidecar, _ = checkpoint_paths(tmp_path / "m.safetensors")
    assert mode(weights) == 0o644 and mode(sidecar) == 0o644


def test_failed_write_leaves_target_and_no_temp(tmp_path, monkeypatch):
    target = write_bytes_atomic(tmp_path / "t.bin", b"old")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.bin"]


def test_temp_names_are_recognised(tmp_path):
    t = temp_name(tmp_path / "0001.png")
    assert TEMP_PATTERN.match(t.name) and t.name.startswith(".0001.png.")
    (tmp_path / "s").mkdir()
    stale = tmp_path / "s" / ".2.png.0a1b2c3d.tmp"
    stale.write_bytes(b"")
    (tmp_path / "s" / ".notes.txt.0a1b2c3d.tmp").write_bytes(b"")
    (tmp_path / "s" / "keep.tmp").write_bytes(b"")
    assert list(stale_temp_files(tmp_path, ".png")) == [stale]
