"""Sidecar save/load, the load-time compatibility check, and batch-profile arithmetic (pure logic)."""

from __future__ import annotations

import pytest

from engines.tensorrt.sidecar import (
    BatchProfile,
    EngineSidecar,
    check_compatible,
    load_sidecar,
    save_sidecar,
    sidecar_path,
)
from toolkit.core.errors import DtkError


def make_sidecar(**kw) -> EngineSidecar:
    base = dict(tensorrt_version="11.4.0", gpu_name="NVIDIA H200", compute_capability="9.0", precision="fp16",
                profile=BatchProfile(1, 8, 32), onnx_sha256="ab" * 32, onnx_path="dtk-unet-fp16.onnx")
    return EngineSidecar(**{**base, **kw})


def test_profile_rejects_disorder():
    for lo, opt, hi in [(0, 1, 2), (2, 1, 4), (1, 9, 8), (4, 4, 3)]:
        with pytest.raises(DtkError, match="min <= opt <= max"):
            BatchProfile(lo, opt, hi)
    assert BatchProfile(4, 4, 4).shapes() == ((4, 3, 256, 448),) * 3


def test_profile_contains_and_chunks():
    p = BatchProfile(2, 4, 8)
    assert [p.contains(n) for n in (1, 2, 8, 9)] == [False, True, True, False]
    assert p.chunks(8) == [(0, 8, 8)]
    assert p.chunks(19) == [(0, 8, 8), (8, 16, 8), (16, 19, 3)]
    assert p.chunks(17) == [(0, 8, 8), (8, 16, 8), (16, 17, 2)]  # remainder padded up to min
    assert p.chunks(1) == [(0, 1, 2)]
    with pytest.raises(DtkError):
        p.chunks(0)


def test_chunks_cover_every_row_once():
    p = BatchProfile(3, 5, 7)
    for n in range(1, 40):
        chunks = p.chunks(n)
        rows = [r for start, stop, _ in chunks for r in range(start, stop)]
        assert rows == list(range(n))
        assert all(p.contains(size) and size >= stop - start for start, stop, size in chunks)


def test_sidecar_roundtrip(tmp_path):
    engine = tmp_path / "m.engine"
    sc = make_sidecar(builder_flags=["FP16"])
    path = save_sidecar(engine, sc)
    assert path == sidecar_path(engine) and path.name == "m.engine.json"
    assert load_sidecar(engine) == sc


def test_missing_or_corrupt_sidecar_says_how_to_rebuild(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(DtkError, match="dtk build-engine MODEL.onnx -o .*m.engine"):
        load_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(DtkError, match="unreadable engine sidecar"):
        load_sidecar(engine)


def test_compatible_engine_passes(tmp_path):
    check_compatible(make_sidecar(), tensorrt_version="11.4.0", compute_capability="9.0",
                     engine_path=tmp_path / "m.engine")


@pytest.mark.parametrize(("trt_version", "cc", "needle"), [
    ("11.4.1", "9.0", "built by TensorRT 11.4.0, this is TensorRT 11.4.1"),
    ("10.14.1", "9.0", "this is TensorRT 10.14.1"),
    ("11.4.0", "8.9", "compute capability 9.0 (NVIDIA H200), this GPU is 8.9"),
])
def test_incompatible_engine_refused_with_rebuild_command(tmp_path, trt_version, cc, needle):
    with pytest.raises(DtkError) as err:
        check_compatible(make_sidecar(), tensorrt_version=trt_version, compute_capability=cc,
                         engine_path=tmp_path / "m.engine")
    msg = str(err.value)
    assert needle in msg
    assert "dtk build-engine dtk-unet-fp16.onnx -o" in msg and "--overwrite" in msg


@pytest.mark.parametrize("text", ["[]", "null", "3", '"x"'])
def test_sidecar_that_is_not_an_object_is_a_clean_error(tmp_path, text):
    engine = tmp_path / "m.engine"
    sidecar_path(engine).write_text(text)
    with pytest.raises(DtkError, match="unreadable engine sidecar.*dtk build-engine"):
        load_sidecar(engine)


@pytest.mark.parametrize("profile", ['"big"', "[]", "null", '{"opt": 8}',
                                     '{"min": "x", "opt": 8, "max": 32}'])
def test_invalid_profile_refused_not_defaulted(tmp_path, profile):
    import json

    engine = tmp_path / "m.engine"
    obj = make_sidecar().to_json()
    sidecar_path(engine).write_text(json.dumps(obj).replace(json.dumps(obj["profile"]), profile))
    with pytest.raises(DtkError, match="unreadable engine sidecar"):
        load_sidecar(engine)
    obj.pop("profile")
    sidecar_path(engine).write_text(json.dumps(obj))
    with pytest.raises(DtkError, match="profile"):
        load_sidecar(engine)
