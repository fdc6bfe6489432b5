"""Reading photos out of packages: EET (.edj) JPEG blobs, Qt .rcc files, JPEG quality, licences."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.photosources import (
    DEFAULT_CACHE,
    PackageCache,
    jpeg_blobs,
    jpeg_end,
    jpeg_quality,
    rcc_entries,
    readme_licence,
    stanza_licence,
)


def _jpeg(quality: int = 90, seed: int = 0, size=(48, 64), **kw) -> bytes:
    rng = np.random.default_rng(seed)
    img = (rng.random((*size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


def test_jpeg_blobs_finds_every_whole_jpeg_in_an_eet_like_archive():
    plain = _jpeg(seed=1)
    progressive = _jpeg(seed=2, progressive=True)
    # a JPEG whose EXIF (APP1) carries a thumbnail JPEG: its inner EOI must not end the outer one
    thumb = _jpeg(seed=3, size=(8, 8))
    exif = b"Exif\x00\x00" + thumb
    with_thumb = plain[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + plain[2:]
    archive = (
        b"\x1e\xe7\x0f\x42"
        + bytes(40)
        + plain
        + b"\x00junk\xff\xd8 not a jpeg"
        + progressive
        + bytes(7)
        + with_thumb
        + b"tail"
    )
    blobs = jpeg_blobs(archive, min_bytes=100)
    assert blobs == [plain, progressive, with_thumb]
    for b in blobs:
        assert Image.open(io.BytesIO(b)).size == (64, 48)
    assert jpeg_end(plain[:-10], 0) is None  # cut short: no end


def _rcc(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A Qt resource file (format 3): {'dir/name': (bytes, zlib-compress?)}, one level of folders."""
    dirs: dict[str, list[str]] = {}
    for path in files:
        d, _, n = path.rpartition("/")
        dirs.setdefault(d, []).append(n)
    names, name_off = b"", {}

    def name(n: str) -> int:
        nonlocal names
        if n not in name_off:
            name_off[n] = len(names)
            enc = n.encode("utf-16-be")
            names += struct.pack(">HI", len(n), 0) + enc
        return name_off[n]

    payload, nodes = b"", []
    top = [d for d in dirs if d] + [n for n in dirs.get("", [])]
    # node 0: root; then the root's children; then each folder's children
    nodes.append(("dir", "", len(top), 1))
    next_index = 1 + len(top)
    children = []
    for entry in top:
        if entry in dirs:
            nodes.append(("dir", entry, len(dirs[entry]), next_index))
            next_index += len(dirs[entry])
            children += [f"{entry}/{n}" for n in dirs[entry]]
        else:
            nodes.append(("file", entry, entry, None))
    for path in children:
        nodes.append(("file", path.rsplit("/", 1)[1], path, None))
    tree = b""
    for kind, n, a, b in nodes:
        off = name(n) if n else 0
        if kind == "dir":
            tree += struct.pack(">IHII", off, 0x02, a, b) + bytes(8)
        else:
            data, compress = files[a]
            blob = struct.pack(">I", len(data)) + zlib.compress(data) if compress else data
            tree += struct.pack(">IHHHI", off, 0x01 if compress else 0, 0, 0, len(payload)) + bytes(8)
            payload += struct.pack(">I", len(blob)) + blob
    header = 24
    return (
        b"qres"
        + struct.pack(">IIIII", 3, header, header + len(tree), header + len(tree) + len(payload), 0)
        + tree
        + payload
        + names
    )


def test_rcc_entries_reads_plain_and_zlib_entries():
    webp = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 40)).save(webp, format="WEBP", quality=80)
    files = {
        "images/photo.webp": (webp.getvalue(), False),
        "images/README": (b"License: CC0-1.0\n", True),
        "top.txt": (b"hello", False),
    }
    got = dict(rcc_entries(_rcc(files)))
    assert got == {k: v for k, (v, _) in files.items()}
    assert Image.open(io.BytesIO(got["images/photo.webp"])).size == (20, 10)
    with pytest.raises(Exception, match="qres"):
        list(rcc_entries(b"nope" + bytes(20)))


@pytest.mark.parametrize("quality", [30, 55, 75, 79, 85, 92, 95, 100])
def test_jpeg_quality_recovers_pillows_quality(quality):
    assert jpeg_quality(_jpeg(quality)) == quality


def test_jpeg_quality_is_none_for_other_formats():
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    assert jpeg_quality(png.getvalue()) is None


def test_licences_as_the_packages_state_them():
    dep5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: Various
License: public-domain

Files: images/land/bwerner*
Copyright: Berthold Werner
License: CC-BY-SA-3.0
 long licence text
 .
 more

Files: 16.04/Bridge_by_Someone.jpg
Copyright: 2018 Someone
License: CC-BY-4.0
"""
    assert (
        stanza_licence(dep5, "usr/share/games/x/images/land/bwerner3.jpg") == "CC-BY-SA-3.0 (Berthold Werner)"
    )
    assert stanza_licence(dep5, "usr/share/games/x/images/land/fog1.jpg") == "public-domain (Various)"
    # an installed path that differs from the source tree's: matched by its file name
    assert stanza_licence(dep5, "usr/share/backgrounds/Bridge_by_Someone.jpg") == "CC-BY-4.0 (2018 Someone)"
    readme = """Copyright: A
License: CC-BY-SA 4.0
Files:
key.svg

Copyright: Daniel
License: CC0-1.0
Source: https://example.org/x.jpg
Files:
wonders/chichenItza.webp
"""
    assert readme_licence(readme, ("chichenItza.webp", "wonders/chichenItza.webp")).startswith(
        "CC0-1.0 (Daniel"
    )
    assert readme_licence(readme, "absent.webp") is None


def test_package_cache_without_fetch_says_how_to_get_a_package(tmp_path):
    from training.photosources import Package

    pc = PackageCache(tmp_path, fetch=False)
    assert pc.tree(Package("lxqt-themes", "deb")) is None
    assert "apt-get download lxqt-themes" in pc.missing["lxqt-themes"]
    assert pc.tree(Package("thumbor", "sdist", "7.8.0")) is None
    assert "pip download --no-deps --no-binary thumbor thumbor==7.8.0" in pc.missing["thumbor"]


CACHE = Path(DEFAULT_CACHE).expanduser()


@pytest.mark.skipif(
    not (CACHE / "x").is_dir(), reason=f"no package cache at {CACHE} (run `dtk data photos DIR`)"
)
def test_every_catalogued_photo_is_in_the_cache_and_none_is_a_demo_photo():
    from toolkit.core.demo import TRAINING_EXCLUDED
    from training.photocatalog import CHARACTERS, SOURCES
    from training.photoset import candidates

    pc = PackageCache(CACHE, fetch=False)
    found = candidates(pc)
    present = {s.package.name for s in SOURCES} - set(pc.missing)
    assert present, "no catalogued package in the cache"
    assert len({c.name for c in found}) == len(found)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", c.name) for c in found)  # file names that travel anywhere
    assert all(c.character in CHARACTERS and c.licence for c in found)
    assert not {c.name.split("_", 1)[1] for c in found} & set(TRAINING_EXCLUDED)
