"""Built-in demo data: a small REDS-like tree cut from real photos shipped in scikit-image.

Each "sequence" is one photo; its frames are 256x448 windows sliding from the photo's
top-left corner to its bottom-right one, like a slow camera pan. Nothing is downloaded.
These photos are reserved for demos and evaluation: training never uses them
(`TRAINING_EXCLUDED` also holds motorcycle_right, the stereo twin of motorcycle_left).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError
from toolkit.core.frames import Frame, discover_frames, encode_png, read_frame, write_png_atomic
from toolkit.core.safepaths import OwnedFolder

DEMO_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")
TRAINING_EXCLUDED = frozenset(DEMO_PHOTOS) | {"motorcycle_right"}


def skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def skimage_photo_path(name: str) -> Path:
    """Path of a photo file inside scikit-image's data folder (png or jpg)."""
    base = skimage_data_dir()
    for ext in (".png", ".jpg"):
        p = base / f"{name}{ext}"
        if p.exists():
            return p
    raise DtkError(f"scikit-image has no bundled photo named {name!r} in {base}")


def pan_windows(image: np.ndarray, count: int, size: tuple[int, int] = FRAME_SIZE) -> list[np.ndarray]:
    """`count` windows of `size` moving evenly from the top-left to the bottom-right corner."""
    h, w = size
    H, W = image.shape[:2]
    if h > H or w > W:
        raise ValueError(f"photo {H}x{W} is smaller than a {h}x{w} frame")
    steps = np.linspace(0.0, 1.0, count) if count > 1 else np.zeros(1)
    return [
        image[int(round(t * (H - h))):int(round(t * (H - h))) + h,
              int(round(t * (W - w))):int(round(t * (W - w))) + w]
        for t in steps
    ]


def write_demo(out_dir: Path | str, frames_per_sequence: int = 4,
               photos: tuple[str, ...] = DEMO_PHOTOS, overwrite: bool = False) -> list[Path]:
    """Write the demo tree `out_dir/<photo>/<00000000>.png`; returns the written paths.

    `out_dir` is an `OwnedFolder`: a file there that dtk did not write is never replaced without
    `overwrite` (DtkError before anything is written); a rerun into dtk's own tree rewrites it,
    and frames of an earlier, longer demo that this one does not write are removed."""
    out = Path(out_dir)
    if frames_per_sequence < 1:
        raise DtkError("frames per sequence must be at least 1")
    folder = OwnedFolder(out, overwrite=overwrite)
    windows = {name: pan_windows(read_frame(skimage_photo_path(name)), frames_per_sequence)
               for name in photos}
    names = {f"{name}/{i:08d}.png": (name, i) for name in photos for i in range(frames_per_sequence)}

    def demo_bytes(rel: str) -> bytes | None:
        """The PNG this demo writes at `rel` (None: not one of its names): a tree an older dtk wrote
        (no manifest) holds exactly these bytes, and rewriting them loses nothing."""
        if rel not in names:
            return None
        name, i = names[rel]
        return encode_png(windows[name][i])

    folder.check(same_as=demo_bytes)
    written = []
    for rel, (name, i) in names.items():
        written.append(folder.write(rel, encode_png(windows[name][i])))
    folder.remove_unlisted(folder.written)
    folder.save()
    return written


@contextmanager
def frames_or_demo(frames_dir: Path | str | None, count: int | None = None) -> Iterator[list[Frame]]:
    """The frames of `frames_dir` (the first `count`), else `count` demo frames (default: 4 per
    photo) spread over the photos, one window of each before the next ones, written to a temporary
    folder that is removed on exit. May yield an empty list; the caller says what that means."""
    if frames_dir is not None:
        frames = discover_frames(frames_dir)
        yield frames if count is None else frames[:count]
        return
    count = count or 4 * len(DEMO_PHOTOS)
    with tempfile.TemporaryDirectory(prefix="dtk-demo-") as scratch:
        write_demo(scratch, frames_per_sequence=math.ceil(count / len(DEMO_PHOTOS)))
        frames = sorted(discover_frames(scratch), key=lambda f: (f.rel.name, f.sequence))
        yield frames[:count]


def photo_mosaic(height: int, width: int, photos: tuple[str, ...] = DEMO_PHOTOS) -> np.ndarray:
    """An H x W x 3 uint8 frame of real photos at their own scale, laid side by side in rows
    (row-major, cycling through `photos`, each cut to the row's height): real content larger
    than any photo scikit-image bundles, for native-resolution tests and demos. Never resized."""
    images = [read_frame(skimage_photo_path(name)) for name in photos]
    out = np.zeros((height, width, 3), dtype=np.uint8)
    y, k = 0, 0
    while y < height:
        row_h = min(min(im.shape[0] for im in images), height - y)
        x = 0
        while x < width:
            im = images[k % len(images)]
            k += 1
            w = min(im.shape[1], width - x)
            out[y:y + row_h, x:x + w] = im[:row_h, :w]
            x += w
        y += row_h
    return out


def parse_frame_size(text: str) -> tuple[int, int]:
    """'1280x720' (width x height, as frame sizes are written) -> (H, W); DtkError otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DtkError(f"frame size {text!r}: write it as WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise DtkError(f"frame size {text!r}: each side must be 1..16384 pixels")
    return h, w


@contextmanager
def mosaic_frames(size: tuple[int, int], count: int = 8) -> Iterator[list[Frame]]:
    """`count` frames of `size` (H, W) made of real photos at their own scale (`photo_mosaic`, each
    frame starting from another photo), in a temporary folder removed on exit."""
    with tempfile.TemporaryDirectory(prefix="dtk-mosaic-") as scratch:
        for i in range(count):
            order = DEMO_PHOTOS[i % len(DEMO_PHOTOS):] + DEMO_PHOTOS[:i % len(DEMO_PHOTOS)]
            write_png_atomic(Path(scratch) / "mosaic" / f"{i:08d}.png", photo_mosaic(*size, photos=order))
        yield discover_frames(scratch)
