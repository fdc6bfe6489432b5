"""Video files in: probe (streams, frames, rate, size, colour), decode to RGB frames (PyAV).

Colour: a YUV frame becomes RGB with its own matrix (BT.709, BT.601, SMPTE 240M, FCC, BT.2020) and
range (limited "MPEG" 16..235, full "JPEG" 0..255), as tagged in the stream. An untagged matrix is
taken as BT.709 above 576 lines and BT.601 up to them, an untagged range as limited (full for the
yuvj formats), the rule players follow; `Colour.assumed` says so. Chroma is upsampled bicubically
with accurate rounding (swscale's FULL_CHR_H_INT | ACCURATE_RND | BICUBIC), in both directions.

PyAV is imported on first use (`av()`): `import toolkit` and `dtk --help` work without it.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame, tree_files, write_png_atomic
from toolkit.core.lazy import optional_import

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".nut", ".ts"})

# FFmpeg's AVColorSpace values -> (name, swscale matrix); 6 (SMPTE 170M) is BT.601's matrix,
# 10 (BT.2020 constant luminance) is converted with BT.2020's non-constant one.
MATRICES = {1: ("bt709", 1), 4: ("fcc", 4), 5: ("bt601", 5), 6: ("bt601", 5), 7: ("smpte240m", 7),
            9: ("bt2020", 9), 10: ("bt2020", 9)}
RANGES = {1: "limited", 2: "full"}
RANGE_TAGS = {"limited": 1, "full": 2}  # swscale's ColorRange MPEG, JPEG
HD_LINES = 576  # above: an untagged matrix is BT.709, else BT.601


def av() -> Any:
    """The PyAV module, or DtkError saying how to install it."""
    return optional_import("av")


def interpolation() -> Any:
    """swscale flags of every conversion: bicubic chroma, full horizontal chroma, accurate rounding."""
    flags = av().video.reformatter.Interpolation
    return flags.BICUBIC | flags.ACCURATE_RND | flags.FULL_CHR_H_INT


@dataclass(frozen=True)
class Colour:
    """How a stream's pixels map to RGB: the tags as stored (FFmpeg's enum values, 2/0 =
    unspecified) and the matrix and range dtk converts with (`assumed`: not tagged, guessed)."""

    matrix: str  # bt709|bt601|smpte240m|fcc|bt2020, or rgb (no matrix)
    range: str  # limited|full
    colorspace: int = 2
    color_range: int = 0
    primaries: int = 2
    trc: int = 2
    assumed: bool = False

    @property
    def swscale_matrix(self) -> int | None:
        """The matrix swscale converts with (None for RGB pixels)."""
        return next((m for name, m in MATRICES.values() if name == self.matrix), None)

    def to_json(self) -> dict[str, Any]:
        return {"matrix": self.matrix, "range": self.range, "assumed": self.assumed,
                "tags": {"colorspace": self.colorspace, "color_range": self.color_range,
                         "primaries": self.primaries, "trc": self.trc}}


def resolve_colour(pix_fmt: str, height: int, colorspace: int, color_range: int, primaries: int,
                   trc: int) -> Colour:
    """The conversion of a stream with these tags (see the module doc for untagged ones)."""
    fmt = av().VideoFormat(pix_fmt)
    tags = dict(colorspace=int(colorspace), color_range=int(color_range), primaries=int(primaries),
                trc=int(trc))
    if fmt.is_rgb:
        return Colour("rgb", "full", **tags)
    assumed = False
    if colorspace in MATRICES:
        matrix = MATRICES[colorspace][0]
    else:
        matrix, assumed = ("bt709" if height > HD_LINES else "bt601"), True
    if color_range in RANGES:
        rng = RANGES[color_range]
    else:
        rng, assumed = ("full" if pix_fmt.startswith("yuvj") else "limited"), True
    return Colour(matrix, rng, assumed=assumed, **tags)


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "codec": self.codec, "sample_rate": self.sample_rate,
                "channels": self.channels}


@dataclass(frozen=True)
class StreamNote:
    """A stream of the input that dtk does not write (a second video stream, subtitles, data)."""

    index: int
    type: str
    codec: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "codec": self.codec}

    def __str__(self) -> str:
        return f"stream {self.index} ({self.type}, {self.codec})"


@dataclass(frozen=True)
class VideoInfo:
    """A video file's first video stream and its audio streams.

    `frames`: the frames the container says the stream holds: its frame count where it records one
    (MP4, MOV, AVI), else the count its timestamps imply (`frames_from_timing`): at least its
    packets. A decode that yields fewer accounts for the rest as dropped (`VideoReader.frames`)."""

    path: str
    container: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    frames: int  # packets of the video stream (one per frame), counted when the container has no count
    rate: Fraction | None  # average frame rate (None: unknown)
    time_base: Fraction
    colour: Colour
    audio: tuple[AudioInfo, ...] = field(default_factory=tuple)
    other_streams: int = 0  # subtitle, data... streams (not copied)
    not_copied: tuple[StreamNote, ...] = field(default_factory=tuple)  # the streams no output holds
    # the frame duration (time_base units) when `frames` came from timestamps on the rate's grid:
    # a gap of k steps between two frames is k - 1 frames the demuxer dropped
    frame_step: Fraction | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "container": self.container, "codec": self.codec,
                "size": [self.height, self.width], "pix_fmt": self.pix_fmt, "frames": self.frames,
                "rate": None if self.rate is None else str(self.rate), "time_base": str(self.time_base),
                "colour": self.colour.to_json(), "audio": [a.to_json() for a in self.audio],
                "other_streams": self.other_streams,
                "streams_not_copied": [n.to_json() for n in self.not_copied]}


def is_video_path(path: Path | str) -> bool:
    """True for a file (not a folder) with a video container's suffix (.mp4, .mkv, .mov, ...)."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.is_dir()


def discover_videos(root: Path | str, unreadable: list[tuple[str, str]]) -> list[Frame]:
    """The video files under the folder `root` (any depth, walked as frames are: hidden entries left
    out, symlinked folders entered once), in natural order, each with its path relative to `root`
    (a folder run writes it to OUTPUT/<that path>). A folder that cannot be listed is appended to
    `unreadable`."""
    return [Frame(Path(root), rel) for rel in tree_files(root, VIDEO_EXTENSIONS, unreadable)]


def _open_input(path: Path | str) -> Any:
    """av.open for reading; DtkError (exit 2) for a missing, unreadable or non-video file."""
    mod = av()
    path = Path(path)
    if not path.is_file():
        raise DtkError(f"video {path} does not exist or is not a file")
    try:
        container = mod.open(str(path), "r")
    except (mod.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise DtkError(f"cannot open video {path}: {exc}; is it a video file (mp4, mkv, mov, ...)?"
                       ) from None
    if not container.streams.video:
        container.close()
        raise DtkError(f"{path} holds no video stream (streams: "
                       f"{', '.join(s.type for s in container.streams) or 'none'})")
    return container


def probe(path: Path | str) -> VideoInfo:
    """What `path` holds, read from its headers and packets (no frame is decoded); DtkError when it
    is no readable video or its video stream holds no frame (exit 2)."""
    mod = av()
    container = _open_input(path)
    try:
        vs = container.streams.video[0]
        cc = vs.codec_context
        rate = vs.average_rate or vs.guessed_rate
        counted = int(vs.frames or 0) <= 0  # no count in the container: its packets are counted
        try:
            packets = (p for p in container.demux(vs) if p.size)
            pts = [p.pts for p in packets] if counted else [p.pts for p in itertools.islice(packets, 1)]
        except mod.FFmpegError as exc:
            raise DtkError(f"cannot read video {path}: {exc}") from None
        if not pts:
            raise DtkError(f"{path} holds no video frames (its video stream {vs.index} has no packets): "
                           "nothing to deblur")
        if not cc.width or not cc.height or cc.pix_fmt is None:
            raise DtkError(f"{path}: video stream {vs.index} ({cc.name}) has no size or pixel format; "
                           "the file is damaged or its codec unsupported")
        frames, step = int(vs.frames or 0), None
        if counted:
            frames, step = frames_from_timing(pts, rate, Fraction(vs.time_base), _stream_end(container, vs))
        audio = tuple(AudioInfo(s.index, s.codec_context.name, int(s.codec_context.sample_rate or 0),
                                int(s.codec_context.channels or 0)) for s in container.streams.audio)
        colour = resolve_colour(cc.pix_fmt, cc.height, cc.colorspace, cc.color_range, cc.color_primaries,
                                cc.color_trc)
        kept = {vs.index, *(a.index for a in audio)}
        not_copied = tuple(StreamNote(s.index, s.type, _codec_name(s)) for s in container.streams
                           if s.index not in kept)
        return VideoInfo(path=str(path), container=container.format.name, codec=cc.name, width=cc.width,
                         height=cc.height, pix_fmt=cc.pix_fmt, frames=frames,
                         rate=Fraction(rate) if rate else None, time_base=Fraction(vs.time_base),
                         colour=colour, audio=audio,
                         other_streams=len(container.streams) - 1 - len(audio), not_copied=not_copied,
                         frame_step=step)
    finally:
        container.close()


def _codec_name(stream: Any) -> str:
    try:
        return stream.codec_context.name if stream.codec_context is not None else "unknown"
    except Exception:  # noqa: BLE001 - a data stream without a codec
        return "unknown"


def _stream_end(container: Any, vs: Any) -> Fraction | None:
    """When the video stream ends (seconds), where the file says so: the stream's own duration, or
    a Matroska/WebM file's duration when the stream is its only one; None elsewhere."""
    if vs.duration and vs.start_time is not None:
        return (vs.start_time + vs.duration) * Fraction(vs.time_base)
    if "matroska" in container.format.name and len(container.streams) == 1 and container.duration:
        return Fraction(container.duration, 1_000_000)  # Matroska's duration counts from 0
    return None


def frames_from_timing(pts: list[int | None], rate: Any, time_base: Fraction,
                       end: Fraction | None = None) -> tuple[int, Fraction | None]:
    """(frames, frame step) of a stream whose container records no frame count (Matroska, WebM,
    MPEG-TS, NUT), from its packets' `pts`: when every gap between them is a whole number of frame
    durations at `rate` (a constant rate, holes allowed), the frames from the first to the last
    packet, plus those up to `end` (seconds) after it: the frames the file's timing says it holds,
    of which damaged blocks the demuxer skipped are missing. A variable-rate stream whose gaps are
    not on that grid: its packet count (step None)."""
    counted = len(pts)
    if not rate or None in pts or counted == 0:
        return counted, None
    step = 1 / (Fraction(rate) * time_base)  # one frame, in time_base units
    stamps = sorted(pts)
    slots = 1
    for a, b in itertools.pairwise(stamps):
        k = round((b - a) / step)
        if k < 1 or abs((b - a) - k * step) > step / 4:
            return counted, None
        slots += k
    if end is not None:
        after = round((end / time_base - stamps[-1]) / step) - 1
        slots += max(0, after)
    return max(counted, slots), step


def to_rgb(frame: Any, colour: Colour) -> np.ndarray:
    """A decoded PyAV frame -> H x W x 3 uint8 RGB with the stream's matrix and range."""
    if colour.swscale_matrix is None:
        return frame.to_ndarray(format="rgb24", interpolation=interpolation())
    return frame.to_ndarray(format="rgb24", src_colorspace=colour.swscale_matrix,
                            src_color_range=RANGE_TAGS[colour.range], interpolation=interpolation())


@dataclass(frozen=True)
class DecodedFrame:
    """One frame in presentation order: its index, pts (in the stream's time_base) and RGB image
    (None when it failed to decode: `reason` says why)."""

    index: int
    pts: int | None
    image: np.ndarray | None
    reason: str | None = None
    dropped: bool = False  # a frame the container holds but the demuxer never handed on


class VideoReader:
    """Decode a video file's first video stream to RGB frames; hand every other packet (audio) to
    `on_packet` in file order, untouched. A context manager: the file stays open inside it."""

    def __init__(self, path: Path | str, info: VideoInfo | None = None):
        self.info = info or probe(path)
        self.container = _open_input(path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"

    @property
    def audio_streams(self) -> list[Any]:
        return list(self.container.streams.audio)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    def video_packets(self, on_packet: Callable[[Any], None] | None = None) -> Iterator[Any]:
        """The video stream's packets in file order (the decoder's empty flush packet included); the
        audio streams' packets go to `on_packet` as they come, untouched."""
        keep = {s.index for s in self.audio_streams}
        for packet in self.container.demux():
            if packet.stream.index == self.stream.index:
                yield packet
            elif on_packet is not None and packet.stream.index in keep and packet.size:
                on_packet(packet)

    def frames(self, on_packet: Callable[[Any], None] | None = None) -> Iterator[DecodedFrame]:
        """Every frame of the video stream, in order. A packet the decoder rejects, or a frame it
        flags corrupt, is a `DecodedFrame` with `image` None and the reason (the run lists it);
        so is each frame the container holds that never came (`accounted`)."""
        return accounted(self._decoded(on_packet), self.info)

    def _decoded(self, on_packet: Callable[[Any], None] | None) -> Iterator[DecodedFrame]:
        mod = av()
        for packet in self.video_packets(on_packet):
            try:
                decoded = packet.decode()
            except mod.FFmpegError as exc:
                yield DecodedFrame(0, packet.pts, None,
                                   f"cannot decode the packet at pts {packet.pts}: {exc}")
                continue
            for frame in decoded:
                yield self._frame(0, frame)

    def _frame(self, index: int, frame: Any) -> DecodedFrame:
        if frame.is_corrupt:
            return DecodedFrame(index, frame.pts, None, "the decoder flagged the frame corrupt")
        return DecodedFrame(index, frame.pts, to_rgb(frame, self.info.colour))


def accounted(frames: Iterator[DecodedFrame], info: VideoInfo) -> Iterator[DecodedFrame]:
    """`frames` (a decoder's, in presentation order) numbered 0, 1, ..., with a dropped frame
    (image None) for each frame `info` says the stream holds that the decoder never gave: a hole
    in timestamps on the frame grid (`info.frame_step`), and the frames missing at the end. Every
    frame the container holds is then a frame written, or one listed."""
    index, last = 0, None
    step = info.frame_step
    why = (f"missing from the file, whose container counts {info.frames} frames (damaged data the "
           "demuxer dropped, or a frame left out when it was written)")
    for f in frames:
        if step is not None and f.pts is not None and last is not None:
            for k in range(1, min(round((f.pts - last) / step) - 1, info.frames - index - 1) + 1):
                yield DecodedFrame(index, round(last + k * step), None, why, dropped=True)
                index += 1
        if f.pts is not None:
            last = f.pts if last is None else max(last, f.pts)
        yield DecodedFrame(index, f.pts, f.image, f.reason, f.dropped)
        index += 1
    for k in range(1, info.frames - index + 1):
        pts = round(last + k * step) if step is not None and last is not None else None
        yield DecodedFrame(index, pts, None, why, dropped=True)
        index += 1


@dataclass(frozen=True)
class FramesFolder:
    """A video's frames as `folder/<index:08d>.png`, their pts, and the frames that failed."""

    folder: Path
    pts: list[int | None]
    failed: list[tuple[str, str]]


@contextmanager
def frames_folder(path: Path | str) -> Iterator[FramesFolder]:
    """Decode every frame of the video `path` to PNGs in a temporary folder (removed on exit), for
    the commands that take frame folders (dtk eval)."""
    with tempfile.TemporaryDirectory(prefix="dtk-video-") as scratch, VideoReader(path) as reader:
        pts: list[int | None] = []
        failed: list[tuple[str, str]] = []
        for f in reader.frames():
            pts.append(f.pts)
            if f.image is None:
                failed.append((f"{path}: frame {f.index} (pts {f.pts})", f.reason or "corrupt"))
            else:
                write_png_atomic(Path(scratch) / f"{f.index:08d}.png", f.image)
        yield FramesFolder(Path(scratch), pts, failed)


def cycle_batches(path: Path | str, batch: int) -> Iterator[list[np.ndarray]]:
    """Endless batches of `batch` RGB frames of a video, reopened from its start when it ends
    (frames that fail to decode are left out): `dtk bench --e2e` on a video."""
    info = probe(path)
    chunk: list[np.ndarray] = []
    while True:
        got = 0
        with VideoReader(path, info) as reader:
            for f in reader.frames():
                if f.image is None:
                    continue
                got += 1
                chunk.append(f.image)
                if len(chunk) == batch:
                    yield chunk
                    chunk = []
        if not got:
            raise DtkError(f"{path}: no frame could be decoded")
