"""Frame pipelines: DALI (CPU operators here, GPU where present) against the reference and the fallback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, read_frame, write_png_atomic
from toolkit.core.kernels import KERNEL_NAMES, blur
from toolkit.core.pipeline import PipelineConfig, _dali_available, open_pipeline

needs_dali = pytest.mark.skipif(not _dali_available(),
                                 reason="nvidia.dali is not importable (pip install .[dali])")
KINDS = [pytest.param("dali", marks=needs_dali), "fallback"]


def _collect(batches) -> tuple[list, dict[str, np.ndarray], list]:
    """(batches, {relative path: CHW uint8-scale float64 image}, failed paths) of a pipeline run."""
    batches = list(batches)
    images = {str(f.rel): np.asarray(b.images[i], dtype=np.float64) * 255.0
              for b in batches for i, f in enumerate(b.frames)}
    failed = [path for b in batches for path, _ in b.failed]
    return batches, images, failed


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory, demo_dir) -> Path:
    """Three demo frames (256x448), a 512x512 photo (downscaled) and a 100x150 crop (upscaled)."""
    from toolkit.core.demo import skimage_photo_path

    root = tmp_path_factory.mktemp("mixed")
    for f in discover_frames(demo_dir)[:3]:
        shutil.copy(f.path, root / f"{f.sequence}_{f.rel.name}")
    photo = read_frame(skimage_photo_path("astronaut"))
    write_png_atomic(root / "big.png", photo)
    write_png_atomic(root / "small.png", read_frame(skimage_photo_path("coffee"))[40:140, 200:350])
    return root


@needs_dali
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_dali_blur_matches_reference(demo_dir, kernel):
    frames = discover_frames(demo_dir)[::3]
    _, images, _ = _collect(open_pipeline(frames, PipelineConfig(batch_size=4, blur=kernel), kind="dali"))
    assert list(images) == [str(f.rel) for f in frames]
    for f in frames:
        ref = blur(read_frame(f.path), kernel).transpose(2, 0, 1).astype(np.float64)
        assert np.abs(images[str(f.rel)] - ref).max() <= 1.0 + 1e-3, f.rel


@needs_dali
@pytest.mark.parametrize("kernel", [None, *KERNEL_NAMES])
def test_dali_equals_fallback_with_resize(mixed_dir, kernel):
    frames = discover_frames(mixed_dir)
    config = PipelineConfig(batch_size=3, blur=kernel)
    d_batches, dali, _ = _collect(open_pipeline(frames, config, kind="dali"))
    f_batches, fallback, _ = _collect(open_pipeline(frames, config, kind="fallback"))
    assert list(dali) == list(fallback) == [str(f.rel) for f in frames]
    for name in dali:
        assert dali[name].shape == (3, 256, 448)
        assert np.abs(dali[name] - fallback[name]).max() <= 1.0 + 1e-3, name
    assert [b.sizes for b in d_batches] == [b.sizes for b in f_batches]
    assert {(512, 512), (100, 150), (256, 448)} == {s for b in d_batches for s in b.sizes}


@needs_dali
def test_dali_passes_target_size_frames_unchanged(demo_dir):
    frames = discover_frames(demo_dir)[:2]
    _, images, _ = _collect(open_pipeline(frames, PipelineConfig(batch_size=2), kind="dali"))
    for f in frames:
        np.testing.assert_allclose(images[str(f.rel)], read_frame(f.path).transpose(2, 0, 1), atol=1e-3)


@needs_dali
def test_dali_converts_gray_alpha_16bit_like_read_frame(tmp_path, astronaut):
    from PIL import Image

    Image.fromarray(astronaut[:, :, 1]).save(tmp_path / "gray.png")
    alpha = np.full(astronaut.shape[:2], 7, np.uint8)
    Image.fromarray(np.dstack([astronaut, alpha])).save(tmp_path / "rgba.png")
    Image.fromarray(astronaut[:, :, 0].astype(np.uint16) * 256 + 100).save(tmp_path / "deep.png")
    Image.fromarray(astronaut).save(tmp_path / "photo.jpg", quality=90)
    frames = discover_frames(tmp_path)
    _, dali, _ = _collect(open_pipeline(frames, PipelineConfig(batch_size=4), kind="dali"))
    for f in frames:
        ref = read_frame(f.path).transpose(2, 0, 1)
        assert np.abs(dali[str(f.rel)] - ref).max() <= 1e-3, f.rel


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("kernel", [None, "k7"])
def test_native_size_frames_are_blurred_at_their_own_size(mixed_dir, kind, kernel):
    """size=None: uint8 frames of every size, never resized, blurred like the reference (1 LSB)."""
    frames = discover_frames(mixed_dir)
    config = PipelineConfig(batch_size=2, blur=kernel, size=None)
    batches = list(open_pipeline(frames, config, kind=kind))
    assert all(b.native for b in batches) and [len(b) for b in batches] == [2, 2, 1]
    got = {str(f.rel): im for b in batches for f, im in zip(b.frames, b.images, strict=True)}
    assert list(got) == [str(f.rel) for f in frames]
    for f in frames:
        sharp = read_frame(f.path)
        ref = sharp if kernel is None else blur(sharp, kernel)
        im = got[str(f.rel)]
        assert im.dtype == np.uint8 and im.shape == sharp.shape
        assert np.abs(im.astype(int) - ref.astype(int)).max() <= 1, f.rel
    assert [s for b in batches for s in b.sizes] == [read_frame(f.path).shape[:2] for f in frames]


@pytest.mark.parametrize("kind", KINDS)
def test_order_names_and_partial_last_batch(demo_dir, kind):
    frames = discover_frames(demo_dir)  # 10 frames in 5 sequences
    batches = list(open_pipeline(frames, PipelineConfig(batch_size=4, prefetch=2), kind=kind))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [f.rel for b in batches for f in b.frames] == [f.rel for f in frames]
    assert batches[-1].images.shape == (2, 3, 256, 448) and batches[-1].images.dtype == np.float32
    assert all(s == (256, 448) for b in batches for s in b.sizes)
    assert float(batches[0].images.min()) >= 0.0 and float(batches[0].images.max()) <= 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_files_reported_others_delivered(tmp_path, demo_dir, kind):
    frames = discover_frames(demo_dir)
    for f in frames:
        (tmp_path / f.rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f.path, tmp_path / f.rel)
    truncated, text = tmp_path / frames[1].rel, tmp_path / frames[6].rel
    truncated.write_bytes(truncated.read_bytes()[:2000])
    text.write_text("this is not an image\n")
    config = PipelineConfig(batch_size=4, dtype="float16")
    batches, images, failed = _collect(open_pipeline(discover_frames(tmp_path), config, kind=kind))
    assert failed == [str(truncated), str(text)]
    assert [str(f.rel) for f in frames if f.rel not in (frames[1].rel, frames[6].rel)] == list(images)
    assert [len(b) for b in batches] == [3, 3, 2] and batches[0].images.dtype == np.float16
    reasons = dict(pr for b in batches for pr in b.failed)
    assert "not a recognised image format" in reasons[str(text)]
    assert "corrupt or truncated" in reasons[str(truncated)]
    for f in frames[:1] + frames[7:]:  # frames of spans with and without a failure are intact
        ref = read_frame(f.path).transpose(2, 0, 1)
        assert np.abs(images[str(f.rel)] - ref).max() <= 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_empty_folder_and_empty_list_raise(tmp_path, kind):
    (tmp_path / "seq").mkdir()
    with pytest.raises(DtkError, match="no frames"):
        discover_frames(tmp_path)
    with pytest.raises(DtkError, match="no frames"):
        open_pipeline([], PipelineConfig(), kind=kind)


def test_import_toolkit_does_not_import_dali():
    import subprocess
    import sys

    code = ("import sys, toolkit, toolkit.core.pipeline, toolkit.core.pipeline.dali; "
            "print('nvidia.dali' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@needs_dali
def test_unknown_device_raises(demo_dir):
    from toolkit.core.pipeline.dali import dali_batches

    with pytest.raises(DtkError, match="cpu or gpu"):
        dali_batches(discover_frames(demo_dir), PipelineConfig(), device="tpu")


@needs_dali
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_dali_gpu_hands_out_cuda_tensors_equal_to_cpu(mixed_dir, dtype):
    import torch

    frames = discover_frames(mixed_dir)
    config = PipelineConfig(batch_size=2, blur="k7", dtype=dtype, prefetch=3)
    gpu = list(open_pipeline(frames, config, kind="dali", device="gpu"))
    _, cpu, _ = _collect(open_pipeline(frames, config, kind="dali", device="cpu"))
    assert [len(b) for b in gpu] == [2, 2, 1]
    for b in gpu:
        assert isinstance(b.images, torch.Tensor) and b.images.is_cuda
        assert b.images.dtype == (torch.float16 if dtype == "float16" else torch.float32)
    torch.cuda.current_stream().synchronize()
    for b in gpu:
        for i, f in enumerate(b.frames):
            got = b.images[i].float().cpu().numpy().astype(np.float64) * 255.0
            assert np.abs(got - cpu[str(f.rel)]).max() <= 1.0 + (0.5 if dtype == "float16" else 1e-3)


@needs_dali
@pytest.mark.gpu
def test_dali_gpu_reports_corrupt_file(tmp_path, demo_dir):
    frames = discover_frames(demo_dir)[:3]
    for f in frames:
        shutil.copy(f.path, tmp_path / f.rel.name.replace(".png", f"_{f.sequence}.png"))
    bad = sorted(tmp_path.iterdir())[1]
    bad.write_bytes(bad.read_bytes()[:1500])
    batches = list(open_pipeline(discover_frames(tmp_path), PipelineConfig(batch_size=4), kind="dali",
                                 device="gpu"))
    assert [p for b in batches for p, _ in b.failed] == [str(bad)]
    assert sum(len(b) for b in batches) == 2 and batches[0].images.is_cuda


def test_pipeline_benchmark_measures_each_pair(demo_dir):
    from bench.pipeline import pipeline_benchmark, render_table

    kinds = ("dali", "fallback") if _dali_available() else ("fallback",)
    result = pipeline_benchmark(demo_dir, repeats=1, batch_size=4, blurs=(None, "k7"), kinds=kinds)
    pairs = [(r["pipeline"], r["blur"]) for r in result["rows"]]
    assert pairs == [(k, b) for b in ("none", "k7") for k in kinds]
    assert all(r["frames"] == 10 and r["best_fps"] > 0 for r in result["rows"])
    assert render_table(result).row_count == len(result["rows"])


def test_torch_pipeline_blurs_like_the_fallback(demo_dir):
    """The no-DALI GPU pipeline (run here on the CPU device): same frames, blur within 1 LSB."""
    import torch

    from toolkit.core.pipeline.torch_gpu import torch_batches

    frames = discover_frames(demo_dir)[:5]
    config = PipelineConfig(batch_size=2, blur="k11")
    ref = list(open_pipeline(frames, config, kind="fallback"))
    got = list(torch_batches(frames, config, device="cpu"))
    assert [len(b) for b in got] == [len(b) for b in ref] == [2, 2, 1]
    for r, g in zip(ref, got, strict=True):
        assert torch.is_tensor(g.images) and g.sizes == r.sizes
        diff = np.abs(g.images.numpy() * 255 - r.images * 255)
        assert diff.max() <= 1.0 + 1e-3 and diff.mean() < 0.05
    assert list(open_pipeline(frames, config, kind="torch"))[0].images.device.type == "cpu"


@pytest.mark.gpu
def test_auto_on_a_gpu_without_dali_blurs_on_the_gpu(demo_dir, monkeypatch):
    import toolkit.core.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_dali_available", lambda: False)
    batch = next(iter(open_pipeline(discover_frames(demo_dir)[:2], PipelineConfig(batch_size=2, blur="k7"),
                                    device="gpu")))
    assert batch.images.is_cuda and tuple(batch.images.shape) == (2, 3, 256, 448)
