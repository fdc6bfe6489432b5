"""Shared fixtures: real demo frames from scikit-image's photos, GPU skip logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


_TORCH_THREADS = _torch_threads()  # the process's default, before any test changes it


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A command run in-process with --threads N sets torch's thread count for the whole process
    (torch.set_num_threads): put the default back, so one test's --threads 1 does not slow every
    later one."""
    yield
    if _TORCH_THREADS is not None:
        import torch

        if torch.get_num_threads() != _TORCH_THREADS:
            torch.set_num_threads(_TORCH_THREADS)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The built-in demo tree (5 sequences x 2 frames of 256x448, real photos)."""
    from toolkit.core.demo import write_demo

    root = tmp_path_factory.mktemp("demo")
    write_demo(root, frames_per_sequence=2)
    return root


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real RGB photo, cropped to 256x448."""
    from toolkit.core.demo import skimage_photo_path
    from toolkit.core.frames import read_frame

    return read_frame(skimage_photo_path("astronaut"))[100:356, 32:480].copy()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A width-8 residual seed U-Net (seed 0) as m.safetensors + m.json + m.onnx (fp32)."""
    pytest.importorskip("polygraphy", reason="ONNX export folds constants with Polygraphy (.[cpu])")
    import torch

    from toolkit.core.models import ModelConfig
    from toolkit.core.models.checkpoint import save_checkpoint
    from toolkit.core.models.unet import SeedUNet
    from training.export import export_onnx

    torch.manual_seed(0)
    model = SeedUNet(ModelConfig(width=8, residual=True)).eval()
    root = tmp_path_factory.mktemp("tiny-model")
    save_checkpoint(root / "m.safetensors", model)
    export_onnx(model, root / "m.onnx", check=False)
    return root


@pytest.fixture(scope="session")
def onnx_model(tiny_model_dir) -> Path:
    """The tiny model's fp32 ONNX file (tiny_model_dir)."""
    return tiny_model_dir / "m.onnx"


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a runner is opened: a refusal must come before the model loads."""
    from engines.spec import RunnerSpec

    def boom(*_a, **_k):
        raise AssertionError("the model was loaded before the check")

    monkeypatch.setattr(RunnerSpec, "open", boom)


@pytest.fixture(scope="session")
def make_clip():
    """A function writing a short test clip of real photos: `make_clip(path, rate, frames=24,
    size=(H, W), codec="libx264", audio=True, **tags)` pans a `size` window over scikit-image's
    astronaut photo, encodes it (yuv420p, BT.709 limited tags unless given) with a 48 kHz sine
    track in AAC (mp4/mov) or FLAC; returns the RGB frames it encoded."""
    pytest.importorskip("av", reason="video tests need PyAV (pip install .[cpu])")

    def make(path, rate, frames=24, size=(272, 480), codec="libx264", audio=True, colorspace=1,
             color_range=1, pix_fmt="yuv420p"):
        import av

        from toolkit.core.demo import pan_windows, skimage_photo_path
        from toolkit.core.frames import read_frame

        images = pan_windows(read_frame(skimage_photo_path("astronaut")), frames, size)
        options = {"crf": "12"} if codec == "libx264" else {}
        with av.open(str(path), "w") as out:
            video = out.add_stream(codec, rate=rate, options=options)
            video.height, video.width = size
            video.pix_fmt = pix_fmt
            video.codec_context.colorspace, video.codec_context.color_range = colorspace, color_range
            sound = None
            if audio:
                sound = out.add_stream("aac" if str(path).endswith((".mp4", ".mov")) else "flac", rate=48000)
            for im in images:
                frame = av.VideoFrame.from_ndarray(im, format="rgb24").reformat(
                    format=pix_fmt, dst_colorspace=colorspace, dst_color_range=color_range)
                for packet in video.encode(frame):
                    out.mux(packet)
            for packet in video.encode(None):
                out.mux(packet)
            if sound is not None:
                seconds = frames / float(rate)
                t = np.arange(int(48000 * seconds)) / 48000.0
                wave = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
                fmt = "fltp" if sound.codec_context.name == "aac" else "s16"
                for i in range(0, len(wave), 1024):
                    chunk = wave[i:i + 1024][None]
                    if fmt == "s16":
                        chunk = (chunk * 32767).astype(np.int16)
                    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
                    af.sample_rate, af.pts = 48000, i
                    for packet in sound.encode(af):
                        out.mux(packet)
                for packet in sound.encode(None):
                    out.mux(packet)
        return images

    return make


@pytest.fixture(scope="session")
def round3c_dir(tmp_path_factory) -> Path:
    """Round 3c's gated model, rebuilt from the shipped one (round 4 is round 3c's network, bank,
    head and gate thresholds plus a gain head): the shipped weights without the gain head, as
    r3c.safetensors + r3c.json + r3c.onnx (fp32, checked). The tests of the gate, the calibration
    and the 256x448-grid decision run on it."""
    pytest.importorskip("polygraphy", reason="ONNX export folds constants with Polygraphy (.[cpu])")
    from dataclasses import replace

    from toolkit.core.modelfiles import default_model_path
    from toolkit.core.models import create_model
    from toolkit.core.models.checkpoint import load_model, save_checkpoint
    from training.export import export_onnx

    shipped = load_model(default_model_path("torch"))
    model = create_model(replace(shipped.config, gain_head=False)).eval()
    model.load_state_dict({k: v for k, v in shipped.state_dict().items() if not k.startswith("gain.")})
    root = tmp_path_factory.mktemp("round3c")
    save_checkpoint(root / "r3c.safetensors", model)
    export_onnx(model, root / "r3c.onnx")
    return root
