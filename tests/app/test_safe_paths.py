"""Issue 27: nothing dtk writes can destroy a user's file. One test (or more) per rule, through the
real CLI: safe output paths, no adopted outputs, nothing left out silently, gates that fail closed,
numbers checked before anything loads, photos read as a viewer shows them.

The permission cases run `dtk` in a subprocess under `setpriv` with root's DAC override dropped
(the tests run as root here); they skip where that is not possible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from toolkit.app.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def dtk(*args):
    res = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    text = res.output + (res.stderr if res.stderr_bytes is not None else "")
    return res, " ".join(text.replace("│", " ").split())


def refused(res, out, *fragments, code=2):
    assert res.exit_code == code, out
    assert "Traceback" not in out and res.exception is None or isinstance(res.exception, SystemExit), out
    for frag in fragments:
        assert frag in out, out
    return out


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a runner is opened: the refusal must come before the model loads."""
    from engines.spec import RunnerSpec

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(RunnerSpec, "open", boom)


@pytest.fixture
def small(demo_dir, tmp_path) -> Path:
    """2 sequences x 1 real 256x448 frame, a tree the test may change."""
    root = tmp_path / "in"
    for seq in sorted(p for p in demo_dir.iterdir() if p.is_dir())[:2]:
        (root / seq.name).mkdir(parents=True)
        shutil.copy(sorted(seq.glob("*.png"))[0], root / seq.name / "00000000.png")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def tiny_run(small, out, tiny_model_dir, *extra):
    return dtk("run", small, "-o", out, "--model", tiny_model_dir / "m.onnx", "--backend", "onnxruntime",
               "--batch", "2", *extra)


# --- permission cases: dtk in a subprocess without root's DAC override --------------------------------

def _can_drop_dac() -> str | None:
    if shutil.which("setpriv") is None:
        return "setpriv not installed"
    if os.geteuid() != 0:
        return None  # already unprivileged: permissions apply as they are
    probe = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "true"],
                           capture_output=True)
    return None if probe.returncode == 0 else "setpriv cannot drop capabilities here"


def dtk_unprivileged(*args) -> tuple[int, str]:
    reason = _can_drop_dac()
    if reason:
        pytest.skip(reason)
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    proc = subprocess.run([*prefix, sys.executable, "-m", "toolkit.app.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "COLUMNS": "400", "PYTHONPATH": str(ROOT)})
    return proc.returncode, " ".join((proc.stdout + proc.stderr).replace("│", " ").split())


# --- rule 1: never write over an input ---------------------------------------------------------------

def test_run_json_over_an_input_frame_is_refused(small, tmp_path, no_model_load):
    frame = small / sorted(p.name for p in small.iterdir())[0] / "00000000.png"
    before = snapshot(small)
    res, out = dtk("run", small, "-o", tmp_path / "o1", "--json", frame)
    refused(res, out, "--json", "input")
    assert snapshot(small) == before and not (tmp_path / "o1").exists()


def test_quantize_output_into_the_calibration_frames_is_refused(small):
    frame = next(small.rglob("*.png"))
    before = snapshot(small)
    res, out = dtk("quantize", "--calib", small, "-o", frame, "--overwrite")
    refused(res, out, "-o", "input")
    assert snapshot(small) == before


def test_export_over_its_own_checkpoint_is_refused(tiny_model_dir, tmp_path):
    ckpt = tmp_path / "m.safetensors"
    shutil.copy(tiny_model_dir / "m.safetensors", ckpt)
    shutil.copy(tiny_model_dir / "m.json", tmp_path / "m.json")
    before = ckpt.read_bytes()
    res, out = dtk("export", ckpt, "-o", ckpt, "--overwrite")
    refused(res, out, "input")
    assert ckpt.read_bytes() == before


# --- rule 2: never follow a link out of OUTPUT --------------------------------------------------------

@pytest.mark.parametrize("overwrite", [False, True])
def test_output_subfolder_linked_into_input_is_refused(small, tmp_path, tiny_model_dir, overwrite,
                                                       no_model_load):
    out = tmp_path / "out"
    out.mkdir()
    seq = sorted(p.name for p in small.iterdir())[0]
    (out / seq).symlink_to(small / seq)
    before = snapshot(small)
    res, text = tiny_run(small, out, tiny_model_dir, *(["--overwrite"] if overwrite else []))
    refused(res, text, "symlink", "leading out of it")
    assert snapshot(small) == before


def test_input_holding_a_link_to_output_does_not_deblur_outputs(small, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    (small / "outlink").symlink_to(out)  # dangling until the first run makes OUTPUT
    res, text = tiny_run(small, out, tiny_model_dir)
    assert res.exit_code == 0, text
    written = snapshot(out)
    res, text = tiny_run(small, out, tiny_model_dir)
    refused(res, text, "inside OUTPUT", "symlink")
    assert snapshot(out) == written and not (out / "outlink").exists()


def test_lock_symlinked_to_a_file_is_not_followed_or_truncated(small, tmp_path, tiny_model_dir,
                                                               no_model_load):
    victim = tmp_path / "thesis.txt"
    victim.write_text("my only copy\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".dtk-run.lock").symlink_to(victim)
    res, text = tiny_run(small, out, tiny_model_dir)
    refused(res, text, ".dtk-run.lock", "symlink")
    assert victim.read_text() == "my only copy\n"


@pytest.mark.parametrize("name", [".dtk-run.json", ".dtk-run.lock"])
@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink"])
def test_odd_manifest_or_lock_is_refused_at_once(small, tmp_path, tiny_model_dir, name, kind, no_model_load):
    out = tmp_path / "out"
    out.mkdir()
    target = out / name
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dir":
        target.mkdir()
    else:
        (tmp_path / "elsewhere.json").write_text("{}")
        target.symlink_to(tmp_path / "elsewhere.json")
    res, text = tiny_run(small, out, tiny_model_dir, "--overwrite")
    refused(res, text, name)
    assert not any(out.rglob("*.png"))


# --- rule 3: an existing file needs --overwrite; folders, read-only and missing paths up front -------

def test_quantize_refuses_an_existing_output_without_overwrite(small, tmp_path):
    q = tmp_path / "q.onnx"
    q.write_bytes(b"precious")
    res, out = dtk("quantize", "--calib", small, "-o", q)
    refused(res, out, "already exists", "--overwrite")
    assert q.read_bytes() == b"precious"


@pytest.mark.parametrize("argv", [
    ["doctor", "--json", "{d}"],
    ["eval", "{small}", "--baselines", "none", "--json", "{d}"],
    ["eval", "{small}", "--baselines", "none", "--csv", "{d}"],
    ["eval", "{small}", "--baselines", "none", "--plot", "{d}"],
    ["bench", "--json", "{d}"],
    ["bench", "--csv", "{d}"],
    ["bench", "--plot", "{d}"],
    ["bench", "--export-times", "{d}"],
    ["data", "demo", "{f}"],
])
def test_a_report_path_that_is_a_folder_is_refused_before_work(small, tmp_path, argv, monkeypatch):
    import bench.suite
    import toolkit.app.evaluate

    def no_work(*_a, **_k):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(bench.suite, "run_bench", no_work)
    monkeypatch.setattr("toolkit.app.cli.run_bench", no_work)
    monkeypatch.setattr(toolkit.app.evaluate, "evaluate_tree", no_work)
    monkeypatch.setattr("toolkit.app.cli.collect", no_work)
    d = tmp_path / "a-folder"
    d.mkdir()
    f = tmp_path / "a-file"
    f.write_text("x")
    res, out = dtk(*[a.format(d=d, f=f, small=small) for a in argv])
    refused(res, out, "folder")
    assert f.read_text() == "x"


def test_read_only_output_is_refused_before_the_model_loads(small, tmp_path, tiny_model_dir):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, text = dtk_unprivileged("run", small, "-o", out, "--model", tiny_model_dir / "m.onnx",
                                      "--backend", "onnxruntime")
    finally:
        out.chmod(0o755)
    assert code == 2, text
    assert "not writable" in text and "Traceback" not in text
    assert "backend:" not in text  # refused before the model loaded


def test_report_in_a_read_only_folder_is_refused_before_work(small, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, text = dtk_unprivileged("eval", small, "--baselines", "none", "--no-ssim", "--kernels", "k7",
                                      "--json", ro / "eval.json")
    finally:
        ro.chmod(0o755)
    assert code == 2, text
    assert "not writable" in text and "Traceback" not in text and "blurred" not in text


# --- rule 4: no adopted outputs -------------------------------------------------------------------

def test_pngs_no_manifest_vouches_for_are_not_taken_as_done(small, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    res, text = tiny_run(small, out, tiny_model_dir)
    assert res.exit_code == 0, text
    (out / ".dtk-run.json").unlink()
    made = snapshot(out)
    res, text = tiny_run(small, out, tiny_model_dir, "--resize", "--keep-size", "--blur", "k7")
    refused(res, text, "no run manifest", "--overwrite")
    assert snapshot(out) == made and not (out / ".dtk-run.json").exists()
    # cp -r of another run's PNGs (hidden manifest left behind) into a new OUTPUT: the same
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    res, text = tiny_run(small, copy, tiny_model_dir)
    refused(res, text, "no run manifest")
    # --overwrite redoes them, and the manifest then vouches for them
    res, text = tiny_run(small, copy, tiny_model_dir, "--overwrite")
    assert res.exit_code == 0 and "2 written" in text, text
    assert json.loads((copy / ".dtk-run.json").read_text())["settings"]["backend"] == "onnxruntime"


# --- rule 5: nothing left out silently ---------------------------------------------------------------

def test_unreadable_sequence_folder_is_listed_and_exit_3(small, tmp_path, tiny_model_dir):
    locked = sorted(p for p in small.iterdir())[1]
    locked.chmod(0o000)
    try:
        code, text = dtk_unprivileged("run", small, "-o", tmp_path / "out", "--model",
                                      tiny_model_dir / "m.onnx", "--backend", "onnxruntime")
    finally:
        locked.chmod(0o755)
    assert code == 3, text
    assert locked.name in text and "permission denied" in text and "Traceback" not in text


def test_chmod_000_frame_says_permission_denied(small, tmp_path, tiny_model_dir):
    frame = next(small.rglob("*.png"))
    frame.chmod(0o000)
    try:
        code, text = dtk_unprivileged("run", small, "-o", tmp_path / "out", "--model",
                                      tiny_model_dir / "m.onnx", "--backend", "onnxruntime")
    finally:
        frame.chmod(0o644)
    assert code == 3, text
    assert "permission denied" in text and "corrupt" not in text


def test_eval_that_scores_no_frame_exits_non_zero_with_the_reason(small):
    res, out = dtk("eval", small, "--baselines", "none", "--no-ssim", "--kernels", "k7", "--max-pixels", "10")
    refused(res, out, "no frame was scored", "--max-pixels", code=3)


def test_eval_with_no_kernel_is_refused(small):
    res, out = dtk("eval", small, "--baselines", "none", "--kernels", ",")
    refused(res, out, "--kernels")


# --- rule 6: every gate fails closed ---------------------------------------------------------------

def _bench_report(path: Path, variant: str, images_per_s: float = 100.0) -> Path:
    from bench.harness import SCHEMA

    lat = {"count": 10, "min": 9.0, "mean": 10.0, "p50": 10.0, "p90": 11.0, "p95": 11.0, "p99": 12.0,
           "max": 13.0, "std": 0.1}
    row = {"model": "m", "backend": "onnxruntime", "variant": variant, "batch": 1, "mode": "compute",
           "status": "ran", "images_per_s": images_per_s, "latency_ms": lat,
           "quality": {"psnr_db": {"k7": 30.0, "k11": 28.0}}}
    path.write_text(json.dumps({"schema": SCHEMA, "rows": [row], "environment": {}}))
    return path


@pytest.mark.parametrize("gate", [["--max-slowdown", "5%"], ["--max-psnr-drop", "0.2"]])
def test_bench_compare_with_nothing_matched_fails(tmp_path, gate):
    a = _bench_report(tmp_path / "a.json", "cpu-fp32")
    b = _bench_report(tmp_path / "b.json", "other")
    res, out = dtk("bench", "compare", a, b, *gate)
    assert res.exit_code != 0, out
    assert "nothing to compare" in out and "Traceback" not in out


def test_bench_compare_zero_images_per_s_is_a_regression(tmp_path):
    a = _bench_report(tmp_path / "a.json", "cpu-fp32")
    b = _bench_report(tmp_path / "b.json", "cpu-fp32", images_per_s=0.0)
    res, out = dtk("bench", "compare", a, b, "--max-slowdown", "5%")
    assert res.exit_code == 1, out
    assert "regression" in out


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
@pytest.mark.parametrize("argv", [
    ["compare", "--atol", "{v}"],
    ["compare", "--rtol", "{v}"],
    ["bench", "compare", "{a}", "{a}", "--max-psnr-drop", "{v}"],
    ["bench", "compare", "{a}", "{a}", "--max-slowdown", "{v}"],
    ["quantize", "--calib", "{small}", "-o", "{q}", "--max-drop", "{v}"],
    ["bench", "--min-psnr", "{v}"],
    ["bench", "--cv-threshold", "{v}"],
    ["bench", "--ceiling", "{v}"],
])
def test_tolerances_nan_inf_negative_refused_before_work(small, tmp_path, argv, value, no_model_load,
                                                         monkeypatch):
    def no_work(*_a, **_k):
        raise AssertionError("the work started before the option was checked")

    monkeypatch.setattr("toolkit.app.cli.run_bench", no_work)
    monkeypatch.setattr("toolkit.app.cli.compare_runners", no_work)
    monkeypatch.setattr("toolkit.app.cli.quantize_model", no_work)
    a = _bench_report(tmp_path / "a.json", "cpu-fp32")
    args = [x.format(v=value, a=a, small=small, q=tmp_path / "q.onnx") for x in argv]
    res, out = dtk(*args)
    refused(res, out, argv[-2] if argv[-1] == "{v}" else argv[-1])


# --- rule 7: every numeric option finite and in range, before the model loads ----------------------

@pytest.mark.parametrize("argv,flag", [
    (["bench", "--duration", "inf"], "--duration"),
    (["bench", "--duration", "nan"], "--duration"),
    (["bench", "--warmup", "nan"], "--warmup"),
    (["bench", "--height", "0"], "--height"),
    (["bench", "--iterations", "0"], "--iterations"),
    (["export", "{ckpt}", "-o", "{tmp}/m.onnx", "--height", "0"], "--height"),
    (["export", "{ckpt}", "-o", "{tmp}/m.onnx", "--opset", "99"], "--opset"),
    (["train", "{small}", "-o", "{tmp}/run", "--lr", "nan"], "--lr"),
    (["train", "{small}", "-o", "{tmp}/run", "--batch", "0"], "--batch"),
    (["train", "{small}", "-o", "{tmp}/run", "--crop", "3"], "--crop"),
    (["train", "{small}", "-o", "{tmp}/run", "--val-fraction", "1.5"], "--val-fraction"),
    (["train", "{small}", "-o", "{tmp}/run", "--epochs", "0"], "--epochs"),
    (["run", "{small}", "-o", "{tmp}/out", "--pipeline", "bogus"], "--pipeline"),
    (["run", "{small}", "-o", "{tmp}/out", "--gpus-per-worker", "nan"], "--gpus-per-worker"),
    (["build-engine", "{tmp}/m.onnx", "-o", "{tmp}/e.engine", "--workspace", "nan"], "--workspace"),
    (["build-engine", "{tmp}/m.onnx", "-o", "{tmp}/e.engine", "--min-batch", "8", "--max-batch", "4"],
     "--min-batch"),
    (["compare", "--quantile", "nan"], "--quantile"),
    (["data", "demo", "{tmp}/demo", "--frames", "0"], "--frames"),
])
def test_numeric_options_checked_before_anything_loads(small, tmp_path, tiny_model_dir, argv, flag,
                                                       no_model_load, monkeypatch):
    import training.train

    def no_work(*_a, **_k):
        raise AssertionError("the work started before the option was checked")

    monkeypatch.setattr("toolkit.app.cli.run_bench", no_work)
    monkeypatch.setattr(training.train, "train", no_work)
    args = [x.format(small=small, tmp=tmp_path, ckpt=tiny_model_dir / "m.safetensors") for x in argv]
    res, out = dtk(*args)
    refused(res, out, flag)
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "run").exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "demo").exists()


def test_train_into_an_existing_run_needs_overwrite(small, tmp_path, monkeypatch):
    import training.train

    monkeypatch.setattr(training.train, "train", lambda *_a, **_k: {})
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.safetensors").write_bytes(b"weeks of training")
    res, out = dtk("train", small, "-o", run)
    refused(res, out, "already holds a training run", "--overwrite")
    assert (run / "best.safetensors").read_bytes() == b"weeks of training"


def test_bench_garbage_model_is_exit_2(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("garbage")
    res, out = dtk("bench", "--model", garbage, "--batch", "1", "--iterations", "1", "--warmup", "0",
                   "--no-quality", "--backend", "onnxruntime")
    refused(res, out, "garbage.onnx")


# --- rule 8: photos as a viewer shows them -------------------------------------------------------

def test_run_applies_exif_orientation(astronaut, tmp_path, tiny_model_dir):
    """A phone JPEG stored 256 wide x 448 tall, tagged "rotate 90 CW" (6): shown 448 wide x 256 tall."""
    src = tmp_path / "in"
    src.mkdir()
    stored = np.ascontiguousarray(np.rot90(astronaut, 1))  # what the camera stored (448 tall)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(src / "phone.jpg", quality=95, exif=exif.tobytes())
    out = tmp_path / "out"
    res, text = dtk("run", src, "-o", out, "--model", tiny_model_dir / "m.onnx", "--backend", "onnxruntime")
    assert res.exit_code == 0, text
    with Image.open(out / "phone.png") as im:
        assert im.size == (448, 256)  # W x H as shown, not sideways
