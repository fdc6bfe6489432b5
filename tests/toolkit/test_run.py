"""`dtk run` / run_frames: mirrored names, sizes, resume, clean interruption, refusals, corrupt frames."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from engines.onnxruntime import OrtRunner
from toolkit.cli import app
from toolkit.errors import DtkError
from toolkit.frames import discover_frames, read_frame, write_png_atomic
from toolkit.pipeline.fallback import to_nchw
from toolkit.run import check_output_dir, is_done, output_path_for, run_frames


@pytest.fixture(scope="module")
def onnx_model(tiny_model_dir):
    return tiny_model_dir / "m.onnx"


@pytest.fixture(scope="module")
def runner(onnx_model):
    return OrtRunner(onnx_model, threads=1)


def outputs(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def expected_names(input_dir):
    return sorted(str(f.rel.with_suffix(".png")) for f in discover_frames(input_dir))


class Faulty:
    """Wraps a runner; on call number `at` sets `stop` or raises `exc`."""

    def __init__(self, inner, at, *, stop=None, exc=None):
        self.inner, self.at, self.stop, self.exc, self.calls = inner, at, stop, exc, 0
        self.name = inner.name

    def infer(self, batch):
        self.calls += 1
        if self.calls == self.at:
            if self.stop is not None:
                self.stop.set()
            if self.exc is not None:
                raise self.exc
        return self.inner.infer(batch)

    def describe(self):
        return self.inner.describe()


def test_writes_one_png_per_input_with_mirrored_names(demo_dir, runner, tmp_path):
    out = tmp_path / "out"
    seen = []
    s = run_frames(demo_dir, out, runner, batch=4, progress=lambda d, n: seen.append((d, n)))
    n = len(discover_frames(demo_dir))
    assert outputs(out) == expected_names(demo_dir)
    assert (s.written, s.skipped_done, s.failed, s.interrupted) == (n, 0, [], False)
    assert seen[-1] == (n, n)
    for f in discover_frames(demo_dir):
        y = read_frame(output_path_for(f, out))
        assert y.shape == (256, 448, 3)
    assert s.wall_s > 0 and 0 < s.compute_s <= s.wall_s and s.frames_per_s > 0
    doc = json.loads(json.dumps(s.to_json()))
    assert doc["written"] == n and doc["backend"]["backend"] == "onnxruntime"
    assert set(doc["time_shares"]) == {"data_wait", "compute", "write_wait", "other"}


def test_output_matches_runner_directly(demo_dir, runner, tmp_path):
    frame = discover_frames(demo_dir)[0]
    run_frames(demo_dir, tmp_path / "o", runner, batch=3)
    x = to_nchw([read_frame(frame.path)])  # the pipeline's own conversion
    ref = np.rint(np.clip(runner.infer(x)[0], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(read_frame(output_path_for(frame, tmp_path / "o")), ref)


def test_resume_skips_done_frames_and_redoes_bad_ones(demo_dir, runner, tmp_path):
    out = tmp_path / "out"
    n = run_frames(demo_dir, out, runner, batch=4).written
    again = run_frames(demo_dir, out, runner, batch=4)
    assert (again.written, again.skipped_done) == (0, n)
    frames = discover_frames(demo_dir)
    output_path_for(frames[1], out).unlink()  # missing
    truncated = output_path_for(frames[2], out)
    truncated.write_bytes(truncated.read_bytes()[:500])  # half-written by something else
    wrong = output_path_for(frames[3], out)
    write_png_atomic(wrong, np.zeros((10, 10, 3), np.uint8))  # wrong size
    assert not is_done(truncated, (256, 448)) and not is_done(wrong, (256, 448))
    resumed = run_frames(demo_dir, out, runner, batch=4)
    assert (resumed.written, resumed.skipped_done) == (3, n - 3)
    assert all(is_done(output_path_for(f, out), (256, 448)) for f in frames)
    assert run_frames(demo_dir, out, runner, batch=4, overwrite=True).written == n


def test_stop_event_ends_after_current_batch_with_whole_files(demo_dir, runner, tmp_path):
    out, stop = tmp_path / "out", threading.Event()
    s = run_frames(demo_dir, out, Faulty(runner, 2, stop=stop), batch=3, stop=stop)
    assert s.interrupted and s.written == 6  # batches 1 and 2 finished, nothing after
    assert not list(out.rglob("*.tmp"))
    assert len(outputs(out)) == 6 and all(is_done(p, (256, 448)) for p in out.rglob("*.png"))
    rest = run_frames(demo_dir, out, runner, batch=3)
    assert rest.skipped_done == 6 and outputs(out) == expected_names(demo_dir)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("device lost")])
def test_failure_mid_run_leaves_no_partial_file(demo_dir, runner, tmp_path, exc):
    out = tmp_path / "out"
    faulty = Faulty(runner, 3, exc=exc)
    if isinstance(exc, KeyboardInterrupt):
        s = run_frames(demo_dir, out, faulty, batch=2)
        assert s.interrupted and s.written == 4
    else:
        with pytest.raises(RuntimeError, match="device lost"):
            run_frames(demo_dir, out, faulty, batch=2)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 4 and all(p.suffix == ".png" and is_done(p, (256, 448)) for p in files)


def test_output_inside_or_equal_to_input_is_refused(demo_dir, tmp_path):
    for bad in (demo_dir, demo_dir / "sub", demo_dir.parent):
        with pytest.raises(DtkError):
            check_output_dir(demo_dir, bad)
    check_output_dir(demo_dir, tmp_path / "elsewhere")
    result = CliRunner().invoke(app, ["run", str(demo_dir), "-o", str(demo_dir / "out")])
    assert result.exit_code == 2
    assert "inside INPUT" in result.output and "Traceback" not in result.output
    assert not (demo_dir / "out").exists()


@pytest.fixture
def odd_tree(demo_dir, tmp_path):
    """Two demo sequences, one frame resized to 200x300, one corrupt file."""
    root = tmp_path / "in"
    for seq in sorted(p for p in demo_dir.iterdir() if p.is_dir())[:2]:
        shutil.copytree(seq, root / seq.name)
    first = sorted((root).rglob("*.png"))[0]
    Image.open(first).resize((300, 200), Image.BILINEAR).save(first.with_name("small.png"))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return root


def test_corrupt_frame_is_reported_and_skipped(odd_tree, runner, tmp_path):
    out = tmp_path / "out"
    s = run_frames(odd_tree, out, runner, batch=2)
    assert [p for p, _ in s.failed] == [str(odd_tree / "broken.png")] and s.failed[0][1]
    assert s.written == len(discover_frames(odd_tree)) - 1
    assert not (out / "broken.png").exists()
    with pytest.raises(DtkError, match="broken.png"):
        run_frames(odd_tree, tmp_path / "strict", runner, batch=2, strict=True)


def test_other_sizes_come_back_at_their_own_size(odd_tree, runner, tmp_path):
    small = next(odd_tree.rglob("small.png"))
    rel = small.relative_to(odd_tree)
    run_frames(odd_tree, tmp_path / "a", runner, batch=4)
    assert read_frame(tmp_path / "a" / rel).shape == (200, 300, 3)
    run_frames(odd_tree, tmp_path / "b", runner, batch=4, keep_size=True)
    assert read_frame(tmp_path / "b" / rel).shape == (256, 448, 3)


def test_cli_run_json_summary_and_resume(demo_dir, onnx_model, tmp_path):
    out, js = tmp_path / "out", tmp_path / "s.json"
    args = ["run", str(demo_dir), "-o", str(out), "--model", str(onnx_model), "--backend", "onnxruntime",
            "--batch", "4", "--blur", "k7", "--threads", "1", "--json", str(js)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert doc["written"] == len(discover_frames(demo_dir)) and doc["blur"] == "k7"
    assert outputs(out) == expected_names(demo_dir)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and json.loads(js.read_text())["written"] == 0


def test_cli_torch_backend_from_the_onnx_sibling(demo_dir, onnx_model, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(demo_dir), "-o", str(out), "--model", str(onnx_model),
                                      "--backend", "torch", "--batch", "5", "--channels-last"])
    assert result.exit_code == 0, result.output
    assert outputs(out) == expected_names(demo_dir)


class SigintAt(Faulty):
    """Sends this process SIGINT (a real Ctrl-C) during call number `at`."""

    def infer(self, batch):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner.infer(batch)


def test_sigint_finishes_the_current_batch_then_stops(demo_dir, runner, tmp_path):
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGINT)
    s = run_frames(demo_dir, out, SigintAt(runner, 2), batch=3)
    assert s.interrupted and s.written == 6 and len(outputs(out)) == 6
    assert all(is_done(p, (256, 448)) for p in out.rglob("*.png"))
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_cli_auto_backend_says_which_and_bad_combinations_exit_2(demo_dir, onnx_model, tmp_path):
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "a"), "--model", str(onnx_model),
                              "--batch", "10"])
    assert result.exit_code == 0, result.output
    assert "backend: onnxruntime (fastest available" in result.output  # no GPU here
    result = cli.invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "b"), "--model", str(onnx_model),
                              "--backend", "onnxruntime", "--precision", "bf16"])
    assert result.exit_code == 2 and "bf16" in result.output and "Traceback" not in result.output
    result = cli.invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "c"), "--model", str(onnx_model),
                              "--blur", "k5"])
    assert result.exit_code == 2 and "unknown blur kernel" in result.output


class Sleepy:
    """An identity 'model' that takes `seconds` per batch without using the CPU."""

    name = "sleepy"

    def __init__(self, seconds):
        self.seconds = seconds

    def infer(self, batch):
        time.sleep(self.seconds)
        return batch

    def describe(self):
        return {"backend": self.name}


def test_decoding_and_writing_overlap_compute(demo_dir, tmp_path):
    s = run_frames(demo_dir, tmp_path / "out", Sleepy(0.2), batch=1)  # 10 batches
    assert s.written == 10
    # the next batch was decoded and the previous one written while the runner slept
    assert s.write_s > 0 and s.write_wait_s < 0.5 * s.write_s
    assert s.data_wait_s + s.write_wait_s < 0.25 * s.compute_s
    assert s.shares()["compute"] > 0.7


@pytest.mark.gpu
def test_torch_cuda_run_matches_cpu_run(demo_dir, onnx_model, tmp_path):
    from engines.torch import TorchRunner

    ckpt = onnx_model.with_suffix(".safetensors")
    run_frames(demo_dir, tmp_path / "cpu", TorchRunner(ckpt), batch=4)
    s = run_frames(demo_dir, tmp_path / "gpu", TorchRunner(ckpt, device="cuda"), batch=4)
    assert s.written == len(discover_frames(demo_dir)) and s.backend["device"].startswith("cuda")
    for f in discover_frames(demo_dir):
        a = read_frame(output_path_for(f, tmp_path / "cpu")).astype(int)
        b = read_frame(output_path_for(f, tmp_path / "gpu")).astype(int)
        assert np.abs(a - b).max() <= 2  # TF32/cuDNN vs CPU kernels, DALI vs Pillow resize
