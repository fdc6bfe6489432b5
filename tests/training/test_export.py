"""ONNX export: names, dynamic batch, metadata, parity with torch; fp16 graph error bounded."""

from __future__ import annotations

import pytest
import torch

from toolkit.core.errors import DtkError
from toolkit.core.models import ModelConfig
from toolkit.core.models.unet import SeedUNet
from training.export import check_parity, export_onnx, fp16_error

H, W = 64, 96


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SeedUNet(ModelConfig(width=8, tail_convs=2, residual=True)).eval()


def test_fp32_parity_names_batch_metadata(tiny, tmp_path):
    import onnx

    path = export_onnx(tiny, tmp_path / "m.onnx", height=H, width=W, metadata={"kernels": "k3,k7,k11"})
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]  # any H x W
    fixed = onnx.load(str(export_onnx(tiny, tmp_path / "f.onnx", height=H, width=W, any_size=False)))
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, H, W]
    assert model.opset_import[0].version >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert '"width": 8' in props["architecture"] and props["kernels"] == "k3,k7,k11"
    result = check_parity(tiny, path, H, W)
    assert result["random_max_abs"] <= 1e-4 and result["real_max_abs"] <= 1e-4


def test_fp16_graph_error_bounded(tiny, tmp_path, astronaut):
    import onnx

    frames = [astronaut[:H, :W], astronaut[100:100 + H, 200:200 + W]]
    for fp16_io, elem in ((False, onnx.TensorProto.FLOAT), (True, onnx.TensorProto.FLOAT16)):
        path = export_onnx(tiny, tmp_path / f"h{fp16_io}.onnx", height=H, width=W, fp16=True, fp16_io=fp16_io)
        assert onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type == elem
        err = fp16_error(tiny, frames, path, fp16_io=fp16_io)
        assert err["max_abs"] < 5e-3
        assert abs(err["psnr_drop_mean_db"]) < 0.5


def test_parity_failure_is_loud(tiny, tmp_path):
    path = export_onnx(tiny, tmp_path / "m.onnx", height=H, width=W)
    other = SeedUNet(tiny.config).eval()
    with pytest.raises(DtkError, match="differs from PyTorch"):
        check_parity(other, path, H, W)


def test_fp16_overflow_refused(tmp_path):
    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=8, tail_convs=1)).eval()
    with torch.no_grad():
        model.out.bias.fill_(1e5)
    with pytest.raises(DtkError, match="refusing the fp16 export"):
        export_onnx(model, tmp_path / "m.onnx", height=H, width=W, fp16=True)


def test_parity_exercises_the_shipped_models_deconvolution_path(tmp_path):
    """Sharp and random inputs only reach a gated model's pass-through; a blurred frame reaches the rest."""
    from toolkit.core.modelfiles import default_model_path
    from toolkit.core.models.checkpoint import load_model
    from training.export import export_onnx

    model = load_model(default_model_path("torch"))
    path = tmp_path / "m.onnx"
    export_onnx(model, path, check=False)
    from training.export import check_parity

    res = check_parity(model, path, 256, 448)
    assert res["real_max_abs"] < 1e-6  # pass-through: the same pixels
    # the deconvolution path computed by both (k7 at least: round 3's gate passes this k11 frame)
    assert 0 < max(res["real_k7_max_abs"], res["real_k11_max_abs"]) < 1e-4


def test_fp16_export_with_check_false_skips_parity(tiny, tmp_path, monkeypatch):
    """`check=False` is honoured for fp16 too (the range guard's result once overwrote `check`)."""
    import training.export as export

    calls = []
    monkeypatch.setattr(export, "check_parity", lambda *a, **k: calls.append(a) or {})
    export.export_onnx(tiny, tmp_path / "h.onnx", height=H, width=W, fp16=True, check=False)
    assert calls == []
    export.export_onnx(tiny, tmp_path / "h2.onnx", height=H, width=W, fp16=True, check=True)
    assert len(calls) == 1


def test_export_folds_constants_of_the_shipped_model(tmp_path):
    """The Wiener bank's weight was a Constant node; after export every Conv weight is an initializer."""
    import onnx

    from toolkit.core.modelfiles import default_model_path
    from toolkit.core.models.checkpoint import load_model

    model = load_model(default_model_path("torch"))
    path = export_onnx(model, tmp_path / "m.onnx")  # check=True: parity holds on the folded graph
    graph = onnx.load(str(path)).graph
    inits = {i.name for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
    assert len(convs) == 24 and all(n.input[1] in inits for n in convs)  # 21 + 2 band-energy + unshuffle
    assert not [n.name for n in graph.node if n.op_type == "Constant"]
    res = check_parity(model, path, 256, 448)
    assert res["real_k7_max_abs"] < 1e-4 and res["real_k11_max_abs"] < 1e-4
