"""The one atomic file writer: a unique temporary file beside the target, fsync, rename.

A reader never sees half a file: it finds the old file (or none) or the whole new one. The
temporary file is named `.NAME.XXXXXXXX.tmp` (8 hex digits) in the target's folder, so a run
killed mid-write leaves only names that `stale_temp_files` recognises. Files get the mode the
umask gives (0644 under umask 022), as `open()` would: the temporary file is created with mode
0o666 and the kernel applies the umask (or a folder's default ACL), unlike mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")


def temp_name(path: Path) -> Path:
    """A fresh temporary name for `path`: `.NAME.XXXXXXXX.tmp` in the same folder."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _create_temp(path: Path) -> tuple[int, Path]:
    """A fresh, empty temporary file beside `path` (parents created): (its fd, its path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = temp_name(path)
        try:
            return os.open(tmp, flags, 0o666), tmp  # the umask applies: 0644 under 022
        except FileExistsError:  # pragma: no cover - 1 in 4 billion
            continue


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write `data` to `path` atomically (parents created); returns the path.

    The bytes are fsynced before the rename; on any failure (or interrupt) the temporary
    file is removed and the target is left as it was.
    """
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def making_dirs(folder: Path | str) -> Iterator[Path]:
    """Create `folder` and its missing parents for the block; those it created that the block left
    empty are removed when it ends, deepest first (rmdir only: a folder holding anything stays).
    A run refused or failed leaves no folder it made."""
    folder = Path(folder)
    created = []
    probe = Path(os.path.abspath(folder))
    while not os.path.lexists(probe) and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    finally:
        for path in created:  # deepest first
            try:
                os.rmdir(path)
            except OSError:  # not empty (the run's outputs), or gone
                break


@contextmanager
def atomic_target(path: Path | str) -> Iterator[Path]:
    """A temporary file beside `path` for a writer that needs a file name (an ONNX exporter, a
    TensorRT build, a tool that writes and then checks its own file): the body writes and checks
    it; on a clean exit it is fsynced and renamed to `path`; on any error or interrupt (a failed
    check, Ctrl-C) it is removed and `path` is left as it was (the old file, or none).

    The writer may replace the file (write a new one at the temporary name); a link there is
    never followed, since the rename replaces the name itself.
    """
    path = Path(path)
    fd, tmp = _create_temp(path)
    os.close(fd)
    try:
        yield tmp
        done = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(done)
        finally:
            os.close(done)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stale_temp_files(root: Path | str, suffix: str = "") -> Iterator[Path]:
    """Temporary files of `write_bytes_atomic` under `root` whose target name ends with `suffix`.

    Symlinked folders are not followed: only files dtk itself could have left in this tree.
    """
    for folder, _dirs, files in os.walk(root):
        for name in files:
            m = TEMP_PATTERN.match(name)
            if m and m.group("name").endswith(suffix):
                yield Path(folder) / name


def temp_files_of(path: Path | str) -> list[Path]:
    """The temporary files `temp_name(path)` may have left beside `path` (its own name only)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir()
                  if (m := TEMP_PATTERN.match(p.name)) and m.group("name") == path.name and p.is_file()
                  and not p.is_symlink())


def file_sha256(path: Path | str) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
