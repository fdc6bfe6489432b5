"""dtk quantize: Q/DQ structure, int8 vs fp32 bound, PSNR guard, metadata, frame split, TensorRT contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines.quantize import quantize_model
from toolkit.core.errors import DtkError

SIZE = (64, 128)  # small frames keep the tests fast; the pipeline resizes the demo frames to this
INT8_VS_FP32_MIN_DB = 35.0  # stated bound: PSNR(int8 output, fp32 output), measured ~45-50 dB


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory) -> Path:
    """A width-8 residual U-Net, random init (seeded), exported at 64x128."""
    import torch

    from toolkit.core.models import ModelConfig
    from toolkit.core.models.unet import SeedUNet
    from training.export import export_onnx

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("q") / "w8.onnx"
    return export_onnx(SeedUNet(ModelConfig(width=8, residual=True)), path, height=SIZE[0], width=SIZE[1])


@pytest.fixture(scope="module")
def quantized(fp32_model, demo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("q8") / "w8-int8.onnx"
    report = quantize_model(fp32_model, demo_dir, out, calib_frames=4, guard_frames=4, max_drop_db=1.0)
    return report, out


def _graph(path: Path):
    import onnx

    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    return model, producers, consumers, inits


def test_every_conv_sits_between_qdq_with_zero_points_0(quantized):
    report, out = quantized
    model, producers, consumers, inits = _graph(out)
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    quantized_convs = [n for n in convs if producers.get(n.input[1]) is not None]
    assert len(quantized_convs) == len(convs) - len(report.float_layers) == 23
    # the U-Net's 4 convs fed by a skip Concat stay float (OpenVINO miscomputes them in int8)
    assert report.fixed_float_why == {n.name: "fed by a Concat" for n in convs
                                      if producers[n.input[0]].op_type == "Concat"}
    assert len(report.fixed_float_why) == 4 and report.float_layers == report.fixed_float_layers
    for node in quantized_convs:
        act, weight = producers[node.input[0]], producers[node.input[1]]
        assert act.op_type == "DequantizeLinear" and weight.op_type == "DequantizeLinear", node.name
        assert [c.op_type for c in consumers[node.output[0]]] == ["QuantizeLinear"], node.name
        w_int8, w_scale, w_zero = (inits[i] for i in weight.input)
        assert w_int8.dtype == np.int8 and not np.any(w_zero)
        axis = next((a.i for a in weight.attribute if a.name == "axis"), None)
        if node.op_type == "Conv":  # per-channel on the output-channel axis
            assert axis == 0 and w_scale.shape == (w_int8.shape[0],), node.name
        else:  # ConvTranspose: one scale (ORT and TensorRT disagree on its channel axis)
            assert w_scale.size == 1, node.name
        if len(node.input) > 2:  # bias stays float: TensorRT rejects int32 DequantizeLinear
            assert node.input[2] in inits and inits[node.input[2]].dtype == np.float32
    add = next(n for n in model.graph.node if n.op_type == "Add")  # residual: the float input, not int8
    assert "input" in add.input
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero = inits[node.input[2]]
            assert zero.dtype == np.int8 and not np.any(zero), node.name


def test_int8_output_stays_close_to_fp32(quantized, fp32_model, demo_dir):
    import onnxruntime as ort

    from engines.quantize import load_inputs
    from toolkit.core.frames import discover_frames
    from toolkit.core.metrics import psnr

    report, out = quantized
    assert report.passed and all(g.int8_vs_fp32_psnr_db > INT8_VS_FP32_MIN_DB for g in report.guard)
    x = load_inputs(discover_frames(demo_dir)[:2], SIZE, "k7")  # an independent check, two frames
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for p in (fp32_model, out)]
    assert psnr(outs[1] * 255, outs[0] * 255) > INT8_VS_FP32_MIN_DB


def test_metadata_records_calibration_and_drops(quantized):
    import onnx

    report, out = quantized
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["precision"] == "int8"
    assert props["int8_calibration_sha256"] == report.calibration_sha256
    assert len(report.calibration_sha256) == 64
    assert props["int8_calibration_method"] == "minmax"
    assert json.loads(props["int8_float_layers"]) == report.float_layers
    drops = json.loads(props["int8_psnr_drop_db"])
    assert set(drops) == {"k3", "k7", "k11"}
    assert drops == {g.kernel: round(g.drop_db, 4) for g in report.guard}
    assert props["int8_calibration_count"] == str(3 * len(report.calibration_frames))
    assert "architecture" in props  # the fp32 model's own metadata is kept


def test_output_gets_the_umask_mode(quantized):
    import os
    import stat

    umask = os.umask(0)
    os.umask(umask)
    _, out = quantized
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_guard_refuses_and_leaves_no_file(fp32_model, demo_dir, tmp_path):
    out = tmp_path / "refused.onnx"
    with pytest.raises(DtkError, match="refusing") as info:
        quantize_model(fp32_model, demo_dir, out, calib_frames=2, guard_frames=2, max_drop_db=-1.0,
                       max_float_layers=1)
    assert list(tmp_path.iterdir()) == []
    report = info.value.report
    assert not report.passed and len(report.sensitivity) == 23  # every int8 layer measured once
    costliest = max(report.sensitivity, key=report.sensitivity.get)  # its drop alone in int8
    assert report.attempts[-1]["float_layers"] == [*report.fixed_float_layers, costliest]


def test_cli_refusal_exits_2_without_file(fp32_model, demo_dir, tmp_path):
    from typer.testing import CliRunner

    from engines.quantize import quantize_model
    from toolkit.app.cli import app

    out = tmp_path / "x.onnx"
    # a negative --max-drop is refused before any work (issue 27: tolerances are finite and >= 0)
    result = CliRunner().invoke(app, ["quantize", str(fp32_model), "--calib", str(demo_dir), "-o", str(out),
                                      "--calib-frames", "2", "--guard-frames", "2", "--max-drop", "-5",
                                      "--max-float-layers", "0"])
    assert result.exit_code == 2 and "--max-drop" in result.output
    assert not out.exists()
    # the guard's own refusal (a drop no int8 graph meets) writes nothing either
    with pytest.raises(DtkError, match="refusing") as info:
        quantize_model(fp32_model, demo_dir, out, calib_frames=2, guard_frames=2, max_drop_db=-5,
                       max_float_layers=0)
    assert info.value.exit_code == 2
    assert not out.exists()


def test_split_is_by_sequence_disjoint_and_deterministic(demo_dir):
    from engines.quantize import split_frames

    a, b = split_frames(demo_dir, calib_frames=None, guard_frames=None), split_frames(demo_dir)
    assert a == b
    assert not {f.sequence for f in a.calibration} & {f.sequence for f in a.guard}
    assert len(a.calibration) + len(a.guard) == 10
    with pytest.raises(DtkError, match="disjoint"):
        split_frames(demo_dir, demo_dir)


def test_quantized_model_is_rejected_as_input(quantized, demo_dir, tmp_path):
    with pytest.raises(DtkError, match="already quantized"):
        quantize_model(quantized[1], demo_dir, tmp_path / "again.onnx")


def test_build_engine_reads_qdq_graph_as_int8(quantized):
    """Contract with `dtk build-engine`: a Q/DQ graph is int8, strongly typed on 10.x, no flag on 11."""
    from engines.tensorrt.build import graph_precision, plan_precision

    assert graph_precision(quantized[1]) == "int8"
    assert plan_precision("11.4.0", "int8", None).precision == "int8"
    assert plan_precision("10.13.0", "int8", None).strongly_typed


@pytest.mark.parametrize("quantize_bank", [False, True])
def test_the_bank_and_the_decision_stay_in_float(demo_dir, tmp_path, quantize_bank):
    """The shipped model's deconvolution bank (known-kernel inverses, gains ~10x; unless asked), its
    decision head (every conv `tile_evidence` depends on) and its convs fed by a Concat stay float;
    every other conv is int8. The decision then equals the fp32 model's: the same evidence (float
    rounding apart), so a frame fp32 passes is passed bit for bit and a frame it deblurs is deblurred."""
    import onnxruntime as ort

    from toolkit.core.modelfiles import default_model_path

    shipped = default_model_path("onnxruntime")
    out = tmp_path / "q.onnx"
    report = quantize_model(shipped, demo_dir, out, calib_frames=1, guard_frames=1,
                            max_drop_db=60.0, max_float_layers=0, quantize_bank=quantize_bank)
    bank = [f"/bank/Conv{s}" for s in ("", "_1", "_2")]  # vertical (per colour), horizontal, sum
    head = [f"/features/features.{i}/features.{i}.0/Conv" for i in range(4)]
    head += ["/bands/Conv", "/bands/Conv_1"]  # the gain head's band energies
    concat_fed = ["/refine/Conv"]  # the one-hot pixel-unshuffle of [frame, bank]
    concat_fed += [f"/refine/{n}/{n}.0/{n}.0.0/Conv" for n in ("enc1", "dec2", "dec1")]
    why = {**({} if quantize_bank else dict.fromkeys(bank, "fixed bank")), **dict.fromkeys(head, "decision"),
           **dict.fromkeys(concat_fed, "fed by a Concat")}
    assert report.fixed_float_why == why and report.float_layers == report.fixed_float_layers
    assert sorted(report.float_layers) == sorted(why)
    model, producers, _, _ = _graph(out)
    convs = {n.name: n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")}
    assert set(bank) <= set(convs) and len(convs) == 24  # round 4: + 2 band-energy convs, + unshuffle
    for name, node in convs.items():
        weight_from = getattr(producers.get(node.input[1]), "op_type", None)  # None: a float initializer
        assert (weight_from != "DequantizeLinear") == (name in why), name
    if quantize_bank:
        return
    x = np.concatenate([load_demo(demo_dir, k) for k in ("k7", None)])  # blurred, then sharp frames
    feeds = {"input": x}
    fp32, int8 = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)
                  for p in (shipped, out))
    np.testing.assert_allclose(int8[1], fp32[1], rtol=1e-5, atol=1e-4)  # tile_evidence: float in both
    n = len(x) // 2
    assert np.array_equal(int8[0][n:], x[n:]) and np.array_equal(fp32[0][n:], x[n:])  # sharp: passed
    assert np.abs(int8[0][:n] - x[:n]).mean() > 1e-3 and np.abs(fp32[0][:n] - x[:n]).mean() > 1e-3


def load_demo(demo_dir, kernel, n=2):
    """n demo frames at the shipped model's 256x448, blurred with `kernel` (None: sharp), NCHW."""
    from engines.quantize import load_inputs
    from toolkit.core.frames import discover_frames

    return load_inputs(discover_frames(demo_dir)[:n], (256, 448), kernel)
