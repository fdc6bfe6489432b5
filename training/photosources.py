"""Where the photo set's photos come from: fetching the packages, reading their archives, judging JPEGs.

Only `dtk data photos` calls the fetchers (never a model run): Debian packages through
`apt-get download NAME` + `dpkg -x`, PyPI files through `pip download --no-deps` (sdists with
`--no-binary NAME NAME`), into a cache folder (default `~/.cache/dtk/photos`). Some photos live in
archives: Enlightenment's `.edj` files (EET: the entries are plain JPEG blobs, found by their
markers) and Qt's `.rcc` resource files (a tree of named, optionally zlib-compressed entries).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.errors import DtkError

DEFAULT_CACHE = Path("~/.cache/dtk/photos")

# --- JPEG blobs inside other files (EET / .edj) ---------------------------------------------------

_STANDALONE = {0xD8, 0x01, *range(0xD0, 0xD8)}  # markers without a length field


def jpeg_end(data: bytes, start: int) -> int | None:
    """Index just past the EOI of the JPEG whose SOI is at `start`, walking its segments; None if cut.

    Segments are skipped by their length; after each SOS the entropy-coded data runs to the next
    marker that is neither a stuffed 0xFF00 nor a restart marker, so an EXIF thumbnail's EOI inside
    an APP1 segment or a progressive file's many scans do not end the image early.
    """
    n = len(data)
    if data[start : start + 2] != b"\xff\xd8":
        return None
    i = start + 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return i + 2
        if marker in _STANDALONE:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        i += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return None
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                    i = j + 2
                    continue
                i = j
                break
    return None


def jpeg_blobs(data: bytes, min_bytes: int = 1024) -> list[bytes]:
    """Every complete JPEG stored as plain bytes inside `data` (an EET `.edj` file), in file order."""
    out, i = [], 0
    while True:
        i = data.find(b"\xff\xd8\xff", i)
        if i < 0:
            return out
        end = jpeg_end(data, i)
        if end is None or end - i < min_bytes:
            i += 3
            continue
        out.append(data[i:end])
        i = end


# --- Qt resource files (.rcc) ---------------------------------------------------------------------


def rcc_entries(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file in a Qt `.rcc` resource file (format versions 1-3; zlib entries
    are inflated, zstd ones are skipped)."""
    if data[:4] != b"qres":
        raise DtkError("not a Qt resource file (no 'qres' magic)")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node = 14 if version == 1 else 22

    def name(offset: int) -> str:
        at = names + offset
        length = struct.unpack(">H", data[at : at + 2])[0]
        return data[at + 6 : at + 6 + 2 * length].decode("utf-16-be")

    def walk(index: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        at = tree + index * node
        name_off, flags = struct.unpack(">IH", data[at : at + 6])
        path = prefix + ("" if index == 0 else name(name_off))
        if flags & 0x02:  # directory
            count, first = struct.unpack(">II", data[at + 6 : at + 14])
            for child in range(first, first + count):
                yield from walk(child, path + ("/" if index else ""))
            return
        offset = struct.unpack(">I", data[at + 10 : at + 14])[0]
        size = struct.unpack(">I", data[payload + offset : payload + offset + 4])[0]
        blob = data[payload + offset + 4 : payload + offset + 4 + size]
        if flags & 0x04:  # zstd: not needed for the photos dtk reads
            return
        if flags & 0x01:
            blob = zlib.decompress(blob[4:])
        yield path, blob

    yield from walk(0, "")


# --- JPEG quality ---------------------------------------------------------------------------------

# The IJG (libjpeg) base luminance quantization table, natural order; quality q scales it by
# 5000/q (q < 50) or 200 - 2q (q >= 50) percent.
_IJG_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=np.float64,
)


def ijg_table(quality: int) -> np.ndarray:
    """libjpeg's luminance table at `quality` (1..100), natural order."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_IJG_LUMA * scale + 50) / 100), 1, 255)


def jpeg_quality(source) -> int | None:
    """Estimated IJG quality (1..100) of a JPEG file/bytes/PIL image, from its luminance table:
    the quality whose libjpeg table is nearest (least squares). None for a file that is not JPEG."""
    from PIL import Image

    image = (
        source
        if isinstance(source, Image.Image)
        else Image.open(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source)
    )
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables:
        return None
    luma = np.asarray(tables[min(tables)], dtype=np.float64)  # Pillow gives natural order
    errors = [float(np.mean((ijg_table(q) - luma) ** 2)) for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


# --- fetching -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """One package the photo set reads: Debian (`deb`) or PyPI (`wheel`, `sdist`)."""

    name: str
    kind: str  # "deb", "wheel" or "sdist"
    version: str | None = None  # PyPI: the version pinned (None: the newest)

    @property
    def how(self) -> str:
        """The command that fetches it by hand."""
        if self.kind == "deb":
            return f"apt-get download {self.name} && dpkg -x {self.name}_*.deb DIR"
        spec = f"{self.name}=={self.version}" if self.version else self.name
        nob = f" --no-binary {self.name}" if self.kind == "sdist" else ""
        return f"pip download --no-deps{nob} {spec}"


def check_cache(cache: Path | str, out_dir: Path | str | None = None, *, fetch: bool = True) -> None:
    """DtkError unless `cache` may serve as the package cache (before anything is fetched): a folder
    (or a path one can be made at), writable when packages may be fetched into it (`fetch`), and
    apart from the photo set's `out_dir` (neither inside the other: the set would hold the
    packages, or the cache the photos)."""
    cache = Path(cache).expanduser()
    if os.path.lexists(cache) and not cache.is_dir():
        raise DtkError(f"--cache {cache} exists and is not a folder: give a folder for the downloaded "
                       "packages")
    real = Path(os.path.realpath(cache))
    if out_dir is not None:
        out = Path(os.path.realpath(out_dir))
        if real == out or out in real.parents or real in out.parents:
            where = ("is DIR" if real == out else "is inside DIR" if out in real.parents else "holds DIR")
            raise DtkError(f"--cache {cache} {where} ({out_dir}): the package cache and the photo set are "
                           "kept apart; choose a --cache outside DIR (default ~/.cache/dtk/photos)")
    existing = real
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or (fetch and not os.access(existing, os.W_OK | os.X_OK)):
        raise DtkError(f"--cache {cache}: {existing} is not a writable folder; choose another --cache")


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["nice", *cmd] if shutil.which("nice") else cmd, cwd=cwd, capture_output=True, text=True, check=False
    )


class PackageCache:
    """Downloaded and unpacked packages under `root` (`root/<kind>/` files, `root/x/<name>/` trees)."""

    def __init__(self, root: Path | str = DEFAULT_CACHE, fetch: bool = True):
        # absolute: the fetchers and unpackers run in folders of their own (apt-get download in
        # root/deb, dpkg -x in the unpack folder, pip -d), where a relative path means another place
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        self.fetch = fetch
        self._apt_updated = False
        self.missing: dict[str, str] = {}  # package -> why, with how to get it
        self.versions: dict[str, str] = {}

    def tree(self, pkg: Package) -> Path | None:
        """The unpacked package (fetched first when allowed); None (and a note in `missing`) if absent."""
        dest = self.root / "x" / pkg.name
        if (dest / ".done").is_file():
            self.versions[pkg.name] = (dest / ".done").read_text().strip()
            return dest
        archive = self._archive(pkg)
        if archive is None:
            return None
        version = self._unpack(pkg, archive, dest)
        if version is None:
            return None
        write_bytes_atomic(dest / ".done", (version + "\n").encode())
        self.versions[pkg.name] = version
        return dest

    def _archive(self, pkg: Package) -> Path | None:
        folder = self.root / pkg.kind
        folder.mkdir(parents=True, exist_ok=True)
        wheel_name = pkg.name.replace("-", "_")
        pattern = {"deb": f"{pkg.name}_*.deb", "wheel": f"{wheel_name}-*.whl"}.get(
            pkg.kind, f"{pkg.name}-*.tar.gz"
        )
        if pkg.version and pkg.kind != "deb":
            pattern = pattern.replace("*", pkg.version + ("-*" if pkg.kind == "wheel" else ""), 1)
        found = sorted(folder.glob(pattern))
        if found:
            return found[-1]
        if not self.fetch:
            self.missing[pkg.name] = f"not in {folder} (--no-fetch); get it: {pkg.how}"
            return None
        if pkg.kind == "deb":
            if not shutil.which("apt-get"):
                self.missing[pkg.name] = (
                    f"no apt-get here; on Debian: {pkg.how}, then put the .deb in {folder}"
                )
                return None
            if not self._apt_updated:
                _run(["apt-get", "update", "-q"], folder)
                self._apt_updated = True
            res = _run(["apt-get", "download", pkg.name], folder)
        else:
            spec = f"{pkg.name}=={pkg.version}" if pkg.version else pkg.name
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder)]
            cmd += ["--no-binary", pkg.name] if pkg.kind == "sdist" else ["--only-binary", ":all:"]
            res = _run([*cmd, spec], folder)
        found = sorted(folder.glob(pattern))
        if not found:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            self.missing[pkg.name] = f"download failed ({tail[0]}); get it: {pkg.how}, into {folder}"
            return None
        return found[-1]

    def _unpack(self, pkg: Package, archive: Path, dest: Path) -> str | None:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        if pkg.kind == "deb":
            if not shutil.which("dpkg"):
                self.missing[pkg.name] = f"no dpkg here to unpack {archive}"
                return None
            res = _run(["dpkg", "-x", str(archive), str(dest)], dest)
            if res.returncode:
                self.missing[pkg.name] = f"dpkg -x {archive} failed: {res.stderr.strip()[:200]}"
                return None
            from urllib.parse import unquote

            return unquote(archive.name.split("_")[1])  # apt writes 4:5.27 as 4%3a5.27
        if pkg.kind == "wheel":
            with zipfile.ZipFile(archive) as z:
                z.extractall(dest)
            return archive.name.split("-")[1]
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")
        top = [p for p in dest.iterdir() if p.name != ".done"]
        if len(top) == 1 and top[0].is_dir():  # an sdist's NAME-VERSION/ folder: its contents move up
            for child in top[0].iterdir():
                child.rename(dest / child.name)
            top[0].rmdir()
        return archive.name[len(pkg.name) + 1 :].removesuffix(".tar.gz")


# --- licences as the packages state them -----------------------------------------------------------


def _stanzas(text: str) -> list[dict[str, list[str]]]:
    """Paragraphs of a Debian copyright file (DEP-5) or a GCompris README: {field: [first line,
    continuation lines...]} each (a README lists files on bare lines under "Files:")."""
    out = []
    for block in text.replace("\r", "").split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            m = re.match(r"([A-Za-z][A-Za-z-]*):(.*)$", line)
            if m and line[:1] not in (" ", "\t"):
                key = m.group(1).lower()
                fields[key] = [m.group(2).strip()]
            elif key:
                fields[key].append(line.strip())
        if fields:
            out.append(fields)
    return out


def _matches(pattern: str, path: str) -> bool:
    from fnmatch import fnmatchcase

    parts = path.split("/")
    if any(fnmatchcase("/".join(parts[i:]), pattern) for i in range(len(parts))):
        return True
    base = pattern.rsplit("/", 1)[-1]
    return base.strip("*") != "" and fnmatchcase(parts[-1], base)


def stanza_licence(text: str, path: str) -> str | None:
    """'License (Copyright)' of the last paragraph whose Files patterns match `path` (a path inside
    the installed package; patterns match a tail of it, or its file name), as DEP-5 reads it."""
    found = None
    for st in _stanzas(text):
        if (
            "files" in st
            and "license" in st
            and any(_matches(p, path) for p in " ".join(st["files"]).split())
        ):
            found = st
    if found is None:
        return None
    licence = found["license"][0] or "see the copyright file"
    who = " ".join(found.get("copyright", [])).strip()
    return f"{licence} ({who[:120]})" if who else licence


def deb_licence(tree: Path, package: str, path: str) -> str | None:
    """The licence the Debian package's copyright file states for an installed file."""
    copyright_file = tree / "usr/share/doc" / package / "copyright"
    if not copyright_file.is_file():
        return None
    return stanza_licence(copyright_file.read_text(errors="replace"), path)


def readme_licence(text: str, filename: str | tuple[str, ...]) -> str | None:
    """'License (Copyright; Source)' of the paragraph of a GCompris README that names `filename` (or
    one of several spellings: the bare name, the path from the README's folder)."""
    names = {filename} if isinstance(filename, str) else set(filename)
    for st in _stanzas(text):
        tokens = {t.strip(",") for lines in st.values() for line in lines for t in line.split()}
        if names & tokens and "license" in st:
            who = " ".join(st.get("copyright", [])).strip()
            src = " ".join(st.get("source", [])).strip() or " ".join(st.get("comment", [])).strip()
            extra = "; ".join(x for x in (who, src) if x)
            return f"{st['license'][0]} ({extra[:200]})" if extra else st["license"][0]
    return None
