"""The one rule for "may dtk write this path?", checked by every command before any work.

A file dtk writes (a report: --json, --csv, --plot, --export-times; an artefact: the -o of export,
quantize, build-engine) and a folder it writes into (dtk run's OUTPUT, train's run folder, dtk
data's DIR) pass `check_output_file` / `check_output_folder` first:

- not an input: not one of the command's input files, not inside one of its input folders (a
  report there would replace a frame, or be read as one next time);
- not a folder (for a file), not a file (for a folder), not a FIFO, socket or device;
- its folder is a folder dtk can write (a missing one is created later when its nearest existing
  ancestor is a writable folder);
- an existing artefact is replaced only with --overwrite (reports are rewritten by each run, as
  `> FILE` would: a report path that exists as a regular file is replaced);
- no symlink under an output folder leads out of it (with --overwrite too): dtk would write
  through it into someone else's files.

Writes themselves go through `toolkit.core.atomic` (a fresh temporary file, then rename), which
replaces a symlink at the target instead of writing through it. A folder dtk fills with files of
its own (`dtk data`'s DIR) is an `OwnedFolder`: a manifest names the files dtk wrote there, and no
other file is replaced without --overwrite.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from toolkit.core.atomic import TEMP_PATTERN, file_sha256, write_bytes_atomic
from toolkit.core.errors import DtkError

STDOUT = "-"


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _input_clash(target: Path, inputs: Iterable[Path | str | None]) -> str | None:
    """Why `target` would touch an input (None: it would not). Compares real paths, so a link
    to an input is caught as the input itself."""
    candidates = {Path(os.path.abspath(target)), _real(target)}
    for given in inputs:
        if given is None or str(given) == STDOUT:
            continue
        given = Path(given)
        real = _real(given)
        if real.is_dir():
            for c in candidates:
                if _inside(c, real):
                    return f"it is inside the input folder {given}"
        elif any(c == real or c == Path(os.path.abspath(given)) for c in candidates):
            return f"it is the input {given}"
    return None


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_folder_writable(folder: Path, flag: str, shown: Path) -> None:
    """DtkError unless `folder` (or, when missing, its nearest existing ancestor) is a folder dtk
    may create files in."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise DtkError(f"cannot write {flag} {shown}: {existing} is not a folder")
    what = "folder" if existing == Path(os.path.abspath(folder)) else "nearest existing folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DtkError(f"cannot write {flag} {shown}: the {what} {existing} is not writable "
                       "(permission denied); choose another path")
    problem = _cannot_create_in(existing)
    if problem:
        raise DtkError(f"cannot write {flag} {shown}: no file can be created in the {what} {existing} "
                       f"({problem}): it is not a writable folder of a regular file system (a virtual one "
                       "such as /proc or /sys, read-only, or full); choose another path")


def _cannot_create_in(folder: Path) -> str | None:
    """Why no file can be created in `folder`, found by creating and deleting one (root passes
    os.access everywhere, /proc included), or None when one can."""
    probe = folder / f".dtk-write-check.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:  # pragma: no cover - 1 in 4 billion: something was created, so one can
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    probe.unlink(missing_ok=True)
    return None


def check_output_file(path: Path | str | None, flag: str, *, inputs: Iterable[Path | str | None] = (),
                      overwrite: bool | None = None) -> None:
    """DtkError unless dtk may write the file `path` (named `flag` in messages); None and '-'
    (stdout) pass. `overwrite`: None for a report (an existing regular file is replaced), else
    whether an existing file may be replaced (the command's --overwrite)."""
    if path is None or str(path) == STDOUT:
        return
    path = Path(path)
    clash = _input_clash(path, inputs)
    if clash:
        raise DtkError(f"refusing to write {flag} {path}: {clash}; dtk never writes over its inputs, "
                       "choose another path")
    if os.path.lexists(path):
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) or (stat.S_ISLNK(st.st_mode) and path.is_dir()):
            raise DtkError(f"cannot write {flag} {path}: it is a folder; give a file path")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise DtkError(f"cannot write {flag} {path}: it is not a regular file (a FIFO, socket or "
                           "device); give a file path")
        if overwrite is False:
            raise DtkError(f"{path} already exists: pass --overwrite to replace it, or choose another "
                           f"{flag}")
    _check_folder_writable(path.parent, flag, path)


def links_out_of(root: Path | str) -> list[Path]:
    """Symlinks under `root` (not followed) whose target lies outside `root`, or nowhere."""
    root = Path(root)
    real_root = _real(root)
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            if p.is_symlink():
                target = _real(p)
                if not (_inside(target, real_root) and target.exists()):
                    found.append(p)
    return found


def check_no_links_out(root: Path | str, flag: str) -> None:
    """DtkError when a symlink under the output folder `root` leads out of it: dtk would read or
    write through it (a link to the input folder would have its frames replaced)."""
    if not Path(root).is_dir():
        return
    links = links_out_of(root)
    if links:
        first = links[0]
        raise DtkError(f"{flag} {root} holds {len(links)} symlink(s) leading out of it (first: {first} -> "
                       f"{os.path.realpath(first)}); dtk never writes through a link, with --overwrite "
                       "neither: remove the link(s) or choose another folder")


def check_output_folder(path: Path | str, flag: str, *, inputs: Iterable[Path | str | None] = ()) -> None:
    """DtkError unless dtk may write files into the folder `path` (named `flag`): not an input nor
    inside one, not a file, writable (or creatable), no symlink inside leading out of it."""
    path = Path(path)
    clash = _input_clash(path, inputs)
    if clash:
        raise DtkError(f"refusing to write into {flag} {path}: {clash}; dtk never writes over its inputs, "
                       "choose another folder")
    if os.path.lexists(path) and not path.is_dir():
        raise DtkError(f"cannot write into {flag} {path}: it exists and is not a folder")
    _check_folder_writable(path, flag, path)
    check_no_links_out(path, flag)


DATA_MANIFEST = ".dtk-data.json"
DATA_FORMAT = "dtk-data/1"


class OwnedFolder:
    """A folder dtk fills with files of its own (`dtk data demo|photos` DIR): which files dtk wrote
    there, each with its SHA-256, in DIR/.dtk-data.json, so that a file dtk did not write is never
    replaced or removed without --overwrite (README "What dtk writes").

    - `check()`, before any work: DtkError when DIR holds a file the manifest does not vouch for
      (not listed, or changed since dtk wrote it: its bytes no longer match), unless `overwrite`
      (then such a file is replaced only when dtk writes that very name; the others stay).
      A rerun into dtk's own set (every file vouched for) needs no --overwrite.
    - `write(rel, data)`: the name is claimed in the manifest first, then the file is written
      atomically and its SHA-256 recorded, so a killed run leaves only files the manifest names.
    - `remove_unlisted(keep)`: files dtk wrote before (and unchanged since) that this run did not
      write again are removed (a photo an earlier build held); never any other file.
    """

    def __init__(self, root: Path | str, flag: str = "DIR", *, overwrite: bool = False):
        self.root, self.flag, self.overwrite = Path(root), flag, overwrite
        self.manifest = self.root / DATA_MANIFEST
        self.files: dict[str, str | None] = self._load()
        self.written: set[str] = set()

    def _load(self) -> dict[str, str | None]:
        if not os.path.lexists(self.manifest):
            return {}
        if not stat.S_ISREG(os.lstat(self.manifest).st_mode):
            raise DtkError(f"{self.manifest} is not a regular file (a link, folder or FIFO): remove it, or "
                           f"choose another {self.flag}")
        try:
            doc = json.loads(self.manifest.read_text())
            files = doc["files"] if doc.get("format") == DATA_FORMAT else None
            if not isinstance(files, dict):
                raise ValueError("not a dtk data manifest")
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            if self.overwrite:
                return {}
            raise DtkError(f"{self.manifest} is unreadable ({exc}): pass --overwrite to rewrite {self.root} "
                           f"(its files are replaced only where dtk writes the same name), or choose "
                           f"another {self.flag}") from None
        return {str(k): v if isinstance(v, str) else None for k, v in files.items()}

    def _vouched(self, rel: str) -> bool:
        """True when the file `rel` is dtk's: listed, and unchanged since dtk wrote it (a listed
        name without digest was claimed by a run killed while it wrote it)."""
        if rel not in self.files:
            return False
        digest = self.files[rel]
        path = self.root / rel
        return digest is None or (path.is_file() and not path.is_symlink() and file_sha256(path) == digest)

    def foreign_files(self, same_as: Callable[[str], bytes | None] | None = None) -> list[str]:
        """Files under DIR (relative, sorted) that dtk's manifest does not vouch for; the manifest
        and dtk's own temporary files are not counted, nor a file whose bytes are those dtk would
        write at its name (`same_as(rel)`: rewriting it loses nothing, e.g. a demo tree an older
        dtk wrote without a manifest)."""
        if not self.root.is_dir():
            return []
        found = []
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                rel = os.path.relpath(os.path.join(folder, name), self.root)
                if rel == DATA_MANIFEST or TEMP_PATTERN.match(name):
                    continue
                if not self._vouched(rel) and not self._same(rel, same_as):
                    found.append(rel)
        return sorted(found)

    def _same(self, rel: str, same_as: Callable[[str], bytes | None] | None) -> bool:
        if same_as is None:
            return False
        expected = same_as(rel)
        path = self.root / rel
        return (expected is not None and path.is_file() and not path.is_symlink()
                and path.stat().st_size == len(expected) and path.read_bytes() == expected)

    def check(self, inputs: Iterable[Path | str | None] = (),
              same_as: Callable[[str], bytes | None] | None = None) -> None:
        """DtkError unless dtk may fill DIR: `check_output_folder` (not an input nor inside one, a
        writable folder, no link out of it), then the files in it (see the class doc and
        `foreign_files`)."""
        check_output_folder(self.root, self.flag, inputs=inputs)
        foreign = [] if self.overwrite else self.foreign_files(same_as)
        if foreign:
            raise DtkError(f"{self.flag} {self.root} holds {len(foreign)} file(s) dtk did not write there "
                           f"(first: {foreign[0]}); dtk never replaces them: choose an empty or new folder, "
                           "or pass --overwrite to replace the files dtk writes (the others stay)")

    def write(self, rel: str, data: bytes) -> Path:
        """Write the file DIR/`rel` atomically, claimed in the manifest first; DtkError when a file
        dtk did not write is there and `overwrite` is off (it appeared after `check`)."""
        path = self.root / rel
        if (os.path.lexists(path) and not self.overwrite and not self._vouched(rel)
                and not self._same(rel, lambda _rel: data)):
            raise DtkError(f"{path} is not a file dtk wrote: pass --overwrite to replace it, or choose "
                           f"another {self.flag}")
        if rel not in self.files or self.files[rel] is not None:
            self.files[rel] = None
            self.save()
        write_bytes_atomic(path, data)
        self.files[rel] = file_sha256(path)
        self.written.add(rel)
        return path

    def remove_unlisted(self, keep: set[str]) -> list[str]:
        """Remove the files dtk wrote in an earlier run (and nobody changed since) that are not in
        `keep`; returns them. Files dtk did not write are never touched."""
        gone = []
        for rel in sorted(set(self.files) - keep):
            path = self.root / rel
            if path.is_file() and not path.is_symlink() and self._vouched(rel):
                path.unlink()
                gone.append(rel)
            if not os.path.lexists(path):
                del self.files[rel]
        return gone

    def save(self) -> None:
        """Record the manifest (atomically)."""
        from toolkit.core.atomic import write_bytes_atomic

        doc = {"format": DATA_FORMAT, "files": dict(sorted(self.files.items()))}
        write_bytes_atomic(self.manifest, (json.dumps(doc, indent=1) + "\n").encode())
