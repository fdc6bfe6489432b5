"""Deblur photos with dtk's Python API and write a before/after strip (one row per photo).

    python examples/deblur_photos.py                       # scikit-image's demo photos, blurred with k7 first
    python examples/deblur_photos.py a.jpg b.png -o strip.png      # your (blurred) photos as they are
    python examples/deblur_photos.py a.jpg --blur k7               # blur sharp photos first, then deblur

Frames are read as `dtk run` reads them (EXIF orientation applied), deblurred in memory at their
own size (no files in between) and laid out as [before | after] rows, each row scaled to --height
pixels, in one image. The strip is written as dtk writes files (README "What dtk writes"): never
over a photo it reads, an existing file only with --overwrite, atomically; a mistake (an
unreadable photo, an -o that is not an image name) is one `error:` line and exit 2.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from toolkit import Deblurrer
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.bounds import check_number
from toolkit.core.errors import DtkError, exits_on_dtk_error
from toolkit.core.frames import read_frame
from toolkit.core.kernels import get_kernel
from toolkit.core.safepaths import check_output_file

STRIP_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}


def read_rgb(path: Path) -> np.ndarray:
    """An H x W x 3 uint8 frame as `dtk run` reads it (EXIF orientation applied); DtkError when the
    file cannot be read (missing, truncated, not an image)."""
    return read_frame(path)


def check_strip_path(output: Path, photos: list[Path], overwrite: bool) -> str:
    """The image format of -o; DtkError unless it names an image file dtk may write."""
    fmt = STRIP_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise DtkError(f"-o {output}: name an image file ({', '.join(STRIP_FORMATS)}), e.g. strip.png")
    check_output_file(output, "-o", inputs=photos, overwrite=overwrite)
    return fmt


def strip(pairs: list[tuple[np.ndarray, np.ndarray]], height: int, gap: int = 8) -> Image.Image:
    """Rows of [before | after], each scaled to `height` pixels, on a white canvas."""
    rows = []
    for before, after in pairs:
        width = max(1, round(before.shape[1] * height / before.shape[0]))
        a, b = (Image.fromarray(x).resize((width, height), Image.Resampling.LANCZOS) for x in (before, after))
        row = Image.new("RGB", (2 * width + gap, height), "white")
        row.paste(a, (0, 0))
        row.paste(b, (width + gap, 0))
        rows.append(row)
    size = (max(r.width for r in rows), sum(r.height for r in rows) + gap * (len(rows) - 1))
    canvas = Image.new("RGB", size, "white")
    y = 0
    for row in rows:
        canvas.paste(row, (0, y))
        y += row.height + gap
    return canvas


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", type=Path, help="Images to deblur (default: the demo photos).")
    parser.add_argument("-o", "--output", type=Path, default=Path("before-after.png"))
    parser.add_argument("--overwrite", action="store_true", help="Replace -o when it exists.")
    parser.add_argument("--blur", default=None, help="Blur each photo first with a seed kernel (k3|k7|k11).")
    parser.add_argument("--model", default="default", help="Any model `dtk run --model` takes.")
    parser.add_argument("--backend", default="auto", help="auto|tensorrt|onnxruntime|openvino|torch.")
    parser.add_argument("--height", type=int, default=256, help="Height of each row in the strip.")
    args = parser.parse_args(argv)

    fmt = check_strip_path(args.output, args.photos, args.overwrite)  # before anything loads
    check_number("--height", args.height, min=8, max=4096)
    if args.blur:
        get_kernel(args.blur)
    blur_with = args.blur
    if args.photos:
        frames = [read_rgb(p) for p in args.photos]
    else:  # scikit-image's photos are sharp: blur them so there is something to undo
        from toolkit.core.demo import DEMO_PHOTOS, skimage_photo_path

        frames = [read_rgb(skimage_photo_path(name)) for name in DEMO_PHOTOS[:3]]
        blur_with = blur_with or "k7"
    if blur_with:
        from toolkit.core.kernels import blur

        frames = [blur(f, blur_with) for f in frames]

    with Deblurrer(args.model, backend=args.backend) as deblur:
        sharp = deblur(frames)  # a list in, a list out, every frame at its own size

    encoded = io.BytesIO()
    strip(list(zip(frames, sharp, strict=True)), args.height).save(encoded, format=fmt)
    write_bytes_atomic(args.output, encoded.getvalue())
    print(f"wrote {args.output} ({len(frames)} photo(s): before | after)")


if __name__ == "__main__":
    raise SystemExit(main())
