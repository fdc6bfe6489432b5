"""`--known-blur K` end to end on the shipped model and real frames: `dtk run` (frame trees,
--resize, a video, a folder holding a video), its run manifest and resume, `dtk eval --known-blur`,
`dtk bench --known-blur K`, and `Deblurrer(known_blur=...)`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from engines.tiled import Tiling, deblur_frames
from toolkit.app.cli import app
from toolkit.core.convert import from_nchw, to_nchw
from toolkit.core.errors import DtkError
from toolkit.core.evidence import known_rows
from toolkit.core.frames import read_frame, write_png_atomic
from toolkit.core.kernels import blur
from toolkit.core.metrics import psnr
from toolkit.core.modelfiles import resolve_model

pytest.importorskip("onnxruntime", reason="the shipped ONNX runs on ONNX Runtime (.[cpu])")

ORT = ("--backend", "onnxruntime", "--threads", "2")


@pytest.fixture(scope="module")
def shipped():
    """The shipped model on ONNX Runtime: what the CLI's outputs are compared with."""
    from engines.onnxruntime import OrtRunner

    with OrtRunner(resolve_model(None, "onnxruntime"), threads=2) as runner:
        yield runner


@pytest.fixture(scope="module")
def sharp_frames(astronaut):
    """Two real frames: the 256x448 astronaut (one tile) and a 256x640 one (two tiles)."""
    wide = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)[:, :640].copy()
    return {"a/0.png": astronaut, "a/1.png": wide}


def write_tree(root, frames):
    for rel, image in frames.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_png_atomic(root / rel, image)
    return root


def dtk(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    result.said = " ".join(result.output.split())
    return result


def manifest(path):
    return json.loads(path.read_text())["settings"]


# -- dtk run on a frame tree -----------------------------------------------------------------------


def test_told_k3_is_a_pass_byte_for_byte_recorded_and_resumed_only_with_it(sharp_frames, tmp_path):
    src, out = write_tree(tmp_path / "in", sharp_frames), tmp_path / "out"
    done = dtk("run", src, "-o", out, *ORT, "--known-blur", "k3", "--json", "-")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["known_blur"] == "k3" and summary["written"] == 2
    assert summary["network_passes"] == 0 and summary["head_passes"] == 0  # nothing decided, nothing run
    for rel, image in sharp_frames.items():
        np.testing.assert_array_equal(read_frame(out / rel), image)
    assert manifest(out / ".dtk-run.json")["known_blur"] == "k3"

    again = dtk("run", src, "-o", out, *ORT, "--known-blur", "k3")
    assert again.exit_code == 0 and "nothing to do" in again.said
    for other in (("--known-blur", "k7"), ()):  # another known blur, or none: other settings
        refused = dtk("run", src, "-o", out, *ORT, *other)
        assert refused.exit_code == 2 and "known_blur: 'k3' in OUTPUT" in refused.said
        assert "Traceback" not in refused.output


def test_a_manifest_from_before_known_blur_resumes_without_the_option(sharp_frames, tmp_path):
    src, out = write_tree(tmp_path / "in", {"a/0.png": sharp_frames["a/0.png"]}), tmp_path / "out"
    assert dtk("run", src, "-o", out, *ORT).exit_code == 0
    path = out / ".dtk-run.json"
    doc = json.loads(path.read_text())
    del doc["settings"]["known_blur"]  # as dtk wrote it before the option existed
    path.write_text(json.dumps(doc))
    again = dtk("run", src, "-o", out, *ORT)
    assert again.exit_code == 0 and "nothing to do" in again.said
    told = dtk("run", src, "-o", out, *ORT, "--known-blur", "k7")
    assert told.exit_code == 2 and "known_blur: None in OUTPUT, 'k7' now" in told.said


def test_told_k7_on_k7_frames_gains_and_equals_the_engine_call(sharp_frames, shipped, tmp_path):
    blurred = {rel: blur(im, "k7") for rel, im in sharp_frames.items()}
    src, out = write_tree(tmp_path / "in", blurred), tmp_path / "out"
    result = dtk("run", src, "-o", out, *ORT, "--known-blur", "k7", "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["head_passes"] == 0
    for rel, sharp in sharp_frames.items():
        got = read_frame(out / rel)
        engine = deblur_frames(shipped, [blurred[rel]], Tiling(), known_blur="k7").images[0]
        np.testing.assert_array_equal(got, engine)
        assert psnr(got, sharp) > psnr(blurred[rel], sharp) + 1.0  # told k7, the k7 frame gains

    # --blur keeps its meaning: sharp frames blurred first, then told the same blur
    sharp_src = write_tree(tmp_path / "sharp", sharp_frames)
    both = dtk("run", sharp_src, "-o", tmp_path / "both", *ORT, "--blur", "k7", "--known-blur", "k7")
    assert both.exit_code == 0, both.output
    for rel in sharp_frames:
        np.testing.assert_array_equal(read_frame(tmp_path / "both" / rel), read_frame(out / rel))
    assert manifest(tmp_path / "both" / ".dtk-run.json")["blur"] == "k7"


def test_resize_mode_is_told_too(sharp_frames, shipped, tmp_path):
    frame = blur(sharp_frames["a/0.png"], "k7")  # 256x448: resized to itself
    src, out = write_tree(tmp_path / "in", {"0.png": frame}), tmp_path / "out"
    result = dtk("run", src, "-o", out, *ORT, "--resize", "--known-blur", "k11")
    assert result.exit_code == 0, result.output
    told = from_nchw(shipped.infer(to_nchw([frame]), known=known_rows("k11", 1)))[0]
    np.testing.assert_array_equal(read_frame(out / "0.png"), told)
    assert not np.array_equal(told, from_nchw(shipped.infer(to_nchw([frame])))[0])  # it decided k7
    settings = manifest(out / ".dtk-run.json")
    assert settings["mode"] == "resize" and settings["known_blur"] == "k11"


def test_unknown_known_blur_is_refused_before_the_model_loads(sharp_frames, tmp_path, no_model_load):
    src = write_tree(tmp_path / "in", {"0.png": sharp_frames["a/0.png"]})
    result = dtk("run", src, "-o", tmp_path / "out", *ORT, "--known-blur", "k5")
    assert result.exit_code == 2
    assert "unknown blur 'k5' for --known-blur: choose one of k3, k7, k11" in result.said
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_a_model_without_a_decision_is_refused_before_anything_is_written(
        sharp_frames, tiny_model_dir, tmp_path, backend):
    src = write_tree(tmp_path / "in", {"0.png": sharp_frames["a/0.png"]})
    model = tiny_model_dir / ("m.onnx" if backend == "onnxruntime" else "m.safetensors")
    result = dtk("run", src, "-o", tmp_path / "out", "--model", model, "--backend", backend,
                 "--known-blur", "k7")
    assert result.exit_code == 2 and "--known-blur k7: this model" in result.said
    assert "cannot be told the blur" in result.said and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one red line (Rich wraps it at 80 columns)
    assert not (tmp_path / "out").exists()  # no folder, manifest or lock left


# -- dtk run on videos -----------------------------------------------------------------------------


def test_video_told_k3_frames_are_the_decoded_frames_and_the_manifest_records_it(make_clip, tmp_path):
    pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")
    from toolkit.core.video import VideoReader

    clip = tmp_path / "clip.mp4"
    make_clip(clip, 25, frames=3, size=(256, 448), audio=False)
    pngs = tmp_path / "pngs"
    result = dtk("run", clip, "--frames-out", pngs, *ORT, "--known-blur", "k3")
    assert result.exit_code == 0, result.output
    with VideoReader(clip) as reader:
        frames = [f.image for f in reader.frames()]
    for i, image in enumerate(frames):
        np.testing.assert_array_equal(read_frame(pngs / f"{i:08d}.png"), image)
    assert manifest(pngs / ".dtk-run.json")["known_blur"] == "k3"

    out = tmp_path / "out.mp4"
    assert dtk("run", clip, "-o", out, *ORT, "--known-blur", "k3").exit_code == 0
    assert manifest(tmp_path / "out.mp4.dtk-run.json")["known_blur"] == "k3"
    refused = dtk("run", clip, "-o", out, *ORT, "--known-blur", "k7")
    assert refused.exit_code == 2 and "known_blur: 'k3' in OUTPUT, 'k7' now" in refused.said


def test_folder_with_a_video_tells_its_frames_and_its_video(make_clip, sharp_frames, tmp_path):
    pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")
    src = write_tree(tmp_path / "in", {"f/0.png": sharp_frames["a/0.png"]})
    (src / "v").mkdir()
    make_clip(src / "v" / "clip.mp4", 25, frames=2, size=(256, 448), audio=False)
    out = tmp_path / "out"
    result = dtk("run", src, "-o", out, *ORT, "--known-blur", "k3", "--json", "-")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_frame(out / "f" / "0.png"), sharp_frames["a/0.png"])
    assert manifest(out / ".dtk-run.json")["known_blur"] == "k3"
    assert manifest(out / "v" / "clip.mp4.dtk-run.json")["known_blur"] == "k3"
    assert json.loads(result.stdout)["videos"][0]["status"] == "written"


def test_video_with_a_model_that_cannot_be_told_writes_nothing(make_clip, tiny_model_dir, tmp_path):
    pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")
    clip = tmp_path / "clip.mp4"
    make_clip(clip, 25, frames=2, size=(256, 448), audio=False)
    result = dtk("run", clip, "-o", tmp_path / "out.mp4", "--model", tiny_model_dir / "m.onnx",
                 "--backend", "onnxruntime", "--known-blur", "k11")
    assert result.exit_code == 2 and "cannot be told the blur" in result.said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


# -- dtk eval --known-blur -------------------------------------------------------------------------


@pytest.mark.parametrize("native", [False, True])
def test_eval_scores_the_model_told_each_kernel_beside_it_deciding(sharp_frames, shipped, tmp_path, native):
    src = write_tree(tmp_path / "in", {"a/0.png": sharp_frames["a/0.png"]})
    result = dtk("eval", src, "--model", "default", "--backend", "onnxruntime", "--kernels", "k7,k11",
                 "--baselines", "none", "--no-ssim", "--known-blur", *(["--native"] if native else []),
                 "--json", "-")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["methods"] == ["blurred", "model", "model (told)"]
    sharp = sharp_frames["a/0.png"]
    for kernel in ("k7", "k11"):
        b = blur(sharp, kernel)
        told = (deblur_frames(shipped, [b], Tiling(), known_blur=kernel).images[0] if native
                else from_nchw(shipped.infer(to_nchw([b]), known=known_rows(kernel, 1)))[0])
        score = next(s for s in doc["frames"] if s["method"] == "model (told)" and s["kernel"] == kernel)
        assert score["psnr"] == pytest.approx(psnr(told, sharp), abs=1e-9)
        assert score["psnr"] > psnr(b, sharp)


def test_eval_known_blur_needs_a_model_that_can_be_told(sharp_frames, tiny_model_dir, tmp_path):
    src = write_tree(tmp_path / "in", {"0.png": sharp_frames["a/0.png"]})
    no_model = dtk("eval", src, "--known-blur")
    assert no_model.exit_code == 2 and "give --model" in no_model.said
    tiny = dtk("eval", src, "--model", tiny_model_dir / "m.onnx", "--backend", "onnxruntime", "--known-blur",
               "--kernels", "k7", "--baselines", "none")
    assert tiny.exit_code == 2 and "cannot be told the blur" in tiny.said


# -- dtk bench --known-blur K ----------------------------------------------------------------------


def test_bench_runs_e2e_and_quality_told(sharp_frames, shipped, tmp_path):
    src = write_tree(tmp_path / "in", {"a/0.png": sharp_frames["a/0.png"]})
    result = dtk("bench", "--backend", "onnxruntime", "--variants", "cpu-fp32", "--batch", "1", "--e2e",
                 "--e2e-only", "--frames", src, "--iterations", "1", "--warmup", "0", "--max-extend", "0",
                 "--quality-frames", "1", "--known-blur", "k11", "--threads", "2", "--json", "-")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["config"]["config"]["known_blur"] == "k11"
    assert doc["extra"]["quality"]["kernels"] == ["k11"]
    assert "told the blur k11" in doc["extra"]["e2e_frames"]["mode"]
    (row,) = doc["rows"]
    assert row["status"] == "ran" and row["mode"] == "e2e"
    b = blur(sharp_frames["a/0.png"], "k11")
    told = from_nchw(shipped.infer(to_nchw([b]), known=known_rows("k11", 1)))[0]
    assert row["quality"]["psnr_db"]["k11"] == pytest.approx(psnr(told, sharp_frames["a/0.png"]), abs=1e-6)
    assert row["quality"]["max_abs_err"] == 0.0  # its reference was told too


def test_bench_known_blur_on_a_model_that_cannot_be_told(tiny_model_dir, tmp_path):
    result = dtk("bench", "--model", tiny_model_dir / "m.onnx", "--backend", "onnxruntime", "--batch", "1",
                 "--iterations", "1", "--warmup", "0", "--no-quality", "--known-blur", "k7")
    assert result.exit_code == 2 and "cannot be told the blur" in result.said
    bad = dtk("bench", "--known-blur", "k9")
    assert bad.exit_code == 2 and "unknown blur 'k9' for --known-blur" in bad.said


# -- the Python API --------------------------------------------------------------------------------


def test_deblurrer_told(sharp_frames, shipped, tmp_path):
    from toolkit import Deblurrer
    from toolkit.app.api import run_folder

    frame = blur(sharp_frames["a/1.png"], "k7")
    with Deblurrer(backend="onnxruntime", threads=2, known_blur="k7") as told:
        np.testing.assert_array_equal(told(frame), deblur_frames(shipped, [frame], Tiling(),
                                                                 known_blur="k7").images[0])
        assert "known_blur='k7'" in repr(told)
    with Deblurrer(backend="onnxruntime", threads=2, known_blur="k3") as passed:
        np.testing.assert_array_equal(passed(frame), frame)
        summary = passed.run(write_tree(tmp_path / "in", {"0.png": frame}), tmp_path / "out")
    assert summary.known_blur == "k3" and manifest(tmp_path / "out" / ".dtk-run.json")["known_blur"] == "k3"
    np.testing.assert_array_equal(read_frame(tmp_path / "out" / "0.png"), frame)

    with pytest.raises(DtkError, match="choose one of k3, k7, k11"):
        Deblurrer(known_blur="k5")
    from engines.spec import RunnerSpec

    spec = RunnerSpec.choose("onnxruntime", None, threads=2)
    again = run_folder(tmp_path / "in", tmp_path / "out2", spec, known_blur="k7")
    assert again.known_blur == "k7" and again.head_passes == 0


def test_deblurrer_with_a_model_that_cannot_be_told(tiny_model_dir, astronaut):
    from toolkit import Deblurrer

    with (Deblurrer(tiny_model_dir / "m.onnx", backend="onnxruntime", known_blur="k7") as deblur,
          pytest.raises(DtkError, match="cannot be told the blur")):
        deblur(astronaut)
