"""The Python API (toolkit.app.api): `Deblurrer` equals `dtk run` byte for byte, loads once, chunks,
keeps the caller's types, refuses bad options before loading, and `import toolkit` stays torch-free."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from engines.spec import RunnerSpec
from toolkit.app import api
from toolkit.app.cli import app
from toolkit.app.outputs import output_path_for
from toolkit.app.run import RunSummary
from toolkit.core.demo import photo_mosaic
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, read_frame, write_png_atomic
from toolkit.core.kernels import blur


def dtk_run(input_dir, out, *extra):
    """`dtk run INPUT -o OUT` through the real CLI; the frames it read and the PNGs it wrote."""
    result = CliRunner().invoke(app, ["run", str(input_dir), "-o", str(out), *extra])
    assert result.exit_code == 0, result.output
    frames = discover_frames(input_dir)
    return frames, [np.asarray(Image.open(output_path_for(f, out))) for f in frames]


@pytest.fixture
def count_loads(monkeypatch):
    """How many times a runner was opened (RunnerSpec.open, still loading the real model)."""
    opened = []
    real_open = RunnerSpec.open

    def counting_open(self):
        opened.append(self)
        return real_open(self)

    monkeypatch.setattr(RunnerSpec, "open", counting_open)
    return opened


@pytest.mark.slow
def test_three_line_example_equals_dtk_run_on_the_demo_frames(demo_dir, tmp_path, count_loads):
    frames, pngs = dtk_run(demo_dir, tmp_path / "cli", "--blur", "k7")
    images = [blur(read_frame(f.path), "k7") for f in frames]  # what dtk run --blur k7 deblurs
    from toolkit import Deblurrer

    with Deblurrer("default", backend="auto") as deblur:
        sharp = deblur(images)
        summary = deblur.run(demo_dir, tmp_path / "api", blur="k7")
    assert len(sharp) == len(pngs) == 10
    for got, want in zip(sharp, pngs, strict=True):
        assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert isinstance(summary, RunSummary) and summary.written == 10 and not summary.failed
    for f in frames:  # the folder run writes the very same files as the CLI
        api_png, cli_png = (output_path_for(f, tmp_path / d) for d in ("api", "cli"))
        assert api_png.read_bytes() == cli_png.read_bytes()
    assert len(count_loads) == 2  # the CLI's load, then the Deblurrer's one for both calls


@pytest.mark.slow
def test_a_1280x720_frame_equals_dtk_run_at_native_size(tmp_path):
    write_png_atomic(tmp_path / "in" / "frame.png", photo_mosaic(720, 1280))
    frames, pngs = dtk_run(tmp_path / "in", tmp_path / "cli")
    frame = read_frame(frames[0].path)
    from toolkit import Deblurrer

    with Deblurrer("default", backend="auto") as deblur:
        sharp = deblur(frame)
    assert sharp.shape == (720, 1280, 3) and sharp.dtype == np.uint8
    assert np.array_equal(sharp, pngs[0])


def test_import_toolkit_and_its_deblurrer_import_no_torch():
    code = ("import sys, toolkit; toolkit.Deblurrer; from toolkit import Deblurrer; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'engines.spec') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_model_loads_once_over_calls_and_again_after_close(demo_dir, tmp_path, count_loads):
    frame = read_frame(discover_frames(demo_dir)[0].path)[:64, :96]
    deblur = api.Deblurrer()
    assert not count_loads and not deblur.loaded  # constructing loads nothing
    first = deblur(frame)
    assert np.array_equal(deblur(frame), first)
    deblur([frame, frame])
    deblur.run(demo_dir / "astronaut", tmp_path / "out")
    assert len(count_loads) == 1
    deblur.close()
    assert not deblur.loaded
    deblur(frame)
    assert len(count_loads) == 2
    deblur.close()


def test_frames_beyond_batch_are_chunked_to_it():
    deblur = api.Deblurrer(batch=2)
    runner = deblur.open()
    sizes = []
    infer = runner.infer

    def spy(x, **kwargs):
        sizes.append(len(x))
        return infer(x, **kwargs)

    runner.infer = spy
    frames = np.stack([np.full((48, 64, 3), 40 * i, np.uint8) for i in range(5)])
    out = deblur(frames)
    deblur.close()
    assert sizes == [2, 2, 1]  # one tile per frame, 2 frames per step
    assert out.shape == frames.shape and out.dtype == np.uint8


def test_outputs_keep_the_callers_type_layout_and_dtype():
    torch = pytest.importorskip("torch")
    a, b = np.full((40, 56, 3), 90, np.uint8), np.full((300, 500, 3), 160, np.uint8)
    with api.Deblurrer() as deblur:
        single = deblur(a)
        listed = deblur([a, b])
        assert isinstance(listed, list) and [im.shape for im in listed] == [a.shape, b.shape]
        assert np.array_equal(listed[0], single)
        stacked = deblur(np.stack([a, a]))
        assert stacked.shape == (2, 40, 56, 3) and np.array_equal(stacked[1], single)
        x = torch.from_numpy(np.stack([a, a])).permute(0, 3, 1, 2).to(torch.float64) / 255
        y = deblur(x)
        assert y.shape == x.shape and y.dtype == torch.float64 and y.device == x.device
        assert np.array_equal((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), single)
        assert deblur([]) == []


@pytest.mark.parametrize("frames, message", [
    (np.zeros((8, 8, 3), np.float32), "must be uint8"),
    (np.zeros((8, 8), np.uint8), "RGB frames"),
    (np.zeros((2, 2, 8, 8, 3), np.uint8), "N x H x W x 3"),
    ([np.zeros((8, 8, 3), np.uint8), "a.png"], "frames\\[1\\] is a str"),
    ("frames/", "cannot deblur a str"),
])
def test_frames_it_cannot_take_raise_a_dtk_error_before_loading(no_model_load, frames, message):
    with pytest.raises(api.FramesError, match=message):
        api.Deblurrer()(frames)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_frames_are_refused_before_loading(no_model_load, value):
    """NaN/inf in a tensor or a float array is refused (FramesError, a DtkError) before the model
    loads, never quantized to some byte and deblurred; so is a float array given to
    deblur_images, which takes uint8 frames only."""
    import torch

    x = torch.full((1, 3, 16, 24), 0.5)
    x[0, 1, 3, 4] = value
    with pytest.raises(api.FramesError, match="1 non-finite value"):
        api.Deblurrer()(x)
    a = np.full((16, 24, 3), 0.5, np.float32)
    a[2, 2, 0] = value
    with pytest.raises(api.FramesError, match="non-finite"):
        api.Deblurrer()(a)
    with pytest.raises(api.FramesError, match="non-finite"):
        api.Deblurrer().deblur_images([a])


@pytest.mark.parametrize("options, cli_flags", [
    ({"batch": 0}, ["--batch", "0"]),
    ({"tile_overlap": 7}, ["--tile-overlap", "7"]),
    ({"precision": "fp8"}, ["--precision", "fp8"]),
    ({"backend": "tpu"}, ["--backend", "tpu"]),
    ({"threads": 0}, ["--threads", "0"]),
    ({"backend": "onnxruntime", "compile": True}, ["--backend", "onnxruntime", "--compile"]),
    ({"model": "missing.onnx"}, ["--model", "missing.onnx"]),
])
def test_bad_options_raise_the_clis_message_before_any_load(demo_dir, tmp_path, no_model_load, options,
                                                            cli_flags):
    with pytest.raises(DtkError) as caught:
        api.Deblurrer(**options)
    result = CliRunner().invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "out"), *cli_flags])
    assert result.exit_code == 2
    assert " ".join(str(caught.value).split()) in " ".join(result.output.split())


@pytest.mark.parametrize("options", [{"batch": "8"}, {"batch": 2.5}, {"threads": True},
                                     {"tile_overlap": 64.0}])
def test_options_of_the_wrong_type_raise_a_dtk_error(no_model_load, options):
    with pytest.raises(DtkError, match="must be a whole number"):
        api.Deblurrer(**options)


def test_calls_from_several_threads_are_serialized_and_agree():
    from concurrent.futures import ThreadPoolExecutor

    frames = [photo_mosaic(48 + 8 * i, 64) for i in range(6)]
    with api.Deblurrer(batch=2) as deblur:
        serial = deblur(frames)
        with ThreadPoolExecutor(3) as pool:
            parallel = list(pool.map(deblur, [[f] for f in frames]))
    for got, want in zip(parallel, serial, strict=True):
        assert np.array_equal(got[0], want)


@pytest.mark.parametrize("options, message", [
    ({"blur": "k5"}, "unknown blur kernel"),
    ({"keep_size": True}, "--keep-size keeps"),
    ({"pipeline": "gpu"}, "unknown --pipeline"),
    ({"max_pixels": 0}, "--max-pixels must be"),
])
def test_bad_run_options_raise_before_any_load(demo_dir, tmp_path, no_model_load, options, message):
    with pytest.raises(DtkError, match=message):
        api.Deblurrer().run(demo_dir, tmp_path / "out", **options)


def test_run_refuses_an_output_inside_the_input_like_the_cli(demo_dir, no_model_load):
    with pytest.raises(DtkError, match="inside INPUT"):
        api.Deblurrer().run(demo_dir, demo_dir / "out")


def test_docstring_examples_run():
    result = doctest.testmod(api, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 20 and result.failed == 0  # the module's, Deblurrer's, run's, evaluate's


@pytest.mark.slow
def test_the_example_script_writes_a_before_after_strip(tmp_path):
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "deblur_photos.py"
    write_png_atomic(tmp_path / "a.png", photo_mosaic(120, 200))
    out = tmp_path / "strip.png"
    subprocess.run([sys.executable, str(script), str(tmp_path / "a.png"), "--blur", "k3", "-o", str(out),
                    "--height", "60"], check=True, capture_output=True)
    with Image.open(out) as im:
        assert im.size == (2 * 100 + 8, 60)  # before | gap | after, scaled to 60 rows


@pytest.mark.parametrize("case", ["over its photo", "existing -o", "truncated photo", "no image suffix"])
def test_the_example_script_follows_dtks_write_rules_and_errors_in_one_line(tmp_path, case):
    """examples/deblur_photos.py goes through safepaths and prints one `error:` line, exit 2, before
    any model loads: never over a photo it reads, an existing -o only with --overwrite, a truncated
    photo or an -o that names no image format is a mistake, not a traceback."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "deblur_photos.py"
    photo = tmp_path / "p.png"
    write_png_atomic(photo, photo_mosaic(64, 96))
    kept = photo.read_bytes()
    existing = tmp_path / "strip.png"
    existing.write_bytes(b"keep me")
    truncated = tmp_path / "t.png"
    truncated.write_bytes(kept[: len(kept) // 2])
    args = {"over its photo": [photo, "-o", photo], "existing -o": [photo, "-o", existing],
            "truncated photo": [truncated, "-o", tmp_path / "new.png"],
            "no image suffix": [photo, "-o", tmp_path / "strip"]}[case]
    res = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert photo.read_bytes() == kept and existing.read_bytes() == b"keep me"
    assert not (tmp_path / "new.png").exists() and not (tmp_path / "strip").exists()


class OnDevice:
    """The shipped runner dressed as one that takes device tensors (as the CUDA runners do), on
    the CPU: drives the tensor path (convert, pad, tile, stitch in torch) without a GPU."""

    accepts_device_tensors = True

    def __init__(self, inner, torch):
        self.inner, self.torch, self.device = inner, torch, torch.device("cpu")
        self.takes_evidence, self.seen = inner.takes_evidence, []
        self.decides_whole_frame = inner.decides_whole_frame

    def infer(self, x, **kwargs):
        self.seen.append(type(x).__name__)
        return self.torch.from_numpy(self.inner.infer(x.numpy(), **kwargs))

    def evidence(self, x):
        return self.inner.evidence(x.numpy())

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("size", [(40, 56), (300, 500)])  # padded past its own size; several tiles
def test_a_tensor_through_a_device_runner_stays_tensors_and_equals_the_host_path(size):
    torch = pytest.importorskip("torch")
    photo = photo_mosaic(*size)
    x = torch.from_numpy(np.stack([photo, photo[::-1].copy()])).permute(0, 3, 1, 2).float() / 255
    with api.Deblurrer() as deblur:
        want = deblur(x)  # the host path: the ORT runner takes NumPy
        device_runner = OnDevice(deblur.open(), torch)
        deblur._runner = device_runner
        got = deblur(x)
    assert set(device_runner.seen) == {"Tensor"}  # tiles were cut on the "device", never NumPy
    assert got.dtype == x.dtype and got.shape == x.shape and torch.equal(got, want)


@pytest.mark.slow
def test_evaluate_returns_the_result_dtk_eval_renders(demo_dir, tmp_path):
    import json

    report = tmp_path / "eval.json"
    args = ["eval", str(demo_dir), "--model", "default", "--kernels", "k7", "--baselines", "wiener",
            "--no-ssim", "--native", "--json", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with api.Deblurrer() as deblur:
        evaluated = deblur.evaluate(demo_dir, kernels="k7", baselines="wiener", ssim=False, native=True)
    cli = json.loads(report.read_text())
    assert cli.pop("model")["backend"] == deblur.spec.backend  # the one entry the command adds
    assert json.loads(json.dumps(evaluated.to_json())) == cli


def test_bad_evaluate_options_raise_before_any_load(demo_dir, no_model_load):
    with pytest.raises(DtkError, match="unknown blur kernel"):
        api.Deblurrer().evaluate(demo_dir, kernels="k5")
    with pytest.raises(DtkError, match="baseline"):
        api.Deblurrer().evaluate(demo_dir, baselines="median")
    for empty in ("", " ", ","):  # an empty list is refused, never "all" (nor "none")
        with pytest.raises(DtkError, match="--kernels is empty"):
            api.Deblurrer().evaluate(demo_dir, kernels=empty)
        with pytest.raises(DtkError, match="--baselines is empty"):
            api.Deblurrer().evaluate(demo_dir, baselines=empty)


@pytest.mark.gpu
def test_a_cuda_tensor_comes_back_on_its_gpu_equal_to_the_numpy_path():
    import torch

    photo = photo_mosaic(300, 500)
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].cuda().float() / 255
    with api.Deblurrer(backend="torch") as deblur:
        y = deblur(x)
        want = deblur(photo)
    assert y.device == x.device and y.dtype == x.dtype and y.shape == x.shape
    assert np.array_equal((y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8), want)


def test_dtk_eval_renders_the_apis_evaluation(demo_dir, tmp_path):
    """`toolkit.evaluate` returns the object `dtk eval --json` writes (same scores, same model)."""
    import toolkit

    evaluation = toolkit.evaluate(demo_dir, model="default", kernels="k7", baselines="prior", ssim=False)
    assert evaluation.model is not None
    assert evaluation.model["backend"] in ("onnxruntime", "torch", "openvino")
    cli = CliRunner().invoke(app, ["eval", str(demo_dir), "--model", "default", "--kernels", "k7",
                                   "--baselines", "prior", "--no-ssim", "--json", str(tmp_path / "e.json")])
    assert cli.exit_code == 0, cli.output
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["summary"] == evaluation.to_json()["summary"] and doc["model"] == evaluation.model


def test_toolkit_bench_returns_the_report_dtk_bench_renders(tiny_model_dir):
    import toolkit
    from bench.harness import BenchConfig
    from bench.suite import BenchRequest

    req = BenchRequest(config=BenchConfig(batches=(1,), iterations=2, warmup_s=0.0, max_extend_s=0.0),
                       models=[tiny_model_dir / "m.onnx"], backends="onnxruntime", quality=False)
    report = toolkit.bench(req)
    rows = report.to_json()["rows"]
    assert [(r["backend"], r["batch"], r["status"]) for r in rows] == [("onnxruntime", 1, "ran")]
