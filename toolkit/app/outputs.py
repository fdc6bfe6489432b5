"""The output store: where a run's outputs go and the rules that keep them whole and owned.

One home for what `dtk run` writes beside its frames and videos: output paths (a PNG per frame,
`OUT.mp4` and its manifest, lock and --resumable work folder, `--frames-out` PNGs), the run
manifest (`RunSettings`: what made the outputs; compared on resume), locks (one run at a time per
output), resume (a frame whose PNG is complete, a video whose manifest verifies) and the clean-up
of a killed run's temporary files; on top of toolkit.core.safepaths and toolkit.core.atomic.
app.run, app.video_run and app.preflight use it; it imports no job.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from toolkit.app.request import RunRequest
from toolkit.core import constants
from toolkit.core.atomic import file_sha256, making_dirs, stale_temp_files, temp_files_of, write_bytes_atomic
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame, ignore_pillow_bomb_warning, oriented_size
from toolkit.core.safepaths import check_output_file, check_output_folder
from toolkit.core.tiles import DEFAULT_OVERLAP
from toolkit.core.video import probe

if TYPE_CHECKING:  # engines.spec imports torch; preflight imports this module
    from engines.spec import RunnerSpec


def output_path_for(frame: Frame, out_root: Path | str) -> Path:
    """Where a frame's result goes: `<out_root>/<relative path with a .png suffix>`."""
    return Path(out_root) / Path(PurePosixPath(frame.rel).with_suffix(".png"))


def image_size(path: Path | str) -> tuple[int, int] | None:
    """(H, W) from an image file's header (no full decode), EXIF orientation applied, or None when it
    cannot be read."""
    from PIL import Image

    ignore_pillow_bomb_warning()
    try:
        with Image.open(path) as im:
            return oriented_size(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: length 0, type, CRC


def is_done(path: Path | str, size: tuple[int, int] | None) -> bool:
    """True when `path` is a complete PNG of `size` (H, W) (any size when None).

    Decodes the pixels fully (a damaged image stream fails) and checks that the file ends with
    the IEND chunk: Pillow stops reading after the image data, so a file missing its last bytes
    would otherwise pass.
    """
    from PIL import Image

    ignore_pillow_bomb_warning()
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size < len(PNG_END):
            return False
        with open(path, "rb") as fh:
            fh.seek(-len(PNG_END), os.SEEK_END)
            if fh.read() != PNG_END:
                return False
        with Image.open(path) as im:
            if im.format != "PNG" or (size is not None and (im.size[1], im.size[0]) != tuple(size)):
                return False
            im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return False
    return True


def expected_output_size(frame: Frame, keep_size: bool) -> tuple[int, int] | None:
    """The size a finished output has: 256x448 with keep_size, else the input's (None: unreadable)."""
    return FRAME_SIZE if keep_size else image_size(frame.path)


def split_done(frames: Sequence[Frame], out_root: Path | str, *, keep_size: bool = False,
               overwrite: bool = False) -> tuple[list[Frame], list[Frame]]:
    """(frames still to do, frames whose output is already done) under the resume rule."""
    if overwrite:
        return list(frames), []
    todo, done = [], []
    for f in frames:
        out = output_path_for(f, out_root)
        # no output yet: to do, without reading the input's header (a PNG's EXIF check decodes it)
        size = expected_output_size(f, keep_size) if out.is_file() else None
        (done if size is not None and is_done(out, size) else todo).append(f)
    return todo, done


def check_output_dir(input_dir: Path | str, output_dir: Path | str) -> None:
    """Refuse an OUTPUT equal to INPUT, inside it, or containing it (inputs could be overwritten
    or outputs read back as inputs)."""
    src, dst = Path(input_dir).resolve(), Path(output_dir).resolve()
    if dst == src:
        raise DtkError(f"OUTPUT is the input folder ({dst}): choose another folder; dtk never "
                       "overwrites its inputs")
    if src in dst.parents:
        raise DtkError(f"OUTPUT {dst} is inside INPUT {src}: its PNGs would be read as frames next "
                       "time; choose a folder outside the input")
    if dst in src.parents:
        raise DtkError(f"INPUT {src} is inside OUTPUT {dst}: outputs could overwrite input frames; "
                       "choose an output folder that does not contain the input")
    if dst.exists() and not dst.is_dir():
        raise DtkError(f"OUTPUT {dst} exists and is not a folder")
    check_output_folder(output_dir, "OUTPUT")  # writable, no symlink in it leading out of it


def check_frames_outside(frames: Sequence[Frame], output_dir: Path | str) -> None:
    """Refuse frames that are really files of OUTPUT (INPUT holds a symlink into OUTPUT): a rerun
    would deblur its own outputs."""
    dst = Path(os.path.realpath(output_dir))
    for f in frames:
        real = Path(os.path.realpath(f.path))
        if dst in real.parents:
            raise DtkError(f"frame {f.path} is {real}, inside OUTPUT {dst} (INPUT holds a symlink into "
                           "OUTPUT): dtk would deblur its own outputs; remove the link or choose another "
                           "OUTPUT")

MANIFEST_NAME = ".dtk-run.json"

LOCK_NAME = ".dtk-run.lock"

MANIFEST_FORMAT = "dtk-run/1"

MAX_MANIFEST_BYTES = 1 << 20


def open_own_file(path: Path, flags: int) -> int:
    """os.open for dtk's own files in OUTPUT (the manifest, the lock): never through a symlink
    (O_NOFOLLOW), never blocking on a FIFO (O_NONBLOCK); DtkError unless what is there is a
    regular file with a single link (a hard link to another file would be truncated with it)."""
    flags |= os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    what = "lock" if path.name.endswith(LOCK_NAME) else "run manifest"
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if not os.path.lexists(path):  # creating it failed: the folder is the problem, not the file
            raise DtkError(f"cannot create the {what} {path}: {exc.strerror or exc}; is {path.parent} a "
                           "writable folder? Choose another OUTPUT") from None
        if os.path.islink(path):
            reason = "it is a symlink; dtk never reads or writes its own files through a link"
        elif os.path.isdir(path):
            reason = "it is a folder"
        else:
            reason = exc.strerror or str(exc)
        raise DtkError(f"{what} {path} cannot be used: {reason}; remove it, or choose another "
                       "OUTPUT") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        reason = "it has other hard links" if stat.S_ISREG(st.st_mode) else "it is not a regular file"
        raise DtkError(f"{what} {path} cannot be used: {reason}; remove it, or choose another OUTPUT")
    return fd


@dataclass(frozen=True)
class RunSettings:
    """What makes a run's outputs; recorded in OUTPUT/.dtk-run.json and compared on resume.

    Compared: every field but `model` (the path, for people) and `dtk_version` (recorded for
    provenance; a dtk upgrade alone does not invalidate finished frames).
    """

    model_sha256: str
    backend: str
    precision: str = "fp32"
    blur: str | None = None
    known_blur: str | None = None  # the blur the network is told (--known-blur), None: it decides
    keep_size: bool = False
    network_size: tuple[int, int] = FRAME_SIZE  # (H, W) of the network's input (tiles at native size)
    mode: str = "native"  # "native" (tiles, no resize) or "resize" (the seed's protocol)
    tile_overlap: int | None = DEFAULT_OVERLAP  # native only
    model: str = ""
    dtk_version: str = constants.__version__
    # a video input (app.video_run): its stream, colour conversion and output encoding, JSON values
    video: dict[str, Any] | None = field(default=None, hash=False)

    COMPARED = ("model_sha256", "backend", "precision", "blur", "known_blur", "keep_size", "network_size",
                "mode", "tile_overlap", "video")
    # what a manifest written before a field existed meant by it
    LEGACY = {"mode": "resize", "tile_overlap": None, "video": None, "known_blur": None}

    @classmethod
    def for_spec(cls, spec: RunnerSpec, request: RunRequest | None = None) -> RunSettings:
        """Settings of a run of `spec` (its model file, the one the backend loads, is hashed here)."""
        r = request or RunRequest()
        return cls(model_sha256=file_sha256(spec.model), backend=spec.backend, precision=spec.precision,
                   blur=r.blur, known_blur=r.known_blur, keep_size=r.keep_size, mode=r.mode,
                   tile_overlap=None if r.resize else r.tile_overlap, model=str(spec.model))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "model_sha256": self.model_sha256, "backend": self.backend,
                "precision": self.precision, "blur": self.blur, "known_blur": self.known_blur,
                "keep_size": self.keep_size,
                "network_size": list(self.network_size), "mode": self.mode,
                "tile_overlap": self.tile_overlap, "dtk_version": self.dtk_version, "video": self.video}

    def differences(self, recorded: dict[str, Any]) -> list[str]:
        """'setting: recorded -> now' for each compared setting that differs from `recorded`."""
        now = self.to_json()
        return [f"{k}: {recorded.get(k, self.LEGACY.get(k))!r} in OUTPUT, {now[k]!r} now"
                for k in self.COMPARED if recorded.get(k, self.LEGACY.get(k)) != now[k]]


def read_manifest(output_dir: Path | str) -> dict[str, Any] | None:
    """OUTPUT's run manifest, None when there is none; DtkError when it is unreadable."""
    return read_manifest_file(Path(output_dir) / MANIFEST_NAME)


def read_manifest_file(path: Path) -> dict[str, Any] | None:
    """The run manifest `path` (OUTPUT's, or a video's `OUT.mp4.dtk-run.json`), None when there is
    none; DtkError when it is unreadable or no manifest."""
    if not os.path.lexists(path):
        return None
    try:
        fd = open_own_file(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as fh:
            doc = json.loads(fh.read(MAX_MANIFEST_BYTES).decode())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DtkError(f"unreadable run manifest {path} ({exc}): rerun with --overwrite to redo every "
                       "frame, or choose another OUTPUT") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict):
        raise DtkError(f"{path} is not a dtk run manifest: rerun with --overwrite to redo every frame, "
                       "or choose another OUTPUT")
    return doc


def write_manifest(output_dir: Path | str, settings: RunSettings, *, redo_all: bool) -> Path:
    """Record `settings` in OUTPUT/.dtk-run.json; `redo_all`: an --overwrite run not finished yet."""
    doc = {"format": MANIFEST_FORMAT, "settings": settings.to_json(), "redo_all": redo_all}
    return write_bytes_atomic(Path(output_dir) / MANIFEST_NAME, (json.dumps(doc, indent=2) + "\n").encode())


def check_manifest(output_dir: Path | str, settings: RunSettings, overwrite: bool = False) -> bool:
    """Whether every frame must be redone: DtkError when OUTPUT was made with other settings
    (unless `overwrite`); True also when an --overwrite run into it did not finish."""
    if overwrite:  # its content is not read (a damaged one is replaced), but it must be dtk's own file
        path = Path(output_dir) / MANIFEST_NAME
        if os.path.lexists(path):
            os.close(open_own_file(path, os.O_RDONLY))
        return True
    doc = read_manifest(output_dir)
    if doc is None:
        check_no_unvouched_outputs(output_dir)
        return False
    diffs = settings.differences(doc["settings"])
    if diffs:
        raise DtkError(f"{output_dir} holds outputs made with other settings ({'; '.join(diffs)}): "
                       "rerun with --overwrite to redo every frame, or choose another OUTPUT")
    return bool(doc.get("redo_all"))


def check_no_unvouched_outputs(output_dir: Path | str) -> None:
    """Refuse PNGs in an OUTPUT without a run manifest: nothing says what made them, so they are
    never taken as done (README, "Resume"); --overwrite redoes every frame."""
    root = Path(output_dir)
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        pngs = sorted(f for f in files if f.lower().endswith(".png") and not f.startswith("."))
        if pngs:
            raise DtkError(f"{root} holds PNGs that no run manifest ({MANIFEST_NAME}) vouches for (first: "
                           f"{Path(folder) / pngs[0]}): dtk does not take them as done; rerun with "
                           "--overwrite to redo every frame, or choose an empty OUTPUT")


@contextlib.contextmanager
def output_lock(output_dir: Path | str):
    """Hold OUTPUT/.dtk-run.lock (fcntl.flock, non-blocking); DtkError when another run holds it."""
    with file_lock(Path(output_dir) / LOCK_NAME, output_dir):
        yield

LOCK_TRIES = 5  # a lock file its holder removed as we opened it: open the next one


@contextlib.contextmanager
def file_lock(path: Path, target: Path | str):
    """Hold the lock file `path` guarding `target` (an OUTPUT folder, a video); DtkError naming
    `target` when another run holds it. One rule for every lock (README, "What dtk writes"): the
    file exists only while a run holds it (deleted before the lock is released), and the folders
    made for it are removed again when the run leaves them empty (`making_dirs`): a run refused
    or failed leaves nothing behind."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    with making_dirs(path.parent):
        for _ in range(LOCK_TRIES):
            fd = open_own_file(path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                os.close(fd)
                raise DtkError(f"another dtk run is writing into {target} (lock {path} held"
                               + (f" by process {holder}" if holder else "") + "): wait for it to finish, "
                               "or choose another OUTPUT") from None
            if _same_file(fd, path):
                break
            os.close(fd)  # its holder removed it as we opened it: that run is over
        else:  # pragma: no cover - five runs ending as we start
            raise DtkError(f"another dtk run is writing into {target} (lock {path} keeps changing): wait "
                           "for it to finish, or choose another OUTPUT")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # before the lock is released: the next run makes its own
            os.close(fd)  # releases the lock


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def remove_stale_temp_files(output_dir: Path | str) -> int:
    """Delete the temporary PNGs (`.NAME.png.XXXXXXXX.tmp`) a killed run left; returns how many.
    Call with the output lock held: a running writer's temporary files look the same."""
    removed = 0
    for path in stale_temp_files(output_dir, ".png"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def claim_output(output_dir: Path | str, settings: RunSettings | None, overwrite: bool):
    """Lock OUTPUT, check and record its manifest (`settings` None: no manifest), clear stale
    temporary files. Yields a dict: "overwrite" is what the run must apply (True also when an
    earlier --overwrite run did not finish); the caller sets "finished" when every frame was
    handled, which clears the manifest's unfinished-overwrite mark."""
    output_dir = Path(output_dir)
    with output_lock(output_dir):
        redo_all = check_manifest(output_dir, settings, overwrite) if settings is not None else overwrite
        if settings is not None:
            write_manifest(output_dir, settings, redo_all=redo_all)
        remove_stale_temp_files(output_dir)
        state = {"overwrite": redo_all, "finished": False}
        yield state
        if settings is not None and redo_all and state["finished"]:
            write_manifest(output_dir, settings, redo_all=False)

MANIFEST_SUFFIX = ".dtk-run.json"


def manifest_path(output: Path | str) -> Path:
    """The run manifest of a video output: `OUT.mp4.dtk-run.json` beside it."""
    output = Path(output)
    return output.with_name(output.name + MANIFEST_SUFFIX)


def lock_path_for(output: Path | str) -> Path:
    """The lock file of a video output: `.OUT.mp4.dtk-run.lock` beside it while a run writes it."""
    output = Path(output)
    return output.with_name(f".{output.name}.dtk-run.lock")


def work_dir_for(output: Path | str) -> Path:
    """--resumable's folder of deblurred frames beside the output: `.OUT.mp4.dtk-frames`."""
    output = Path(output)
    return output.with_name(f".{output.name}.dtk-frames")


def frame_png(frames_out: Path | str, index: int) -> Path:
    """Where --frames-out puts frame `index` (0-based, presentation order)."""
    return Path(frames_out) / f"{index:08d}.png"


def check_video_output(output: Path, flag: str, *, inputs: list[Path | str | None], overwrite: bool,
                       resumable: bool) -> None:
    """May dtk write the video `output` (named `flag`), its run manifest and --resumable's work
    folder? (toolkit.core.safepaths' rule; an existing video only with `overwrite`.)"""
    check_output_file(output, flag, inputs=inputs, overwrite=overwrite)
    check_output_file(manifest_path(output), f"{flag} (its run manifest)", inputs=inputs)
    check_output_file(lock_path_for(output), f"{flag} (its lock file)", inputs=inputs)
    if resumable:
        check_output_folder(work_dir_for(output), "--resumable (its work folder)", inputs=inputs)


def output_check(output: Path) -> dict[str, Any]:
    """What a finished video output is, for its manifest and a rerun's check (a probe, no decode):
    its bytes, frames, size and codec."""
    found = probe(output)
    return {"bytes": output.stat().st_size, "frames": found.frames, "size": [found.height, found.width],
            "codec": found.codec}


def output_problem(output: Path, recorded: Any) -> str | None:
    """Why the video `output` is not the one its manifest recorded (`recorded`: the manifest's
    "check"), or None when it is: its byte count first, then a probe of its frames, size, codec."""
    if not isinstance(recorded, dict):
        return "its manifest records no size or frame count to check it against"
    size = output.stat().st_size
    if size != recorded.get("bytes"):
        return f"{recorded.get('bytes')} bytes recorded, {size} found"
    try:
        found = output_check(output)
    except DtkError as exc:
        return f"it cannot be read ({exc})"
    return "; ".join(f"{key} {recorded.get(key)} recorded, {value} found" for key, value in found.items()
                     if value != recorded.get(key)) or None


def remove_work_dir(work_dir: Path) -> None:
    """Delete --resumable's work folder once the video is in place: only the files dtk wrote there
    (its frame PNGs, manifest and lock); a folder holding anything else is left."""
    for path in work_dir.iterdir():
        if path.is_file() and not path.is_symlink() and (
                path.name in (MANIFEST_NAME, LOCK_NAME) or (path.suffix == ".png" and path.stem.isdigit())):
            path.unlink()
    with contextlib.suppress(OSError):
        work_dir.rmdir()


def video_resume_state(output: Path, settings: RunSettings, overwrite: bool) -> tuple[bool, bool, str | None]:
    """(done, ours, untrusted) for a video `output`: done when its manifest records a run with these
    settings that left no frame out and the video is still the one it recorded (bytes, frames,
    size, codec: `output_problem`): the rerun skips it; ours when the manifest records these
    settings (the video may be redone without --overwrite); untrusted says why a video the manifest
    vouched for is redone (it changed since: truncated, replaced), as a damaged PNG of a frame
    folder is. A video made with other settings is refused unless `overwrite` (DtkError), as a
    frame folder's outputs are."""
    if overwrite:
        return False, True, None
    doc = read_manifest_file(manifest_path(output))
    if doc is None:
        return False, False, None
    diffs = settings.differences(doc["settings"])
    if diffs and os.path.lexists(output):
        raise DtkError(f"{output} was made with other settings ({'; '.join(diffs)}): rerun with --overwrite "
                       "to redo it, or choose another OUTPUT")
    if diffs or doc.get("failed") != 0 or not output.is_file() or output.is_symlink():
        return False, not diffs, None
    problem = output_problem(output, doc.get("check"))
    if problem is None:
        return True, True, None
    return False, True, f"{output} is not the video its run manifest recorded ({problem}): redoing it"


def video_output_done(output: Path, settings: RunSettings, flag: str, *, inputs: list[Path | str | None],
                      overwrite: bool, resumable: bool) -> tuple[bool, str | None]:
    """The one rule for a video dtk writes, alone or in a folder run (before the model loads):
    (done, untrusted): done (skip it) when its manifest records these settings, no frame left out,
    and the video verifies; redone when it records these settings (untrusted: why a video it
    vouched for is redone); an existing video made otherwise, or not by dtk, only with `overwrite`
    (DtkError); the paths as check_video_output checks them."""
    done, ours, untrusted = video_resume_state(output, settings, overwrite)
    check_video_output(output, flag, inputs=inputs, overwrite=overwrite or ours, resumable=resumable)
    return done, untrusted


@contextlib.contextmanager
def claim_video(output: Path, settings: RunSettings, *, inputs: list[Path | str | None], overwrite: bool,
                resumable: bool):
    """Lock the video `output` (`.OUT.mp4.dtk-run.lock` beside it, inode re-checked), remove the
    temporary files a killed run left, and yield `video_output_done`'s (done, untrusted)."""
    with file_lock(lock_path_for(output), output):
        for tmp in temp_files_of(output):  # a killed run's: a live one would hold the lock
            tmp.unlink(missing_ok=True)
        yield video_output_done(output, settings, "-o", inputs=inputs, overwrite=overwrite,
                                resumable=resumable)


def write_video_manifest(output: Path, settings: RunSettings, *, source: Path, written: int,
                         failed: int) -> None:
    """`OUT.mp4.dtk-run.json`, after the video is in place: its settings and what was written
    (frames, and a probe of the file that a rerun verifies)."""
    doc = {"format": MANIFEST_FORMAT, "settings": settings.to_json(), "input": str(source),
           "output": str(output), "written": written, "failed": failed, "check": output_check(output)}
    write_bytes_atomic(manifest_path(output), (json.dumps(doc, indent=2) + "\n").encode())
