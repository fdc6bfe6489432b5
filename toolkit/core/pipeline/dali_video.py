"""DALI's video decoder for `dtk run CLIP --pipeline dali|auto`: the same `DecodedFrame` stream as
`core.video.VideoReader.frames` (RGB uint8, presentation order), decoded by DALI.

Which decoder runs (`choose_decoder`): `--pipeline fallback` PyAV; `dali` DALI on this machine's
device, or exit 2 naming the codec when that device cannot decode it; `auto` DALI on a GPU (NVDEC)
when DALI is installed and the codec is one NVDEC takes, else PyAV. On a CPU `auto` keeps PyAV:
DALI's CPU variant is libavcodec too, decoding is a small share of a CPU run, and PyAV's colours
are the reference.
- Codecs (DALI 2.4): the CPU variant decodes VP8, VP9 and MJPEG only (H.264 and MPEG-4 are refused
  with "Codec 27 (h264) is not supported by the CPU variant of this operator"); the GPU variant
  (NVDEC) also H.264, HEVC, AV1 and MPEG-4. 8-bit 4:2:0 streams only (yuv420p, yuvj420p).
- Streaming: `fn.experimental.readers.video` reads the file in sequences of `SEQUENCE` frames
  (`step` = `SEQUENCE`, the last padded and trimmed here), decoding forward without seeking back
  (300 frames in one 300-frame GOP: linear time), so at most a few sequences are held, whatever the
  clip's length or GOP.
- Timestamps, frame count, colour metadata and audio stay PyAV's: a demux pass (no decoding) lists
  the video packets' pts, sorted into presentation order; the frames' pts are those, and the audio
  packets are handed to `on_packet` in file order, in step with the video packets, as PyAV's path does.
- Colour: DALI converts with BT.601's matrix whatever the stream is tagged (both devices; the range,
  limited or full, is honoured) and upsamples chroma bilinearly. `colour_fix` turns that RGB into the
  stream's matrix (RGB_stream = A_stream A_601^-1 RGB_601, one 3x3 matrix: range scaling and offsets
  cancel) with `fn.coord_transform`. Measured on VP9 (CPU) against PyAV's RGB: flat BT.601/BT.709
  colours, limited and full range, within 2 levels; a BT.709 clip of real photos 49.8-51.8 dB per
  frame (max 14 levels, at sharp chroma edges: bilinear vs bicubic chroma), 33-40 dB without the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from toolkit.core.errors import DtkError
from toolkit.core.lazy import optional_import
from toolkit.core.pipeline import _torch_cuda_available  # one home: does torch see CUDA
from toolkit.core.video import DecodedFrame, VideoInfo, VideoReader, av

DECODERS = ("pyav", "dali-cpu", "dali-gpu")
CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})  # DALI 2.4's CPU variant (its own libavcodec)
GPU_CODECS = CPU_CODECS | {"h264", "hevc", "av1", "mpeg4"}  # NVDEC, through DALI's mixed/GPU variant
CODEC_ALIASES = {"libdav1d": "av1", "libaom-av1": "av1", "libvpx": "vp8", "libvpx-vp9": "vp9"}
PIX_FMTS = frozenset({"yuv420p", "yuvj420p"})
SEQUENCE = 16  # frames DALI decodes per iteration: what is held (x its prefetch), not the clip
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "fcc": (0.30, 0.11),
         "smpte240m": (0.212, 0.087), "bt2020": (0.2627, 0.0593)}


def choose_decoder(info: VideoInfo, pipeline: str, gpu: bool | None = None, *,
                   in_folder: bool = False) -> str:
    """pyav, dali-cpu or dali-gpu for a clip and `--pipeline` (auto|dali|fallback; `gpu` None: does
    torch see CUDA); DtkError for `dali` where DALI is missing or cannot decode the clip here.
    `in_folder`: a video among a folder's frames, whose --pipeline chose the frames' reader: `dali`
    decodes it with DALI where DALI can decode it here and with PyAV where not; any other, PyAV."""
    if in_folder and pipeline != "dali":
        return "pyav"
    if pipeline not in ("auto", "dali", "fallback"):
        raise DtkError(f"--pipeline {pipeline} is for frame folders; a video takes auto, dali or fallback")
    if pipeline == "fallback":
        return "pyav"
    gpu = _torch_cuda_available() if gpu is None else gpu
    device = "gpu" if gpu else "cpu"
    why = unsupported(info, device)
    if pipeline == "auto":
        # PyAV: the reference, and DALI's GPU (NVDEC) path has not run on a GPU yet; ask for it with
        # --pipeline dali (docs/video.md)
        return "pyav"
    optional_import("nvidia.dali")  # in a folder, its frames need it too
    if why is not None:
        if in_folder:
            return "pyav"
        raise DtkError(f"{info.path}: {why}")
    return f"dali-{device}"


def unsupported(info: VideoInfo, device: str) -> str | None:
    """Why DALI on `device` (cpu|gpu) cannot decode the clip, or None when it can."""
    codec = CODEC_ALIASES.get(info.codec, info.codec)
    if device == "cpu" and codec not in CPU_CODECS:
        gpu_too = "" if codec in GPU_CODECS else " (nor its GPU variant)"
        return (f"DALI's CPU video decoder cannot decode {info.codec}{gpu_too}: it takes "
                f"{', '.join(sorted(CPU_CODECS))}; {info.codec} needs DALI on a GPU (NVDEC) or "
                "--pipeline fallback (PyAV)")
    if device == "gpu" and codec not in GPU_CODECS:
        return (f"DALI's video decoder cannot decode {info.codec}: it takes {', '.join(sorted(GPU_CODECS))}; "
                "use --pipeline fallback (PyAV)")
    if info.pix_fmt not in PIX_FMTS:
        return (f"DALI decodes 8-bit 4:2:0 video only ({', '.join(sorted(PIX_FMTS))}), this clip is "
                f"{info.pix_fmt}: use --pipeline fallback (PyAV)")
    return None


def colour_fix(matrix: str) -> np.ndarray | None:
    """The 3x3 matrix taking DALI's BT.601 RGB to RGB with the stream's `matrix` (None: BT.601)."""
    if matrix == "bt601" or matrix not in KR_KB:
        return None
    return _ycbcr_to_rgb(*KR_KB[matrix]) @ np.linalg.inv(_ycbcr_to_rgb(*KR_KB["bt601"]))


def _ycbcr_to_rgb(kr: float, kb: float) -> np.ndarray:
    """(Y, Pb, Pr) -> (R, G, B) of the matrix with these luma weights."""
    kg = 1.0 - kr - kb
    return np.array([[1.0, 0.0, 2 * (1 - kr)], [1.0, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
                     [1.0, 2 * (1 - kb), 0.0]])


def video_pipeline(path: str, device: str, fix: np.ndarray | None):
    """The graph (decorated by `build_pipeline`): read + decode `SEQUENCE` frames -> the stream's matrix."""
    from nvidia.dali import fn, types

    frames = fn.experimental.readers.video(device=device, filenames=[path], sequence_length=SEQUENCE,
                                           step=SEQUENCE, pad_mode="edge", name="reader")
    if fix is not None:
        frames = fn.coord_transform(frames, M=[float(v) for v in fix.ravel()], dtype=types.UINT8)
    return frames


def build_pipeline(path: str, device: str, fix: np.ndarray | None, threads: int = 2):
    """`video_pipeline` built for `device` (cpu: no CUDA, device_id None)."""
    from nvidia.dali import pipeline_def

    device_id = None
    if device == "gpu":
        import torch

        device_id = torch.cuda.current_device()
    pipe = pipeline_def(video_pipeline)(path, device, fix, batch_size=1, num_threads=threads,
                                         device_id=device_id, prefetch_queue_depth=1)
    pipe.build()
    return pipe


def dali_frames(reader: VideoReader, device: str,
                on_packet: Callable[[Any], None] | None = None) -> Iterator[DecodedFrame]:
    """Every frame of `reader`'s clip decoded by DALI on `device` (cpu|gpu), in presentation order,
    with PyAV's pts; audio packets to `on_packet` as `VideoReader.frames` hands them. A DALI error
    mid-clip leaves the rest of the frames as failed `DecodedFrame`s (image None, the reason)."""
    info = reader.info
    pts = presentation_pts(info.path)
    try:
        pipe = build_pipeline(info.path, device, colour_fix(info.colour.matrix))
        sequences = int(pipe.epoch_size("reader"))
    except RuntimeError as exc:
        raise DtkError(f"{info.path}: DALI cannot read the clip ({_reason(exc)}); use --pipeline fallback"
                       ) from None
    decoded = _decoded(pipe, sequences)
    index = 0
    for packet in reader.video_packets(on_packet):  # audio handed on in file order, as PyAV's path does
        if packet.size and index < len(pts):  # one frame per video packet, as the probe counts them
            yield _frame(index, pts[index], next(decoded))
            index += 1
    for rest in range(index, len(pts)):  # frames whose packets the demux above did not reach
        yield _frame(rest, pts[rest], next(decoded))


def _frame(index: int, pts: int | None, image: np.ndarray | str) -> DecodedFrame:
    if isinstance(image, str):
        return DecodedFrame(index, pts, None, image)
    return DecodedFrame(index, pts, image)


def _decoded(pipe: Any, sequences: int) -> Iterator[np.ndarray | str]:
    """DALI's frames one by one (H x W x 3 uint8), then a reason string for each frame it did not
    give (padding past the clip's end is never reached: the caller stops at the packet count)."""
    reason = "DALI decoded fewer frames than the clip's packets"
    for _ in range(sequences):
        try:
            (out,) = pipe.run()
        except (RuntimeError, StopIteration) as exc:
            reason = f"corrupt or truncated (DALI decoder: {_reason(exc)})"
            break
        host = out.as_cpu() if hasattr(out, "as_cpu") else out
        yield from np.array(host[0])
    while True:
        yield reason


def presentation_pts(path: str) -> list[int | None]:
    """The video packets' pts in presentation order (a demux pass, no decoding; decode order kept
    when a packet has none)."""
    with av().open(path) as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]
    return pts if None in pts else sorted(pts)


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("File ", "Critical error", "Error in"))]
    return lines[-1] if lines else type(exc).__name__
