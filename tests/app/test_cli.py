import json
import subprocess
import sys

from typer.testing import CliRunner

from toolkit.app.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments):
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    for frag in fragments:
        assert frag in output


def test_help_lists_every_planned_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for cmd in ("doctor", "data", "eval", "train", "export", "run", "bench", "build-engine", "quantize"):
        assert cmd in result.output


def test_import_needs_no_gpu_library():
    code = ("import sys, toolkit, engines, bench, training, toolkit.app.cli; "
            "bad = [m for m in ('tensorrt', 'nvidia.dali', 'ray', 'pycuda', 'cupy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_import_loads_no_torch_or_runtime():
    """`dtk --help` stays fast: the CLI and every engine module it imports load torch, ONNX Runtime,
    OpenVINO, Polygraphy and PyAV only when a command needs them (the evidence names live in torch-free
    toolkit.core.evidence for that reason)."""
    code = ("import sys, toolkit.app.cli, engines.tiled, engines.onnxruntime, engines.openvino, "
            "engines.tensorrt.build, engines.tensorrt.runtime, toolkit.app.video_run; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'polygraphy', 'av') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_doctor_json():
    result = invoke("doctor", "--json", "-")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    for key in ("python", "torch", "onnxruntime", "openvino", "ov_devices", "tensorrt", "dali", "gpu",
                "default_backend"):
        assert key in info
    if info["openvino"]:
        assert "CPU" in info["ov_devices"]
    text = invoke("doctor").stdout
    assert "OpenVINO" in text and "OpenVINO devices" in text
    assert info["default_backend"] in ("tensorrt", "onnxruntime", "openvino", "torch")


def test_demo_and_eval_blurred_baseline(tmp_path):
    demo = tmp_path / "demo"
    result = invoke("data", "demo", demo, "--frames", "1")
    assert result.exit_code == 0, result.output
    pngs = sorted(demo.rglob("*.png"))
    assert len(pngs) == 5
    result = invoke("eval", demo, "--kernels", "k7,k11", "--json", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    assert "k7" in result.output and "blurred" in result.output
    report = json.loads((tmp_path / "e.json").read_text())
    rows = {(r["kernel"], r["method"]): r for r in report["summary"]}
    assert rows[("k7", "blurred")]["frames"] == 5
    # stronger blur, lower PSNR: a property of real photos
    assert rows[("k11", "blurred")]["mean_psnr"] < rows[("k7", "blurred")]["mean_psnr"] < 60
    # frames x kernels x (blurred, prior, wiener: the default baselines)
    assert len(report["frames"]) == 5 * 2 * 3
    assert rows[("k7", "wiener")]["gain_db"] > 2.0
    assert rows[("k7", "prior")]["gain_db"] > 2.0


def test_eval_missing_dir_is_a_clean_error(tmp_path):
    assert_user_error(invoke("eval", tmp_path / "nope"), "not found")


def test_eval_bad_kernel_is_a_clean_error(demo_dir):
    assert_user_error(invoke("eval", demo_dir, "--kernels", "k5"), "unknown blur kernel")


def test_eval_corrupt_frame_skipped_or_strict(tmp_path, astronaut):
    from toolkit.core.frames import write_png_atomic

    write_png_atomic(tmp_path / "s" / "1.png", astronaut)
    (tmp_path / "s" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = invoke("eval", tmp_path, "--kernels", "k7", "--no-ssim", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["skipped"]) == 1 and report["skipped"][0]["path"].endswith("2.png")
    assert_user_error(invoke("eval", tmp_path, "--kernels", "k7", "--strict"), "2.png")


def test_quantize_without_calib_is_a_usage_error():
    result = invoke("quantize", "-o", "x.onnx")
    assert result.exit_code == 2
    assert "--calib" in result.output
