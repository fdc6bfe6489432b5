"""Issue 18 items 8-10: options that mean nothing are refused; eval size checks; small UX fixes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from toolkit.app.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def output_of(result) -> str:
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


def assert_user_error(result, *fragments):
    out = output_of(result)
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    for frag in fragments:
        assert frag in out, out
    return out


def test_run_unknown_precision_refused_before_load(demo_dir, tmp_path, no_model_load):
    res = invoke("run", demo_dir, "-o", tmp_path / "out", "--precision", "fp8")
    assert_user_error(res, "fp8", "fp32", "bf16")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--compile", "--channels-last", "--cuda-graphs", "--no-cuda-graphs"])
def test_run_torch_only_option_with_onnxruntime_refused(demo_dir, tmp_path, tiny_model_dir, flag,
                                                        no_model_load):
    res = invoke("run", demo_dir, "-o", tmp_path / "out", "--model", tiny_model_dir / "m.onnx",
                 "--backend", "onnxruntime", flag)
    out = assert_user_error(res, flag, "torch", "onnxruntime")
    assert "ignore" in out


def test_run_torch_only_option_with_auto_backend_names_the_chosen_one(demo_dir, tmp_path, tiny_model_dir,
                                                                      no_model_load):
    pytest.importorskip("onnxruntime")
    from engines.spec import RunnerSpec

    chosen = RunnerSpec.choose("auto", tiny_model_dir / "m.onnx").backend
    if chosen == "torch":
        pytest.skip("auto picks torch on this machine")
    res = invoke("run", demo_dir, "-o", tmp_path / "out", "--model", tiny_model_dir / "m.onnx", "--compile")
    assert_user_error(res, "--compile", "torch", chosen)


@pytest.mark.parametrize("batch", ["0", "100000"])
def test_run_batch_bounded_before_load(demo_dir, tmp_path, batch, no_model_load):
    res = invoke("run", demo_dir, "-o", tmp_path / "out", "--batch", batch)
    assert_user_error(res, "--batch")


def _eval_predictions(sharp, pred, *extra):
    return invoke("eval", sharp, "--predictions", pred, "--kernels", "k7", "--baselines", "none",
                  "--no-ssim", *extra)


def test_eval_prediction_of_another_size_is_skipped_not_rescaled(tmp_path, astronaut):
    """Sharp frames of 256x448 and of their own size: a prediction must be one of the two."""
    import json

    from toolkit.core.frames import resize_frame, write_png_atomic

    sharp, pred = tmp_path / "sharp", tmp_path / "pred"
    big = resize_frame(astronaut, (300, 500))
    write_png_atomic(sharp / "a" / "00000000.png", astronaut)  # 256x448
    write_png_atomic(sharp / "b" / "00000000.png", big)  # 300x500
    write_png_atomic(sharp / "c" / "00000000.png", big)
    write_png_atomic(sharp / "d" / "00000000.png", big)
    write_png_atomic(pred / "a" / "00000000.png", astronaut)  # the sharp size: scored
    write_png_atomic(pred / "b" / "00000000.png", big)  # its own size: scored
    write_png_atomic(pred / "c" / "00000000.png", astronaut)  # 256x448 (--keep-size): scored
    write_png_atomic(pred / "d" / "00000000.png", resize_frame(astronaut, (128, 224)))  # wrong: skipped
    res = _eval_predictions(sharp, pred, "--json", tmp_path / "e.json")
    out = output_of(res)
    assert res.exit_code == 0, out
    report = json.loads((tmp_path / "e.json").read_text())
    scored = {f["rel"] for f in report["frames"] if f["method"] == "predictions"}
    assert scored == {"a/00000000.png", "b/00000000.png", "c/00000000.png"}
    assert {f["rel"] for f in report["frames"]} == scored  # not scored by any method
    (skip,) = report["skipped"]
    assert skip["path"].endswith("d/00000000.png") and "224x128" in skip["reason"]
    assert "500x300" in skip["reason"]
    assert "d/00000000.png" in " ".join(out.split())
    strict = _eval_predictions(sharp, pred, "--strict")
    assert_user_error(strict, "224x128")


def test_export_missing_checkpoint_names_the_safetensors_file(tmp_path):
    res = invoke("export", tmp_path / "nosuch.safetensors", "-o", tmp_path / "m.onnx")
    out = " ".join(assert_user_error(res).split())
    assert "nosuch.safetensors not found" in out


def test_export_refuses_to_overwrite_without_flag(tmp_path, tiny_model_dir):
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    small = ("--height", "64", "--width", "64")
    res = invoke("export", tiny_model_dir / "m.safetensors", "-o", existing, *small)
    assert_user_error(res, "--overwrite")
    assert existing.read_text() == "keep me"
    res = invoke("export", tiny_model_dir / "m.safetensors", "-o", existing, *small, "--overwrite")
    assert res.exit_code == 0, output_of(res)
    assert existing.read_bytes()[:4] != b"keep"


def test_help_and_tables_show_bracketed_extras():
    res = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "300"})
    assert res.exit_code == 0
    assert "pip install .[ray]" in " ".join(res.output.split())
    from rich.console import Console

    from toolkit.app.report import key_value_table

    console = Console(width=200, record=True)
    console.print(key_value_table("t", {"hint": "pip install .[gpu]", "[x]": "y"}))
    text = console.export_text()
    assert "pip install .[gpu]" in text and "[x]" in text


def test_resume_with_nothing_to_do_says_so(demo_dir, tmp_path, tiny_model_dir):
    args = ("run", demo_dir, "-o", tmp_path / "out", "--model", tiny_model_dir / "m.onnx", "--backend",
            "onnxruntime", "--threads", "1")
    first = invoke(*args)
    assert first.exit_code == 0, output_of(first)
    again = invoke(*args)
    out = " ".join(output_of(again).split())
    assert again.exit_code == 0, out
    assert "nothing to do" in out and "frames/s" not in out


def test_16bit_rgb_png_follows_round_x_over_257(tmp_path, astronaut):
    """16-bit RGB(A) frames become round(x/257) like 16-bit grey, not their high byte."""
    import json

    import cv2
    import numpy as np

    from toolkit.core.frames import read_frame, write_png_atomic

    v8 = astronaut[:32, :32].astype(np.uint16)
    x16 = np.clip(v8 * 257 + 100, 0, 65535).astype(np.uint16)  # high byte is v+1 for v >= 156
    cv2.imwrite(str(tmp_path / "rgb16.png"), np.ascontiguousarray(x16[:, :, ::-1]))
    alpha = np.full((32, 32, 1), 65535, np.uint16)
    cv2.imwrite(str(tmp_path / "rgba16.png"), np.ascontiguousarray(np.dstack([x16[:, :, ::-1], alpha])))
    expected = np.clip(np.rint(x16 / 257.0), 0, 255).astype(np.uint8)
    assert (read_frame(tmp_path / "rgb16.png") == expected).all()
    assert (read_frame(tmp_path / "rgba16.png") == expected).all()
    # through the CLI: a 16-bit prediction of an 8-bit sharp frame scores as identical
    sharp = np.full((256, 448, 3), 200, np.uint8)
    write_png_atomic(tmp_path / "sharp" / "a.png", sharp)
    (tmp_path / "pred").mkdir()
    cv2.imwrite(str(tmp_path / "pred" / "a.png"), np.full((256, 448, 3), 200 * 257 + 100, np.uint16))
    res = _eval_predictions(tmp_path / "sharp", tmp_path / "pred", "--json", tmp_path / "e.json")
    assert res.exit_code == 0, output_of(res)
    rows = json.loads((tmp_path / "e.json").read_text())["summary"]
    (pred,) = [r for r in rows if r["method"] == "predictions" and r["kernel"] == "k7"]
    assert pred["identical"] == 1


def test_summaries_are_text_not_dict_reprs():
    """eval's model line, run's backend row and export's parity line: `key value, key value`."""
    from toolkit.app.report import human_text, parity_text

    text = human_text({"backend": "onnxruntime", "providers": ["CPUExecutionProvider"], "io_binding": False,
                       "threads": None, "trt_cache": "", "frames_per_worker": {"node:1": 5},
                       "ratio": 0.123456})
    assert text == ("backend onnxruntime, providers CPUExecutionProvider, io_binding off, "
                    "frames_per_worker (node:1 5), ratio 0.1235")
    parity = parity_text({"random_max_abs": 0.0, "real_max_abs": 1.5e-7, "real_k7_max_abs": 3e-3,
                          "real_k11_max_abs": 4.06e-3, "real_psnr_vs_fp32_db": 58.49})
    assert parity == ("max abs diff random 0, real photo 1.5e-07, k7-blurred photo 0.003, k11-blurred photo "
                      "0.00406; blurred photos: PSNR vs PyTorch 58.49 dB")
    assert "{" not in text + parity and "'" not in text + parity


TINY_TRAIN = ("--epochs", "1", "--steps", "1", "--batch", "1", "--crop", "16", "--width", "2",
              "--tail-convs", "0")


@pytest.mark.parametrize("args, flag", [
    (("eval", "{demo}", "--kernels", ""), "--kernels"),
    (("eval", "{demo}", "--kernels", " , "), "--kernels"),
    (("eval", "{demo}", "--baselines", ""), "--baselines"),
    (("eval", "{demo}", "--kernels", "", "--native"), "--kernels"),
    (("compare", "--frames", "{demo}", "--blur", ""), "--blur"),
    (("train", "{demo}", "-o", "{tmp}/run", *TINY_TRAIN, "--kernels", ""), "--kernels"),
    (("train", "{demo}", "-o", "{tmp}/run", *TINY_TRAIN, "--frames", ""), "--frames"),
    (("train", "{demo}", "-o", "{tmp}/run", *TINY_TRAIN, "--frames", ","), "--frames"),
])
def test_an_empty_list_option_is_refused_never_all(demo_dir, tmp_path, no_model_load, args, flag):
    """An empty comma-separated list (`--kernels ''`, `--blur ''`, ...) is one error line, exit 2,
    before anything loads or is written: it never means "every kernel" or "every frame"."""
    res = invoke(*[a.format(demo=demo_dir, tmp=tmp_path) for a in args])
    assert_user_error(res, f"{flag} is empty")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overlap", ["-1", "100000"])
def test_eval_tile_overlap_is_bounds_checked_without_native_too(demo_dir, no_model_load, overlap):
    """`dtk eval --tile-overlap N` is checked as `dtk run` checks it, with or without --native."""
    res = invoke("eval", demo_dir, "--model", "default", "--tile-overlap", overlap)
    assert_user_error(res, "overlap")


@pytest.mark.parametrize("failure", ["parity", "interrupt"])
def test_export_checks_a_temporary_file_and_renames_it_only_when_it_passed(tmp_path, tiny_model_dir,
                                                                           monkeypatch, failure):
    """`dtk export -o M.onnx --overwrite` exports and checks a temporary file beside M.onnx: a
    failed parity check (exit 2) or Ctrl-C leaves the good M.onnx byte for byte and no temporary
    file; the check itself ran on a complete graph, never on M.onnx."""
    import training.export as export

    good = tmp_path / "model.onnx"
    good.write_bytes(b"the good model")
    checked = []

    def failing_check(model, path, *args, **kwargs):
        checked.append((path, path.stat().st_size))
        if failure == "interrupt":
            raise KeyboardInterrupt
        raise export.DtkError(f"ONNX export check failed: {path} differs from PyTorch (test)")

    monkeypatch.setattr(export, "check_parity", failing_check)
    small = ("--height", "64", "--width", "64")
    res = invoke("export", tiny_model_dir / "m.safetensors", "-o", good, *small, "--overwrite")
    if failure == "parity":
        assert_user_error(res, "check failed")
    else:
        assert res.exit_code != 0  # Click reports the interrupt as "Aborted!", exit 1
    assert good.read_bytes() == b"the good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left
    assert len(checked) == 1 and checked[0][0] != good and checked[0][1] > 1000
