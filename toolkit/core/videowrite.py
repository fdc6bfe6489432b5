"""Video files out: encode RGB frames with the input's timing, size and colour, copy its audio.

Each frame keeps its input pts in the input's time_base (variable and fractional rates carry
over); the stream is tagged with the input's colour tags and converted from RGB with the matrix
and range the input was decoded with (toolkit.core.video); chroma siting is tagged "center", the
siting the conversion produces. Audio packets are muxed as read: the
same bytes, no decode. The file is written to a temporary name beside the target
(toolkit.core.atomic.temp_name) and renamed at the end: a failed or interrupted run never leaves a
video under the final name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.atomic import temp_name
from toolkit.core.errors import DtkError
from toolkit.core.video import RANGE_TAGS, VideoInfo, av, interpolation

# suffix -> FFmpeg muxer (the temporary name ends in .tmp, so the muxer is named, not guessed)
MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
          ".avi": "avi", ".nut": "nut", ".ts": "mpegts"}
# encoders with a CRF scale: (default, largest)
CRF = {"libx264": (18, 51), "libx264rgb": (18, 51), "libx265": (20, 51), "libvpx-vp9": (24, 63),
       "libsvtav1": (30, 63)}
LOSSLESS = ("ffv1", "utvideo", "huffyuv", "png", "qtrle")
# swscale's RGB -> YUV conversion puts subsampled chroma at the centre of its luma samples; the
# output is tagged so, or a decoder assuming H.264's default (left) would shift chroma half a pixel
CHROMA_SITING = "center"


def default_codec(muxer: str | None = None) -> str:
    """libx264 when the installed FFmpeg has it and the `muxer` (None: any) can hold it, else
    libvpx-vp9 (WebM), else the first lossless encoder that fits."""
    mod = av()
    held = held_codecs(muxer) if muxer else set()
    for name in ("libx264", "libvpx-vp9", *LOSSLESS):
        if name in mod.codecs_available and (not held or {name, mod.Codec(name, "w").canonical_name} & held):
            return name
    raise DtkError(f"this PyAV build has no default video encoder a {muxer or 'video'} file can hold; "
                   "pass --codec")


# muxers FFmpeg cannot query for the codecs they hold (no query_codec): PyAV lists only their
# defaults (MPEG-TS: MPEG-1/2 video and audio), though they hold H.264, HEVC, AAC...
UNLISTED_MUXERS = frozenset({"mpegts"})


def held_codecs(muxer: str) -> set[str]:
    """The codecs a `muxer` can hold (empty: one that does not list them, e.g. MPEG-TS)."""
    if muxer in UNLISTED_MUXERS:
        return set()
    container = av().open(os.devnull, "w", format=muxer)
    try:
        return set(container.supported_codecs or ())
    finally:
        container.close()


def muxer_for(path: Path | str) -> str:
    """The FFmpeg muxer of an output video's suffix; DtkError for another suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in MUXERS:
        raise DtkError(f"cannot write a video named {Path(path).name}: give it one of the suffixes "
                       f"{', '.join(sorted(MUXERS))}")
    return MUXERS[suffix]


def check_codec(codec: str, crf: int | None) -> None:
    """DtkError unless `codec` is a video encoder of this FFmpeg and `crf` fits it."""
    mod = av()
    try:
        found = mod.Codec(codec, "w")
    except (mod.FFmpegError, ValueError):
        found = None
    if found is None or found.type != "video":
        raise DtkError(f"unknown video encoder --codec {codec!r} in this PyAV build: try libx264, "
                       f"libx265, libvpx-vp9, ffv1 (lossless) or utvideo (lossless)")
    if crf is not None and codec not in CRF:
        raise DtkError(f"--crf is for {', '.join(CRF)}; {codec} has no CRF scale (drop --crf)")
    if crf is not None:
        from toolkit.core.bounds import check_number

        check_number("--crf", crf, min=0, max=CRF[codec][1], hint=f"{codec}: 0 = lossless")


def check_container(muxer: str, codec: str, audio: list[str]) -> None:
    """DtkError unless the `muxer` can hold the video encoder's codec and each copied audio codec."""
    mod = av()
    held = held_codecs(muxer)
    if not held:  # a muxer that does not list its codecs (MPEG-TS): FFmpeg decides when writing
        return
    video = {codec, mod.Codec(codec, "w").canonical_name}
    if not video & held:
        raise DtkError(f"a {muxer} file cannot hold {codec} video (in this FFmpeg): choose another --codec "
                       "or output suffix")
    for name in audio:
        if name not in held:
            raise DtkError(f"a {muxer} file cannot hold the input's {name} audio (copied untouched): choose "
                           "another output suffix (.mkv or .mov hold most)")


def choose_pix_fmt(codec: str, source: str, wanted: str | None = None,
                   size: tuple[int, int] | None = None) -> str:
    """The output pixel format: `wanted`, else the input's when the encoder takes it, else the
    encoder's first format of the same family (YUV or RGB); DtkError for a format it cannot take.
    A frame `size` (H, W) the default's chroma subsampling cannot hold (an odd side in 4:2:0) gets
    the encoder's format without that subsampling instead (yuv444p): the size is kept, never padded."""
    mod = av()
    formats = [f.name for f in (mod.Codec(codec, "w").video_formats or [])]
    if wanted is not None:
        if formats and wanted not in formats:
            raise DtkError(f"--pix-fmt {wanted}: {codec} takes {', '.join(formats)}")
        return wanted
    rgb = mod.VideoFormat(source).is_rgb
    same = [f for f in formats if mod.VideoFormat(f).is_rgb == rgb and not f.startswith("yuva")]
    chosen = source if not formats or source in formats else (same or formats)[0]
    if size is None or holds_size(chosen, size):
        return chosen
    full = [f for f in [chosen.replace("420", "444").replace("422", "444"), *same, *formats]
            if f in formats and holds_size(f, size)]
    return full[0] if full else chosen  # none: the encoder is tried as it is (check_encoder_opens)


def holds_size(pix_fmt: str, size: tuple[int, int]) -> bool:
    """Whether frames of `size` (H, W) fit `pix_fmt`'s chroma subsampling exactly (4:2:0: even
    sides; 4:4:4 and RGB: any)."""
    fmt = av().VideoFormat(pix_fmt)
    return all(side % (64 // sub) == 0 for side, sub in ((size[0], fmt.chroma_height(64)),
                                                         (size[1], fmt.chroma_width(64))))


@dataclass(frozen=True)
class EncodeSettings:
    """How the output video is encoded (recorded in the manifest and the --json summary)."""

    codec: str
    crf: int | None
    pix_fmt: str
    muxer: str

    def to_json(self) -> dict[str, Any]:
        return {"codec": self.codec, "crf": self.crf, "pix_fmt": self.pix_fmt, "muxer": self.muxer}


def check_encoder(codec: str | None, crf: int | None = None, pix_fmt: str | None = None,
                  muxer: str | None = None) -> str:
    """The encoder of --codec (None: `default_codec(muxer)`), checked with --crf and --pix-fmt before
    any video is probed (a folder run checks its options once for all its videos)."""
    codec = codec or default_codec(muxer)
    check_codec(codec, crf)
    if pix_fmt is not None:
        choose_pix_fmt(codec, pix_fmt, pix_fmt)
    return codec


def encode_settings(path: Path | str, info: VideoInfo, codec: str | None = None, crf: int | None = None,
                    pix_fmt: str | None = None) -> EncodeSettings:
    """Check and fill the output options (before any model loads)."""
    muxer = muxer_for(path)
    codec = check_encoder(codec, crf, muxer=muxer)
    check_container(muxer, codec, [a.codec for a in info.audio])
    if crf is None and codec in CRF:
        crf = CRF[codec][0]
    settings = EncodeSettings(codec, crf, choose_pix_fmt(codec, info.pix_fmt, pix_fmt, info.size), muxer)
    check_encoder_opens(info, settings)
    return settings


def check_encoder_opens(info: VideoInfo, settings: EncodeSettings) -> None:
    """Open the encoder as the output will (size, pixel format, rate, options, colour) and close it:
    what it refuses (libx264: an odd side in 4:2:0) is a DtkError before any model loads."""
    mod = av()
    cc = mod.CodecContext.create(settings.codec, "w")
    configure_encoder(cc, info, settings)
    try:
        cc.open()
    except (mod.FFmpegError, ValueError) as exc:
        why = f"{exc}" if holds_size(settings.pix_fmt, info.size) else (
            f"{settings.pix_fmt}'s chroma subsampling needs an even width and height (without --pix-fmt "
            "dtk writes such a size as 4:4:4 where the encoder takes it)")
        raise DtkError(f"{info.path}: {settings.codec} cannot encode {info.width}x{info.height} frames as "
                       f"{settings.pix_fmt}: {why}; choose another --codec or --pix-fmt") from None
    finally:
        with contextlib.suppress(Exception):
            cc.close()


def encoder_options(settings: EncodeSettings) -> dict[str, str]:
    """The encoder's private options: its CRF, and the chroma siting of a YUV output."""
    options = {"crf": str(settings.crf)} if settings.crf is not None else {}
    if not av().VideoFormat(settings.pix_fmt).is_rgb:
        options["chroma_sample_location"] = CHROMA_SITING
    return options


def configure_encoder(cc: Any, info: VideoInfo, settings: EncodeSettings) -> None:
    """Set an encoder's size, pixel format, time base, rate, options and colour tags: the input's."""
    cc.width, cc.height, cc.pix_fmt = info.width, info.height, settings.pix_fmt
    cc.time_base = info.time_base
    if info.rate is not None:
        cc.framerate = info.rate
    cc.options = {**dict(cc.options or {}), **encoder_options(settings)}
    c = info.colour
    cc.colorspace, cc.color_range = c.colorspace, c.color_range
    cc.color_primaries, cc.color_trc = c.primaries, c.trc


class VideoWriter:
    """Encode RGB frames to `path` (via a temporary file; `commit()` renames it into place)."""

    def __init__(self, path: Path | str, info: VideoInfo, settings: EncodeSettings,
                 audio_templates: Sequence[Any] = ()):
        mod = av()
        self.path, self.info, self.settings = Path(path), info, settings
        self.tmp = temp_name(self.path)
        self._committed = False
        try:
            self.container = mod.open(str(self.tmp), "w", format=settings.muxer)
        except (mod.FFmpegError, OSError) as exc:
            raise DtkError(f"cannot create {self.tmp}: {exc}") from None
        try:
            self.stream = self._video_stream(info, settings)
            self.audio = {t.index: self.container.add_stream_from_template(t) for t in audio_templates}
        except (mod.FFmpegError, ValueError) as exc:
            self.abort()
            raise DtkError(f"cannot write {settings.codec} ({settings.pix_fmt}) with its audio into a "
                           f"{settings.muxer} file: {exc}; try another --codec or output suffix") from None
        self.colour = info.colour
        self.rgb_out = mod.VideoFormat(settings.pix_fmt).is_rgb

    def _video_stream(self, info: VideoInfo, settings: EncodeSettings) -> Any:
        stream = self.container.add_stream(settings.codec, rate=info.rate, options=encoder_options(settings))
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, settings.pix_fmt
        stream.time_base = info.time_base
        configure_encoder(stream.codec_context, info, settings)
        return stream

    def copy_packet(self, packet: Any) -> None:
        """Mux an input packet (audio) as it is."""
        packet.stream = self.audio[packet.stream.index]
        self._mux(packet)

    def write(self, image: np.ndarray, pts: int | None) -> None:
        """Encode one H x W x 3 uint8 RGB frame of the video's size at `pts` (the input's, in its
        time_base); DtkError for a frame of another size (the encoder would rescale it)."""
        mod = av()
        if image.shape[:2] != self.info.size:
            raise DtkError(f"cannot encode a {image.shape[1]}x{image.shape[0]} frame into {self.path}: the "
                           f"video is {self.info.width}x{self.info.height}")
        frame = mod.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self.rgb_out or self.colour.swscale_matrix is None:
            frame = frame.reformat(format=self.settings.pix_fmt, interpolation=interpolation())
        else:
            frame = frame.reformat(format=self.settings.pix_fmt, dst_colorspace=self.colour.swscale_matrix,
                                   dst_color_range=RANGE_TAGS[self.colour.range],
                                   interpolation=interpolation())
        frame.pts, frame.time_base = pts, self.info.time_base
        try:
            packets = self.stream.encode(frame)
        except (mod.FFmpegError, ValueError) as exc:
            raise DtkError(f"cannot encode {self.path} with {self.settings.codec} ({self.settings.pix_fmt}, "
                           f"{self.info.width}x{self.info.height}): {exc}") from None
        for packet in packets:
            self._mux(packet)

    def _mux(self, packet: Any) -> None:
        mod = av()
        try:
            self.container.mux(packet)
        except mod.FFmpegError as exc:
            raise DtkError(f"cannot write {self.path}: {exc}") from None

    def commit(self) -> Path:
        """Flush the encoder, close, fsync and rename the file to its final name."""
        mod = av()
        try:
            for packet in self.stream.encode(None):
                self._mux(packet)
            self.container.close()
            with open(self.tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.path)
        except (OSError, mod.FFmpegError) as exc:
            self.abort()
            raise DtkError(f"cannot write {self.path}: {exc} (check free space and permissions)") from None
        except BaseException:
            self.abort()
            raise
        self._committed = True
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (nothing appears under the final name)."""
        if self._committed:
            return
        with contextlib.suppress(Exception):  # a half-written file: deleted anyway
            self.container.close()
        self.tmp.unlink(missing_ok=True)
