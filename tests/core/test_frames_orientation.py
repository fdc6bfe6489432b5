"""Issue 27 rule 8: photos as a viewer shows them. read_frame (the one reader of dtk run, dtk eval,
training data and the frames DALI cannot take as they are) applies the EXIF orientation; 16-bit
TIFF becomes 8-bit by round(x/257) like 16-bit PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from toolkit.core.frames import read_frame


def _tagged(path, image: np.ndarray, orientation: int, fmt: str = "PNG"):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(image).save(path, format=fmt, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_frame_applies_exif_orientation_as_pillow_does(astronaut, tmp_path, orientation):
    stored = astronaut[:64, :96].copy()  # not square: a swap of the axes shows
    path = _tagged(tmp_path / f"o{orientation}.png", stored, orientation)
    with Image.open(path) as im:
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_frame(path)
    assert got.shape == shown.shape
    assert np.array_equal(got, shown)


def test_phone_jpeg_rotated_90_is_read_upright(astronaut, tmp_path):
    stored = np.ascontiguousarray(np.rot90(astronaut, 1))  # the camera held sideways: 448 tall
    path = _tagged(tmp_path / "phone.jpg", stored, 6, fmt="JPEG")
    got = read_frame(path)
    assert got.shape == (256, 448, 3)
    assert np.abs(got.astype(int) - astronaut.astype(int)).mean() < 6  # JPEG loss only (sideways: ~50)


def test_16bit_rgb_tiff_rounds_like_16bit_png(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    values = np.array([0, 128, 129, 385, 386, 1007, 65535, 32896], dtype=np.uint16)
    image = np.stack([np.resize(values, (4, 6))] * 3, axis=-1).astype(np.uint16)
    image[..., 1] = 65535 - image[..., 1]
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, image, photometric="rgb")
    expected = np.clip(np.rint(image / 257.0), 0, 255).astype(np.uint8)
    assert np.array_equal(read_frame(path), expected)


def test_dali_is_fed_exif_rotated_photos_already_upright(astronaut, tmp_path):
    """DALI decodes plain RGB JPEG/PNG bytes itself; a file with an orientation tag is decoded by
    read_frame instead (re-encoded upright as PNG), so both pipelines see the same frame."""
    from toolkit.core.pipeline.dali import encoded_frame

    plain = tmp_path / "plain.jpg"
    Image.fromarray(astronaut).save(plain, quality=95)
    assert encoded_frame(plain).tobytes() == plain.read_bytes()
    rotated = _tagged(tmp_path / "phone.jpg", np.ascontiguousarray(np.rot90(astronaut, 1)), 6, fmt="JPEG")
    data = encoded_frame(rotated).tobytes()
    assert data != rotated.read_bytes()
    import io

    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.size == (448, 256)


def _exif_after_pixels(path, image: np.ndarray, orientation: int):
    """A PNG whose eXIf chunk follows the pixel data (allowed; Pillow writes it before)."""
    import io
    import struct
    import zlib

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    data = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    end = data.rindex(b"IEND") - 4  # the IEND chunk's length field
    path.write_bytes(data[:end] + chunk + data[end:])
    return path


def test_png_orientation_is_read_without_decoding_the_pixels(astronaut, tmp_path):
    """exif_orientation scans a PNG's chunks (Pillow's getexif decodes the whole image to find an
    eXIf chunk after the pixels: a resume's size check and DALI's byte check paid a decode)."""
    from toolkit.app.outputs import image_size
    from toolkit.core.frames import exif_orientation

    stored = astronaut[:64, :96].copy()
    late = _exif_after_pixels(tmp_path / "late.png", stored, 6)
    with Image.open(late) as im:
        assert exif_orientation(im) == 6
        assert im.tile  # the pixels are still not decoded
    with Image.open(late) as im:
        shown = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(read_frame(late), shown) and shown.shape == (96, 64, 3)
    assert image_size(late) == (96, 64)
    early = _tagged(tmp_path / "early.png", stored, 8)
    plain = tmp_path / "plain.png"
    Image.fromarray(stored).save(plain)
    with Image.open(early) as a, Image.open(plain) as b:
        assert (exif_orientation(a), exif_orientation(b)) == (8, 1) and a.tile and b.tile
