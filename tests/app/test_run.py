"""`dtk run` / run_frames: mirrored names, sizes, resume, clean interruption, refusals, corrupt frames."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from engines.base import Runner
from engines.machine import collect
from engines.onnxruntime import OrtRunner
from engines.select import default_backend
from engines.spec import RunnerSpec
from toolkit.app.cli import app
from toolkit.app.outputs import check_output_dir, is_done, output_path_for
from toolkit.app.request import RunRequest
from toolkit.app.run import run_frames
from toolkit.core.convert import to_nchw
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, read_frame, write_png_atomic


@pytest.fixture(scope="module")
def runner(onnx_model):
    return OrtRunner(onnx_model, threads=1)


def outputs(root):
    """Every file under root but the run's own lock and manifest."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name not in (".dtk-run.lock", ".dtk-run.json"))


def expected_names(input_dir):
    return sorted(str(f.rel.with_suffix(".png")) for f in discover_frames(input_dir))


class Faulty(Runner):
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

    def close(self):
        pass


def test_writes_one_png_per_input_with_mirrored_names(demo_dir, runner, tmp_path):
    out = tmp_path / "out"
    seen = []
    s = run_frames(demo_dir, out, runner, RunRequest(batch=4), progress=lambda d, n: seen.append((d, n)))
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
    run_frames(demo_dir, tmp_path / "o", runner, RunRequest(batch=3))
    x = to_nchw([read_frame(frame.path)])  # the pipeline's own conversion
    ref = np.rint(np.clip(runner.infer(x)[0], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(read_frame(output_path_for(frame, tmp_path / "o")), ref)


def test_resume_skips_done_frames_and_redoes_bad_ones(demo_dir, runner, tmp_path):
    out = tmp_path / "out"
    n = run_frames(demo_dir, out, runner, RunRequest(batch=4)).written
    again = run_frames(demo_dir, out, runner, RunRequest(batch=4))
    assert (again.written, again.skipped_done) == (0, n)
    frames = discover_frames(demo_dir)
    output_path_for(frames[1], out).unlink()  # missing
    truncated = output_path_for(frames[2], out)
    truncated.write_bytes(truncated.read_bytes()[:500])  # half-written by something else
    wrong = output_path_for(frames[3], out)
    write_png_atomic(wrong, np.zeros((10, 10, 3), np.uint8))  # wrong size
    assert not is_done(truncated, (256, 448)) and not is_done(wrong, (256, 448))
    resumed = run_frames(demo_dir, out, runner, RunRequest(batch=4))
    assert (resumed.written, resumed.skipped_done) == (3, n - 3)
    assert all(is_done(output_path_for(f, out), (256, 448)) for f in frames)
    assert run_frames(demo_dir, out, runner, RunRequest(batch=4, overwrite=True)).written == n


def test_planning_reads_an_input_only_where_its_output_exists(demo_dir, tmp_path, monkeypatch):
    """A fresh run plans without opening its inputs (a PNG's EXIF check decodes the whole frame:
    1 s for 24 1080p frames); a resume still checks each existing output against its input."""
    import toolkit.app.outputs as outputs_mod

    frames = discover_frames(demo_dir)
    opened: list[Path] = []
    real = outputs_mod.image_size
    monkeypatch.setattr(outputs_mod, "image_size", lambda p: opened.append(Path(p)) or real(p))
    out = tmp_path / "out"
    assert outputs_mod.split_done(frames, out) == (frames, []) and opened == []
    write_png_atomic(output_path_for(frames[0], out), np.asarray(Image.open(frames[0].path).convert("RGB")))
    assert outputs_mod.split_done(frames, out) == (frames[1:], frames[:1]) and opened == [frames[0].path]


def test_stop_event_ends_after_current_batch_with_whole_files(demo_dir, runner, tmp_path):
    out, stop = tmp_path / "out", threading.Event()
    s = run_frames(demo_dir, out, Faulty(runner, 2, stop=stop), RunRequest(batch=3), stop=stop)
    assert s.interrupted and s.written == 6  # batches 1 and 2 finished, nothing after
    assert not list(out.rglob("*.tmp"))
    assert len(outputs(out)) == 6 and all(is_done(p, (256, 448)) for p in out.rglob("*.png"))
    rest = run_frames(demo_dir, out, runner, RunRequest(batch=3))
    assert rest.skipped_done == 6 and outputs(out) == expected_names(demo_dir)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("device lost")])
def test_failure_mid_run_leaves_no_partial_file(demo_dir, runner, tmp_path, exc):
    out = tmp_path / "out"
    faulty = Faulty(runner, 3, exc=exc)
    if isinstance(exc, KeyboardInterrupt):
        s = run_frames(demo_dir, out, faulty, RunRequest(batch=2))
        assert s.interrupted and s.written == 4
    else:
        with pytest.raises(RuntimeError, match="device lost"):
            run_frames(demo_dir, out, faulty, RunRequest(batch=2))
    files = [out / p for p in outputs(out)]
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
    s = run_frames(odd_tree, out, runner, RunRequest(batch=2))
    assert [p for p, _ in s.failed] == [str(odd_tree / "broken.png")] and s.failed[0][1]
    assert s.written == len(discover_frames(odd_tree)) - 1
    assert not (out / "broken.png").exists()
    with pytest.raises(DtkError, match="broken.png"):
        run_frames(odd_tree, tmp_path / "strict", runner, RunRequest(batch=2, strict=True))


def test_other_sizes_come_back_at_their_own_size(odd_tree, runner, tmp_path):
    small = next(odd_tree.rglob("small.png"))
    rel = small.relative_to(odd_tree)
    run_frames(odd_tree, tmp_path / "a", runner, RunRequest(batch=4))
    assert read_frame(tmp_path / "a" / rel).shape == (200, 300, 3)
    run_frames(odd_tree, tmp_path / "b", runner, RunRequest(batch=4, resize=True, keep_size=True))
    assert read_frame(tmp_path / "b" / rel).shape == (256, 448, 3)
    run_frames(odd_tree, tmp_path / "c", runner, RunRequest(batch=4, resize=True))
    assert read_frame(tmp_path / "c" / rel).shape == (200, 300, 3)
    with pytest.raises(DtkError, match="--keep-size"):
        run_frames(odd_tree, tmp_path / "d", runner, RunRequest(batch=4, keep_size=True))


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
    s = run_frames(demo_dir, out, SigintAt(runner, 2), RunRequest(batch=3))
    assert s.interrupted and s.written == 6 and len(outputs(out)) == 6
    assert all(is_done(p, (256, 448)) for p in out.rglob("*.png"))
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_cli_auto_backend_says_which_and_bad_combinations_exit_2(demo_dir, onnx_model, tmp_path):
    cli = CliRunner()
    result = cli.invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "a"), "--model", str(onnx_model),
                              "--batch", "10"])
    assert result.exit_code == 0, result.output
    expected = default_backend(collect())  # no GPU here: openvino when installed, else onnxruntime
    assert f"backend: {expected} (fastest available" in result.output
    result = cli.invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "b"), "--model", str(onnx_model),
                              "--backend", "onnxruntime", "--precision", "bf16"])
    assert result.exit_code == 2 and "bf16" in result.output and "Traceback" not in result.output
    result = cli.invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "c"), "--model", str(onnx_model),
                              "--blur", "k5"])
    assert result.exit_code == 2 and "unknown blur kernel" in result.output


class Sleepy(Runner):
    """An identity 'model' that takes `seconds` per batch without using the CPU."""

    name = "sleepy"

    def __init__(self, seconds):
        self.seconds = seconds

    def infer(self, batch):
        time.sleep(self.seconds)
        return batch

    def describe(self):
        return {"backend": self.name}

    def close(self):
        pass


def test_decoding_and_writing_overlap_compute(demo_dir, tmp_path):
    s = run_frames(demo_dir, tmp_path / "out", Sleepy(0.2), RunRequest(batch=1))  # 10 batches
    assert s.written == 10
    # the next batch was decoded and the previous one written while the runner slept
    assert s.write_s > 0 and s.write_wait_s < 0.5 * s.write_s
    assert s.data_wait_s + s.write_wait_s < 0.25 * s.compute_s
    assert s.shares()["compute"] > 0.7


@pytest.mark.gpu
def test_torch_cuda_run_matches_cpu_run(demo_dir, onnx_model, tmp_path):
    from engines.torch import TorchRunner

    ckpt = onnx_model.with_suffix(".safetensors")
    run_frames(demo_dir, tmp_path / "cpu", TorchRunner(ckpt), RunRequest(batch=4))
    s = run_frames(demo_dir, tmp_path / "gpu", TorchRunner(ckpt, device="cuda"), RunRequest(batch=4))
    assert s.written == len(discover_frames(demo_dir)) and s.backend["device"].startswith("cuda")
    for f in discover_frames(demo_dir):
        a = read_frame(output_path_for(f, tmp_path / "cpu")).astype(int)
        b = read_frame(output_path_for(f, tmp_path / "gpu")).astype(int)
        assert np.abs(a - b).max() <= 2  # TF32/cuDNN vs CPU kernels, DALI vs Pillow resize


# ---- issue 18: the shipped model and demo frames through the real CLI, careless or hostile use ----

def cli_run(input_dir, out, *extra):
    """`dtk run INPUT -o OUT ...` on the shipped model; .said is the output with Rich's wrapping undone."""
    result = CliRunner().invoke(app, ["run", str(input_dir), "-o", str(out), "--threads", "1", *extra])
    result.said = " ".join(result.output.split())
    return result


def manifest(out):
    return json.loads((out / ".dtk-run.json").read_text())


def test_rerun_with_other_settings_is_refused_unless_overwrite(demo_dir, onnx_model, tmp_path):
    out = tmp_path / "out"
    n = len(discover_frames(demo_dir))
    result = cli_run(demo_dir, out, "--blur", "k7")
    assert result.exit_code == 0, result.output
    recorded = manifest(out)["settings"]
    assert (recorded["blur"], recorded["backend"], recorded["precision"], recorded["keep_size"]) == \
        ("k7", default_backend(collect()), "fp32", False)
    assert len(recorded["model_sha256"]) == 64 and recorded["model"].endswith("dtk-unet.onnx")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert (recorded["mode"], recorded["tile_overlap"]) == ("native", 64)
    for extra, named in ((["--blur", "k11"], "blur"), (["--blur", "k7", "--resize"], "mode"),
                         (["--blur", "k7", "--resize", "--keep-size"], "keep_size"),
                         (["--blur", "k7", "--tile-overlap", "32"], "tile_overlap"),
                         (["--blur", "k7", "--model", str(onnx_model)], "model_sha256"),
                         ([], "blur")):
        result = cli_run(demo_dir, out, *extra)
        assert result.exit_code == 2, result.output
        assert f"({named}: " in result.said and "rerun with --overwrite" in result.said
        assert "Traceback" not in result.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before  # nothing touched
    result = cli_run(demo_dir, out, "--blur", "k7")  # same settings: resumes
    assert result.exit_code == 0 and f"{n} already done" in result.said
    result = cli_run(demo_dir, out, "--blur", "k11", "--overwrite", "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == n and manifest(out)["settings"]["blur"] == "k11"


def test_interrupted_overwrite_is_finished_by_a_plain_rerun(demo_dir, runner, onnx_model, tmp_path):
    from toolkit.app.outputs import RunSettings

    out, n = tmp_path / "out", len(discover_frames(demo_dir))
    k7 = RunSettings.for_spec(RunnerSpec("onnxruntime", onnx_model), RunRequest(blur="k7"))
    k11 = RunSettings.for_spec(RunnerSpec("onnxruntime", onnx_model), RunRequest(blur="k11"))
    assert run_frames(demo_dir, out, runner, RunRequest(batch=4, blur="k7"), settings=k7).written == n
    with pytest.raises(DtkError, match="blur"):
        run_frames(demo_dir, out, runner, RunRequest(batch=4, blur="k11"), settings=k11)
    stop = threading.Event()
    s = run_frames(demo_dir, out, Faulty(runner, 1, stop=stop),
                   RunRequest(batch=4, blur="k11", overwrite=True), settings=k11, stop=stop)
    assert s.interrupted and s.written == 4 and manifest(out)["redo_all"]
    again = run_frames(demo_dir, out, runner, RunRequest(batch=4, blur="k11"), settings=k11)
    assert (again.written, again.skipped_done) == (n, 0)  # the k7 frames left are redone too
    assert not manifest(out)["redo_all"]
    assert run_frames(demo_dir, out, runner, RunRequest(batch=4, blur="k11"), settings=k11).skipped_done == n


def test_second_run_into_the_same_output_is_refused(demo_dir, tmp_path):
    from toolkit.app.outputs import output_lock

    out = tmp_path / "out"
    with output_lock(out):  # another run holds OUTPUT
        result = cli_run(demo_dir, out)
    assert result.exit_code == 2 and "another dtk run is writing into" in result.said
    assert not list(out.rglob("*.png"))
    assert cli_run(demo_dir, out).exit_code == 0  # released


def _onnx_model(path, op, **attrs):
    """A one-node ONNX model over N x 3 x 256 x 448: NaN output (Mul by NaN) or half size (MaxPool)."""
    import onnx
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 256, 448])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
    inits = []
    if op == "Mul":
        inits = [helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")])]
        node = helper.make_node("Mul", ["input", "nan"], ["output"])
    else:
        node = helper.make_node(op, ["input"], ["output"], **attrs)
    graph = helper.make_graph([node], "bad", [inp], [out], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.mark.parametrize(("op", "attrs", "reason"), [
    ("Mul", {}, "non-finite"),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, "(10, 3, 128, 224)"),
])
def test_bad_model_output_is_not_written(demo_dir, tmp_path, op, attrs, reason):
    model = _onnx_model(tmp_path / f"{op}.onnx", op, **attrs)
    out = tmp_path / "out"
    result = cli_run(demo_dir, out, "--model", str(model), "--batch", "10",
                     "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 3, result.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["written"] == 0 and doc["failed"] == len(discover_frames(demo_dir))
    assert all(reason in f["reason"] for f in doc["failures"])
    assert "not written" in result.output and "Traceback" not in result.output
    assert not list(out.rglob("*.png"))


def test_exit_codes_0_2_3(odd_tree, tmp_path):
    result = cli_run(odd_tree, tmp_path / "a")
    assert result.exit_code == 3 and "broken.png" in result.output  # finished, one frame skipped
    result = cli_run(odd_tree, tmp_path / "b", "--strict")
    assert result.exit_code == 2 and "broken.png" in result.output
    (odd_tree / "broken.png").unlink()
    assert cli_run(odd_tree, tmp_path / "a").exit_code == 0


def _bomb_png(path, width=20000, height=20000):
    """A valid, tiny PNG whose header claims width x height RGB pixels (never decoded by dtk)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_frame_over_the_pixel_limit_is_an_unreadable_frame(demo_dir, tmp_path):
    root = tmp_path / "in"
    shutil.copytree(demo_dir, root)
    bomb = _bomb_png(root / "astronaut" / "bomb.png")  # Pillow: DecompressionBombError
    big = _bomb_png(root / "big.png", 12000, 10000)  # 120 Mpx: over dtk's limit, under Pillow's error
    n = len(discover_frames(root))
    result = cli_run(root, tmp_path / "out", "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 3, result.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["written"] == n - 2 and {f["path"] for f in doc["failures"]} == {str(bomb), str(big)}
    reasons = {f["path"]: f["reason"] for f in doc["failures"]}
    assert "over the limit of 100,000,000 (--max-pixels)" in reasons[str(big)]
    assert "pixels" in reasons[str(bomb)] and "Traceback" not in result.output
    result = cli_run(root, tmp_path / "strict", "--strict")
    assert result.exit_code == 2 and "bomb.png" in result.output and "Traceback" not in result.output
    result = cli_run(root, tmp_path / "small", "--max-pixels", "100000", "--json", str(tmp_path / "t.json"))
    assert result.exit_code == 3 and json.loads((tmp_path / "t.json").read_text())["written"] == 0  # 256x448
    result = CliRunner().invoke(app, ["eval", str(root), "--baselines", "none", "--no-ssim", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert {s["path"] for s in json.loads(result.stdout)["skipped"]} == {str(bomb), str(big)}


def test_threads_beyond_the_machine_are_refused_before_loading(demo_dir, tmp_path):
    result = cli_run(demo_dir, tmp_path / "out", "--threads", "10000",
                     "--model", str(tmp_path / "nosuch.onnx"))
    assert result.exit_code == 2 and "--threads 10000 is more than this machine can use" in result.said
    assert not (tmp_path / "out").exists()
    assert cli_run(demo_dir, tmp_path / "out", "--threads", "0").exit_code == 2


def test_outputs_get_the_umask_mode(demo_dir, tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        assert cli_run(demo_dir, tmp_path / "out").exit_code == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_resume_redoes_a_png_missing_its_last_bytes_and_clears_stale_temp_files(demo_dir, runner, tmp_path):
    out = tmp_path / "out"
    frames = discover_frames(demo_dir)
    run_frames(demo_dir, out, runner, RunRequest(batch=5))
    for cut, frame in zip((1, 4), frames[:2], strict=True):
        p = output_path_for(frame, out)
        p.write_bytes(p.read_bytes()[:-cut])
        assert not is_done(p, (256, 448))
    stale = output_path_for(frames[3], out).with_name(".x.png.0123abcd.tmp")
    stale.write_bytes(b"half a png")
    mine = output_path_for(frames[3], out).with_name(".notes.tmp")  # not dtk's naming: kept
    mine.write_bytes(b"keep")
    s = run_frames(demo_dir, out, runner, RunRequest(batch=5))
    assert (s.written, s.skipped_done) == (2, len(frames) - 2)
    assert not stale.exists() and mine.exists()
    assert all(is_done(output_path_for(f, out), (256, 448)) for f in frames)


def test_symlinked_sequence_folders_are_followed(demo_dir, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(demo_dir / "chelsea", root / "chelsea")
    (root / "astro").symlink_to(demo_dir / "astronaut", target_is_directory=True)
    (root / "chelsea" / "loop").symlink_to(root, target_is_directory=True)  # a loop: entered once
    result = cli_run(root, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert outputs(tmp_path / "out") == sorted(
        [f"astro/{p.name}" for p in (demo_dir / "astronaut").glob("*.png")]
        + [f"chelsea/{p.name}" for p in (demo_dir / "chelsea").glob("*.png")])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_run_loads_the_weights_once(demo_dir, tmp_path, tiny_model_dir, monkeypatch, precision):
    """One read of the safetensors file per `dtk run`, fp16 range guard included (it loaded twice)."""
    import toolkit.core.models.checkpoint as checkpoint

    loads = []
    real = checkpoint._load_tensors
    monkeypatch.setattr(checkpoint, "_load_tensors", lambda path: loads.append(path) or real(path))
    result = CliRunner().invoke(app, ["run", str(demo_dir), "-o", str(tmp_path / "out"), "--model",
                                      str(tiny_model_dir / "m.safetensors"), "--backend", "torch",
                                      "--precision", precision])
    assert result.exit_code == 0, result.output
    assert loads == [tiny_model_dir / "m.safetensors"]
    assert len(list((tmp_path / "out").rglob("*.png"))) == len(discover_frames(demo_dir))


def _tree_with_entries_that_are_no_files(demo_dir, root):
    """One sequence of real frames plus image-named entries that cannot be read as files: a dangling
    symlink, a FIFO, a link to a device and a symlink loop (and a FIFO without an image name, which
    is no frame and is not listed)."""
    shutil.copytree(demo_dir / "astronaut", root / "astronaut")
    seq = root / "astronaut"
    (seq / "gone.png").symlink_to(root / "nowhere.png")
    os.mkfifo(seq / "pipe.png")
    (seq / "null.jpg").symlink_to("/dev/null")
    (seq / "loop.png").symlink_to(seq / "loop.png")
    os.mkfifo(seq / "notes.txt")
    return {str(seq / n) for n in ("gone.png", "pipe.png", "null.jpg", "loop.png")}


def test_image_named_entries_that_are_no_files_are_listed_never_opened(demo_dir, tmp_path):
    """A dangling symlink, a FIFO, a device and a symlink loop named like frames are unreadable
    frames: listed with why, exit 3 (`dtk run`), exit 2 with --strict, skipped and listed by
    `dtk eval`; the FIFO is never opened (the run would hang on it)."""
    root = tmp_path / "in"
    odd = _tree_with_entries_that_are_no_files(demo_dir, root)
    result = cli_run(root, tmp_path / "out", "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 3, result.output
    doc = json.loads((tmp_path / "s.json").read_text())
    reasons = {f["path"]: f["reason"] for f in doc["failures"]}
    assert set(reasons) == odd and doc["written"] == len(list(demo_dir.glob("astronaut/*.png")))
    assert "dangling" in reasons[str(root / "astronaut" / "gone.png")]
    assert "FIFO" in reasons[str(root / "astronaut" / "pipe.png")]
    assert "device" in reasons[str(root / "astronaut" / "null.jpg")]
    result = cli_run(root, tmp_path / "strict", "--strict")
    assert result.exit_code == 2 and "--strict" in result.said and "Traceback" not in result.output
    assert not list((tmp_path / "strict").rglob("*.png"))
    result = CliRunner().invoke(app, ["eval", str(root), "--baselines", "none", "--no-ssim",
                                      "--kernels", "k7", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert {s["path"] for s in json.loads(result.stdout)["skipped"]} == odd
    result = CliRunner().invoke(app, ["eval", str(root), "--baselines", "none", "--kernels", "k7",
                                      "--strict"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def _multi_image_files(root, astronaut):
    """An animated PNG (3 frames), an animated WebP (2) and a multi-page TIFF (4) of real photo
    windows: each file's first image is what dtk reads."""
    windows = [Image.fromarray(np.ascontiguousarray(astronaut[i * 16:i * 16 + 96, :128])) for i in range(4)]
    root.mkdir(parents=True)
    windows[0].save(root / "anim.png", save_all=True, append_images=windows[1:3], duration=100)
    windows[0].save(root / "loop.webp", save_all=True, append_images=windows[1:2], lossless=True)
    windows[0].save(root / "pages.tif", save_all=True, append_images=windows[1:4])
    Image.fromarray(astronaut[:96, :128]).save(root / "still.png")
    return {str(root / "anim.png"): 3, str(root / "loop.webp"): 2, str(root / "pages.tif"): 4}


def test_a_file_of_several_images_is_counted_and_reported_not_cut_silently(tmp_path, astronaut):
    """An animated PNG/WebP or a multi-page TIFF: its first image is deblurred (and scored) and the
    file is reported with its image count, a warning naming it and "multi_frame" in --json."""
    from toolkit.core.frames import read_frame_counted
    from toolkit.core.pipeline.dali import encoded_frame_counted

    root = tmp_path / "in"
    multi = _multi_image_files(root, astronaut)
    for path, count in multi.items():
        image, n = read_frame_counted(path)
        assert n == count and image.shape == (96, 128, 3)
        data, n = encoded_frame_counted(Path(path))  # the DALI path re-encodes the first image, counted
        assert n == count and np.array_equal(np.asarray(Image.open(io.BytesIO(data.tobytes()))), image)
    assert read_frame_counted(root / "still.png")[1] == 1
    result = cli_run(root, tmp_path / "out", "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert {m["path"]: m["images"] for m in doc["multi_frame"]} == multi and doc["written"] == 4
    for path, count in multi.items():
        assert f"warning: {path} holds {count} images" in result.said
    result = CliRunner().invoke(app, ["eval", str(root), "--baselines", "none", "--no-ssim",
                                      "--kernels", "k7", "--json", "-"])
    assert result.exit_code == 0, result.output
    assert {m["path"]: m["images"] for m in json.loads(result.stdout)["multi_frame"]} == multi
