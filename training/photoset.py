"""The photos dtk trains and validates on: sources and licences, the split by photo, validation windows.

`dtk data photos DIR` writes every allowed photo once (`DIR/<name>.jpg`, short side <= 1080,
JPEG quality 95 without chroma subsampling) and `DIR/sources.json` (licence, colour or not,
split). Validation uses colour photographs only, held out whole (`VAL_PHOTOS`), each cut into
256x448 windows at several scales, from the whole photo squashed to 256x448 (what `dtk run` does
to a photo) to windows of the photo at a 720-pixel short side. Never the demo photos.

    python -m training.photoset tune DIR     # tune the classical baselines on the validation windows
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from toolkit import FRAME_SIZE
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.baselines import _apply_gain
from toolkit.core.errors import DtkError
from toolkit.core.frames import read_frame, resize_frame
from toolkit.core.kernels import KERNELS, blur
from toolkit.core.metrics import psnr_capped
from training.data import allowed_photo_sources, grid_windows

MAX_SHORT_SIDE = 1080
WINDOW_SHORT_SIDES = (300, 360, 430, 512, 620, 720)  # validation scales besides the whole photo
# Held out whole, never trained on: random.Random(19).sample(colour photos, 5), fixed here.
VAL_PHOTOS = (
    "plasma_ColorfulCups",
    "plasma_FallenLeaf",
    "plasma_Kite",
    "plasma_summer_1am",
    "sklearn_flower",
)
SOURCES_FILE = "sources.json"


def is_colour(image: np.ndarray, tol: float = 2.0) -> bool:
    """True when the channels differ by more than `tol` levels on average (not a gray photo)."""
    f = image.astype(np.float32)
    return float(np.mean(np.abs(f[..., 0] - f[..., 1]) + np.abs(f[..., 1] - f[..., 2]))) > tol


def scale_to_short(image: np.ndarray, short: int) -> np.ndarray:
    """Resize so the short side is `short` (Lanczos; never upscales past the original)."""
    from PIL import Image

    h, w = image.shape[:2]
    s = short / min(h, w)
    if s >= 1.0:
        return image
    return np.asarray(Image.fromarray(image).resize((round(w * s), round(h * s)), Image.LANCZOS))


def write_sources(out_dir: Path | str, wallpapers: Path | str | None = None) -> list[dict]:
    """Write each allowed photo as DIR/<name>.jpg and DIR/sources.json; returns the records."""
    import io

    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for name, path, licence in allowed_photo_sources(wallpapers):
        image = scale_to_short(read_frame(path), MAX_SHORT_SIDE)
        target = out / f"{name}.jpg"
        jpeg = io.BytesIO()
        Image.fromarray(image).save(jpeg, format="JPEG", quality=95, subsampling=0)
        write_bytes_atomic(target, jpeg.getvalue())
        records.append(
            {
                "name": name,
                "file": target.name,
                "source": str(path),
                "licence": licence,
                "size": list(image.shape[:2]),
                "colour": is_colour(image),
                "split": "val" if name in VAL_PHOTOS else "train",
            }
        )
    missing = set(VAL_PHOTOS) - {r["name"] for r in records}
    if missing:
        raise DtkError(
            f"validation photos missing: {', '.join(sorted(missing))} "
            "(pass --wallpapers with plasma-workspace-wallpapers' usr/share/wallpapers)"
        )
    write_bytes_atomic(out / SOURCES_FILE, (json.dumps(records, indent=2) + "\n").encode())
    return records


def load_sources(root: Path | str, split: str | None = None) -> dict[str, np.ndarray]:
    """{name: RGB uint8 photo} of DIR/sources.json, optionally only one split ('train' or 'val')."""

    root = Path(root)
    index = root / SOURCES_FILE
    if not index.is_file():
        raise DtkError(f"{index} not found: write the photo set with `dtk data photos {root}`")
    records = json.loads(index.read_text())
    return {r["name"]: read_frame(root / r["file"]) for r in records if split is None or r["split"] == split}


def val_windows(image: np.ndarray, size: tuple[int, int] = FRAME_SIZE) -> list[np.ndarray]:
    """The whole photo resized to `size`, then grid windows at each of `WINDOW_SHORT_SIDES`."""

    out = [resize_frame(image, size)]
    short = min(image.shape[:2])
    for s in WINDOW_SHORT_SIDES:
        if s <= short:
            scaled = scale_to_short(image, s)
            if scaled.shape[0] >= size[0] and scaled.shape[1] >= size[1]:  # portrait/square: fewer scales
                out += grid_windows(scaled, size)
    return out


def validation_set(root: Path | str) -> list[tuple[str, np.ndarray]]:
    """(photo name, 256x448 sharp window) for every held-out colour photo."""
    return [
        (name, w) for name, image in sorted(load_sources(root, "val").items()) for w in val_windows(image)
    ]


def tune_baselines(root: Path | str, grid=(1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5)) -> dict:
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
    main()
