"""`engines.compare`: Polygraphy's comparator statistics checked against plain NumPy; argument refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.compare import compare_outputs, compare_runners, parse_runner, psnr_between
from toolkit.core.errors import DtkError


@pytest.fixture(scope="module")
def outputs():
    rng = np.random.default_rng(7)
    ref = {k: rng.random((n, 3, 16, 24), dtype=np.float32) + 0.05 for k, n in (("k7", 3), ("k11", 2))}
    near = {k: v + rng.normal(0, 1e-4, v.shape).astype(np.float32) for k, v in ref.items()}
    far = {k: v + rng.normal(0, 2e-2, v.shape).astype(np.float32) for k, v in ref.items()}
    return {"torch": ref, "onnxruntime": near, "onnxruntime:m-fp16.onnx": far}


def numpy_stats(ref: np.ndarray, other: np.ndarray, q: float) -> dict:
    """The same statistics, computed independently: errors in float64, relative to the reference."""
    a, b = ref.astype(np.float64), other.astype(np.float64)
    diff = np.abs(b - a)
    rel = diff / np.abs(a)
    return {"max_abs": diff.max(), "mean_abs": diff.mean(), "median_abs": np.median(diff),
            "quantile_abs": np.quantile(diff, q), "max_rel": rel.max(), "quantile_rel": np.quantile(rel, q),
            "psnr_db": 10 * math.log10(1.0 / np.mean((a - b) ** 2))}


def test_statistics_match_numpy(outputs):
    pairs = compare_outputs(outputs, quantile=0.999)
    assert [(p.other, p.kernel) for p in pairs] == [
        (o, k) for o in ("onnxruntime", "onnxruntime:m-fp16.onnx") for k in ("k7", "k11", "all")]
    for p in pairs:
        ref, other = outputs["torch"], outputs[p.other]
        if p.kernel == "all":
            a, b = np.concatenate([ref["k7"], ref["k11"]]), np.concatenate([other["k7"], other["k11"]])
        else:
            a, b = ref[p.kernel], other[p.kernel]
        expected = numpy_stats(a, b, 0.999)
        assert p.reference == "torch" and p.frames == a.shape[0] and p.passed is None
        for name, value in expected.items():
            assert getattr(p, name) == pytest.approx(value, rel=1e-4, abs=1e-9), (p.other, p.kernel, name)


@pytest.mark.parametrize(("stat", "atol", "rtol", "verdicts"), [
    ("max", 1e-3, None, [True, False]),  # the near runner within 1e-3 max abs, the far one not
    ("max", 1.0, None, [True, True]),
    ("median", None, 0.5, [True, True]),  # relative alone: the far runner's median rel error is small
    ("quantile", 1e-6, 1e-6, [False, False]),
])
def test_tolerances_decide_per_pair(outputs, stat, atol, rtol, verdicts):
    pairs = compare_outputs(outputs, atol=atol, rtol=rtol, check_stat=stat)
    got = [all(p.passed for p in pairs if p.other == o) for o in ("onnxruntime", "onnxruntime:m-fp16.onnx")]
    assert got == verdicts


def test_identical_outputs_have_no_psnr(outputs):
    same = {"torch": outputs["torch"], "copy": {k: v.copy() for k, v in outputs["torch"].items()}}
    pairs = compare_outputs(same, atol=0.0)
    assert all(p.max_abs == 0 and p.psnr_db is None and p.passed for p in pairs)
    assert psnr_between(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)


@pytest.mark.parametrize(("args", "needle"), [
    ((["torch"],), "at least two runners"),
    ((["torch", "tensorflow"],), "backend must be one of"),
    ((["torch", "torch"],), "named twice"),
    ((["torch", "onnxruntime"], {"kernels": ("k9",)}), "unknown kernel"),
    ((["torch", "onnxruntime"], {"check_stat": "elemwise"}), "--check-stat"),
    ((["torch", "onnxruntime"], {"atol": -1.0}), "--atol must be >= 0"),
    ((["torch", "onnxruntime:missing.onnx"],), "model not found"),
])
def test_refusals_before_any_model_loads(args, needle):
    runners, kwargs = args[0], (args[1] if len(args) > 1 else {})
    with pytest.raises(DtkError, match=needle):
        compare_runners(runners, log=lambda _m: None, **kwargs)


def test_parse_runner_labels():
    label, spec = parse_runner("onnxruntime")
    assert (label, spec.backend, spec.model.name) == ("onnxruntime", "onnxruntime", "dtk-unet.onnx")
    label, spec = parse_runner(f"onnxruntime:{spec.model.with_name('dtk-unet-fp16.onnx')}")
    assert label == "onnxruntime:dtk-unet-fp16.onnx"
