"""Training data: sharp frame trees blurred on the fly with the seed kernels, split by sequence.

Also `write_training_photos`: a REDS-like tree of the photos dtk may train on (never the
demo photos of `toolkit.core.demo`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.core.constants import FRAME_SIZE
from toolkit.core.demo import TRAINING_EXCLUDED, skimage_photo_path
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames, encode_png, read_frame, resize_frame
from toolkit.core.kernels import BlurKernel, blur
from toolkit.core.safepaths import OwnedFolder

# Real photographs bundled with scikit-image (grayscale ones become RGB); demo photos excluded.
SKIMAGE_TRAINING_PHOTOS = ("brick", "camera", "cell", "grass", "gravel", "hubble_deep_field", "ihc",
                           "moon", "retina")
SKLEARN_PHOTOS = ("china", "flower")
# plasma-workspace-wallpapers (Debian): the real photographs; the others are renders/illustrations.
WALLPAPER_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
WALLPAPER_RENDERS = ("Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun", "Flow", "FlyingKonqui",
                     "Honeywave", "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal", "PastelHills", "Patak",
                     "SafeLanding", "Shell", "Volna")
SHARP = "sharp"  # the label of an unblurred sample


@dataclass
class FrameSet:
    """Frames (RGB uint8, 256x448) grouped by sequence name."""

    sequences: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted(self.sequences)

    def __len__(self) -> int:
        return sum(len(v) for v in self.sequences.values())

    def subset(self, names: Sequence[str]) -> FrameSet:
        return FrameSet({n: self.sequences[n] for n in names})

    def all_frames(self) -> list[tuple[str, np.ndarray]]:
        return [(n, f) for n in self.names for f in self.sequences[n]]


def load_frames(root: Path | str, frames: Sequence[int] | None = None,
                size: tuple[int, int] = FRAME_SIZE) -> FrameSet:
    """Read a sharp tree (REDS or flat) into memory, resized to `size`.

    `frames` keeps only those positions (0-based, natural order) within each sequence; a flat
    folder is one sequence per frame, so that a split by sequence still never shares a photo.
    """

    found = discover_frames(root)
    groups: dict[str, list] = {}
    for f in found:
        groups.setdefault(f.sequence or f.key, []).append(f)
    out: dict[str, list[np.ndarray]] = {}
    for name, items in groups.items():
        chosen = items if frames is None else [items[i] for i in frames if 0 <= i < len(items)]
        if chosen:
            out[name] = [resize_frame(read_frame(f.path), size) for f in chosen]
    if not out:
        raise DtkError(f"no frames left in {root} after --frames {','.join(map(str, frames or []))}"
                       if frames else f"no frames in {root}")
    return FrameSet(out)


def split_by_sequence(names: Sequence[str], val_fraction: float = 0.2, seed: int = 0,
                      val_names: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """(train, val) sequence names; never splits a sequence. Seeded and order-independent."""
    names = sorted(names)
    if val_names is not None:
        missing = set(val_names) - set(names)
        if missing:
            raise DtkError(f"validation sequences not in the data: {', '.join(sorted(missing))}")
        val = sorted(val_names)
    else:
        if len(names) < 2:
            raise DtkError("need at least 2 sequences to hold one out for validation")
        n_val = min(len(names) - 1, max(1, math.ceil(val_fraction * len(names))))
        val = sorted(random.Random(seed).sample(names, n_val))
    return [n for n in names if n not in val], val


class BlurSampler:
    """Random (blurred, sharp) training pairs, made on the fly as the seed did.

    Each sample picks a sequence, a frame and a kernel uniformly at random; with probability
    `sharp_prob` the input is the sharp frame itself. `crop` (H, W) takes a random window
    after blurring the full frame (so crops see the same borders as full frames).
    """

    def __init__(self, frames: FrameSet, kernels: Sequence[BlurKernel], *,
                 crop: tuple[int, int] | None = None, sharp_prob: float = 0.0, seed: int = 0):
        if not frames.sequences:
            raise DtkError("no training frames")
        self.frames, self.kernels, self.crop, self.sharp_prob = frames, list(kernels), crop, sharp_prob
        self.names = frames.names
        self.rng = np.random.default_rng(seed)
        h, w = next(iter(frames.sequences.values()))[0].shape[:2]
        if crop and (crop[0] > h or crop[1] > w):
            raise DtkError(f"crop {crop[0]}x{crop[1]} is larger than the frames ({h}x{w})")

    def sample(self) -> tuple[np.ndarray, np.ndarray, str]:
        """One (input, target, kernel name) as HxWx3 uint8 arrays."""
        rng = self.rng
        seq = self.frames.sequences[self.names[rng.integers(len(self.names))]]
        sharp = seq[rng.integers(len(seq))]
        if rng.random() < self.sharp_prob:
            blurred, label = sharp, SHARP
        else:
            k = self.kernels[rng.integers(len(self.kernels))]
            blurred, label = blur(sharp, k), k.name
        if self.crop:
            ch, cw = self.crop
            y = int(rng.integers(sharp.shape[0] - ch + 1))
            x = int(rng.integers(sharp.shape[1] - cw + 1))
            sharp, blurred = sharp[y:y + ch, x:x + cw], blurred[y:y + ch, x:x + cw]
            self.last_origin = (y, x)
        return blurred, sharp, label

    def batch(self, size: int):
        """(inputs, targets) float32 tensors N x 3 x H x W on 0..1, and the kernel labels."""
        import torch

        items = [self.sample() for _ in range(size)]
        x = np.stack([i[0] for i in items]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        y = np.stack([i[1] for i in items]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        return torch.from_numpy(x), torch.from_numpy(y), [i[2] for i in items]

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def grid_windows(image: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> list[np.ndarray]:
    """Windows of `size` on an evenly spaced grid covering the whole image (rows x cols)."""
    h, w = size
    H, W = image.shape[:2]
    if h > H or w > W:
        raise ValueError(f"image {H}x{W} is smaller than a {h}x{w} frame")
    rows, cols = math.ceil(H / h), math.ceil(W / w)
    ys = np.linspace(0, H - h, rows).round().astype(int) if rows > 1 else [0]
    xs = np.linspace(0, W - w, cols).round().astype(int) if cols > 1 else [0]
    return [image[y:y + h, x:x + w] for y in ys for x in xs]


def _fit(image: np.ndarray, max_short: int, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """Downscale so the short side is at most `max_short`; upscale only to fit one frame."""
    from PIL import Image

    H, W = image.shape[:2]
    scale = min(1.0, max_short / min(H, W))
    scale = max(scale, size[0] / H, size[1] / W)
    if abs(scale - 1.0) < 1e-9:
        return image
    nh, nw = max(size[0], round(H * scale)), max(size[1], round(W * scale))
    return np.asarray(Image.fromarray(image).resize((nw, nh), Image.LANCZOS))


def allowed_photo_sources(wallpapers: Path | str | None = None) -> list[tuple[str, Path, str]]:
    """(sequence name, file, licence/origin) of every photo dtk may train on that is present here."""

    out = []
    for name in SKIMAGE_TRAINING_PHOTOS:
        if name in TRAINING_EXCLUDED:
            continue
        out.append((f"skimage_{name}", skimage_photo_path(name), "scikit-image data (skimage/data/README)"))
    try:
        import sklearn.datasets

        base = Path(sklearn.datasets.__file__).parent / "images"
        for name in SKLEARN_PHOTOS:
            if (base / f"{name}.jpg").exists():
                out.append((f"sklearn_{name}", base / f"{name}.jpg", "scikit-learn sample image (CC BY 2.0)"))
    except ImportError:
        pass
    if wallpapers is not None:
        root = Path(wallpapers)
        if not root.is_dir():
            raise DtkError(f"wallpaper folder not found: {root} (the usr/share/wallpapers of "
                           "plasma-workspace-wallpapers)")
        for name in WALLPAPER_PHOTOS:
            images = sorted((root / name / "contents" / "images").glob("*.*"), key=lambda p: p.stat().st_size)
            if images:
                out.append((f"plasma_{name}", images[-1], wallpaper_licence(root / name)))
    return out


def wallpaper_licence(folder: Path) -> str:
    """A plasma wallpaper's licence and authors from its metadata.json (the package's, if absent)."""
    import json

    meta = folder / "metadata.json"
    try:
        plugin = json.loads(meta.read_text())["KPlugin"]
        author = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
        return f"KDE plasma-workspace-wallpapers, {author}, {plugin.get('License', '?')}"
    except (OSError, ValueError, KeyError):
        return "KDE plasma-workspace-wallpapers (see the package's copyright file)"


def write_training_photos(out_dir: Path | str, wallpapers: Path | str | None = None,
                          max_short_side: int = 720, overwrite: bool = False) -> list[dict]:
    """Write `out_dir/<photo>/<00000000>.png` (256x448 grid windows); returns one record per photo.

    `out_dir` is an `OwnedFolder` (toolkit.core.safepaths): a file there that dtk did not write is
    never replaced without `overwrite`."""

    folder = OwnedFolder(out_dir, overwrite=overwrite)
    folder.check(inputs=[wallpapers])
    sources = allowed_photo_sources(wallpapers)
    records = []
    for name, path, licence in sources:
        assert name.split("_", 1)[1] not in TRAINING_EXCLUDED
        image = _fit(read_frame(path), max_short_side)
        windows = grid_windows(image)
        for i, window in enumerate(windows):
            folder.write(f"{name}/{i:08d}.png", encode_png(np.ascontiguousarray(window)))
        records.append({"sequence": name, "source": str(path), "licence": licence, "frames": len(windows),
                        "size": list(image.shape[:2])})
    folder.remove_unlisted(folder.written)
    folder.save()
    return records


def data_hash(frames: FrameSet) -> str:
    """SHA-256 over sequence names and pixels: identifies the training data in checkpoints and ONNX."""
    import hashlib

    h = hashlib.sha256()
    for name in frames.names:
        h.update(name.encode())
        for f in frames.sequences[name]:
            h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()
