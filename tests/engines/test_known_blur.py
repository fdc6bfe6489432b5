"""A blur the user knows (`known_blur`): one exported graph input, every CPU runner, the tiled path."""

from __future__ import annotations

import numpy as np
import pytest

from engines.tiled import Tiling, check_known_blur, deblur_frames
from toolkit.core.errors import DtkError
from toolkit.core.evidence import KNOWN_CLASS, known_rows
from toolkit.core.kernels import blur
from toolkit.core.modelfiles import resolve_model

pytest.importorskip("onnxruntime", reason="the shipped ONNX runs on ONNX Runtime (.[cpu])")


@pytest.fixture(scope="module")
def ort_runner():
    from engines.onnxruntime import OrtRunner

    with OrtRunner(resolve_model(None, "onnxruntime"), threads=2) as runner:
        yield runner


def _batch(frames):
    return np.stack([(f.astype(np.float32) / 255.0).transpose(2, 0, 1) for f in frames])


def test_the_shipped_graph_takes_a_known_blur_and_decides_without_one(ort_runner, astronaut):
    assert ort_runner.takes_known_blur
    x = _batch([blur(astronaut, k) for k in ("k3", "k7", "k11")])
    decide = ort_runner.infer(x, known=np.full((3, 1), -1.0, dtype=np.float32))
    np.testing.assert_array_equal(ort_runner.infer(x), decide)  # -1: the graph's own decision, exactly
    np.testing.assert_array_equal(ort_runner.infer(x, known=known_rows("k3", 3)), x)  # a pass is the input
    told = ort_runner.infer(x, known=known_rows("k11", 3))
    assert float(np.abs(told - x).max()) > 0.1  # every frame deconvolved, the sharpest too


def test_ort_matches_torch_when_told(ort_runner, astronaut):
    import torch

    from toolkit.core.models.checkpoint import load_model

    model = load_model(resolve_model(None, "torch"))
    x = _batch([blur(astronaut, "k7")])
    with torch.no_grad():
        ref = model(torch.from_numpy(x), known=torch.tensor([[KNOWN_CLASS["k7"]]])).numpy()
    got = ort_runner.infer(x, known=known_rows("k7", 1))
    assert float(np.abs(got - ref).max()) < 1e-4  # fp32 against fp32: rounding only


def test_tiled_known_blur_skips_the_decision(ort_runner, astronaut):
    frame = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)[:, :640]  # 256 x 640: two tiles
    blurred = blur(frame, "k7")
    told = deblur_frames(ort_runner, [blurred], Tiling(fixed=True), known_blur="k7")
    assert told.evidence_tiles == 0 and told.tiles == 2
    whole = deblur_frames(ort_runner, [blurred], Tiling(), known_blur="k7")  # one pass: a large tile
    assert whole.tiles == 1 and whole.evidence_tiles == 0 and whole.passed_frames == 0
    assert np.abs(whole.images[0].astype(int) - told.images[0].astype(int)).max() <= 1
    assert told.images[0].shape == frame.shape
    gain = _psnr(told.images[0], frame) - _psnr(blurred, frame)
    assert gain > 1.0  # the k7 inverse and its refinement help a k7 frame
    passed = deblur_frames(ort_runner, [blurred], Tiling(), known_blur="k3")
    assert passed.tiles == 0 and passed.passed_frames == 1
    np.testing.assert_array_equal(passed.images[0], blurred)


def test_a_model_without_a_decision_cannot_be_told(tiny_model_dir):
    from engines.onnxruntime import OrtRunner

    with OrtRunner(tiny_model_dir / "m.onnx") as runner:
        assert not runner.takes_known_blur
        with pytest.raises(DtkError, match="cannot be told the blur"):
            check_known_blur(runner, "k7")
    with pytest.raises(DtkError, match="choose one of k3, k7, k11"):
        check_known_blur(runner, "k5")


def _psnr(a, b):
    from toolkit.core.metrics import psnr

    return psnr(a, b)


def test_openvino_is_told_as_onnx_runtime_is(ort_runner, astronaut):
    pytest.importorskip("openvino", reason="OpenVINO (.[cpu])")
    from engines.openvino import OvRunner

    x = _batch([blur(astronaut, k) for k in ("k3", "k7", "k11")])
    with OvRunner(resolve_model(None, "onnxruntime"), threads=2, cache=False) as ov:
        assert ov.takes_known_blur
        np.testing.assert_array_equal(ov.infer(x, known=known_rows("k3", 3)), x)
        for k in ("k7", "k11"):
            got = ov.infer(x, known=known_rows(k, 3))
            want = ort_runner.infer(x, known=known_rows(k, 3))
            assert float(np.abs(got - want).max()) < 1e-4  # fp32 (OpenVINO's f32 hint): rounding only
        np.testing.assert_allclose(ov.infer(x), ort_runner.infer(x), atol=1e-4)  # not told: decides


def test_the_shipped_decision_rule_is_declared_by_the_graph(ort_runner):
    from engines.onnx_graph import graph_architecture
    from toolkit.core.evidence import decides_whole_frame

    arch = graph_architecture(resolve_model(None, "onnxruntime"))
    assert arch.get("name") == "FastWienerNet"
    assert ort_runner.decides_whole_frame == decides_whole_frame(arch)
