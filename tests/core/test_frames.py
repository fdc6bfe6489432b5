import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolkit.core.errors import DtkError
from toolkit.core.frames import (
    FrameReadError,
    discover_frames,
    natural_key,
    pair_frames,
    read_frame,
    resize_frame,
    to_rgb_uint8,
    write_png_atomic,
)


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_discover_reds_layout_natural_order(tmp_path, astronaut):
    for seq in ("010", "2", "000"):
        for name in ("10.png", "2.png", "1.jpg"):
            _png(tmp_path / seq / name, astronaut[:8, :8])
    (tmp_path / "notes.txt").write_text("not a frame")
    _png(tmp_path / ".hidden" / "1.png", astronaut[:8, :8])
    frames = discover_frames(tmp_path)
    assert [str(f.rel) for f in frames] == [
        "000/1.jpg", "000/2.png", "000/10.png", "2/1.jpg", "2/2.png", "2/10.png",
        "010/1.jpg", "010/2.png", "010/10.png"]
    assert frames[0].sequence == "000"
    assert frames[0].key == "000/1"


def test_discover_flat_folder(tmp_path, astronaut):
    _png(tmp_path / "b.png", astronaut[:8, :8])
    _png(tmp_path / "a.png", astronaut[:8, :8])
    frames = discover_frames(tmp_path)
    assert [str(f.rel) for f in frames] == ["a.png", "b.png"]
    assert frames[0].sequence == ""
    assert natural_key("f2") < natural_key("f10")


def test_discover_errors(tmp_path):
    with pytest.raises(DtkError, match="not found"):
        discover_frames(tmp_path / "missing")
    with pytest.raises(DtkError, match="no frames"):
        discover_frames(tmp_path)
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(DtkError, match="not a directory"):
        discover_frames(f)


def test_discover_refuses_colliding_names(tmp_path, astronaut):
    _png(tmp_path / "s" / "1.png", astronaut[:8, :8])
    _png(tmp_path / "s" / "1.jpg", astronaut[:8, :8])
    with pytest.raises(DtkError, match="share a name"):
        discover_frames(tmp_path)


def test_pair_by_relative_path_and_list_unmatched(tmp_path, astronaut):
    for name in ("s1/1.png", "s1/2.png", "s2/1.png"):
        _png(tmp_path / "sharp" / name, astronaut[:8, :8])
    for name in ("s1/1.jpg", "s1/2.png", "s2/1.png"):
        _png(tmp_path / "pred" / name, astronaut[:8, :8])
    pairs = pair_frames(tmp_path / "sharp", tmp_path / "pred")
    assert [(str(a.rel), str(b.rel)) for a, b in pairs] == [
        ("s1/1.png", "s1/1.jpg"), ("s1/2.png", "s1/2.png"), ("s2/1.png", "s2/1.png")]
    _png(tmp_path / "pred" / "s3" / "9.png", astronaut[:8, :8])
    os.remove(tmp_path / "pred" / "s2" / "1.png")
    with pytest.raises(DtkError) as err:
        pair_frames(tmp_path / "sharp", tmp_path / "pred")
    assert "s2/1" in str(err.value) and "s3/9" in str(err.value)


def test_read_conversions(tmp_path, astronaut):
    gray = astronaut[:16, :16, 0]
    out = read_frame(_png(tmp_path / "g.png", gray))
    assert out.shape == (16, 16, 3) and (out[..., 0] == gray).all() and (out[..., 2] == gray).all()
    rgba = np.dstack([astronaut[:16, :16], np.full((16, 16), 7, np.uint8)])
    assert (read_frame(_png(tmp_path / "a.png", rgba)) == astronaut[:16, :16]).all()
    g16 = (gray.astype(np.uint16) * 257)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert (read_frame(tmp_path / "g16.png")[..., 1] == gray).all()
    pal = Image.fromarray(astronaut[:16, :16]).convert("P")
    pal.save(tmp_path / "p.png")
    assert read_frame(tmp_path / "p.png").shape == (16, 16, 3)
    assert to_rgb_uint8(np.array([[True, False]])).tolist() == [[[255] * 3, [0] * 3]]


def test_corrupt_and_truncated_files(tmp_path, astronaut):
    good = _png(tmp_path / "good.png", astronaut)
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("hello, not an image")
    for name, reason in (("trunc.png", "truncated"), ("text.png", "not a recognised")):
        with pytest.raises(FrameReadError, match=reason) as err:
            read_frame(tmp_path / name)
        assert name in str(err.value)


def test_resize_and_atomic_write(tmp_path, astronaut):
    big = np.concatenate([astronaut, astronaut], axis=0)
    small = resize_frame(big, (256, 448))
    assert small.shape == (256, 448, 3) and small.dtype == np.uint8
    assert resize_frame(astronaut) is astronaut  # already 256x448
    path = write_png_atomic(tmp_path / "out" / "s" / "f.png", astronaut)
    assert (read_frame(path) == astronaut).all()
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]  # no temp file left
    write_png_atomic(path, astronaut[::-1].copy())  # replaces atomically
    assert (read_frame(path) == astronaut[::-1]).all()


def test_symlinked_folders_are_followed_once_without_looping(tmp_path, astronaut):
    real = tmp_path / "store" / "seq"
    _png(real / "1.png", astronaut[:8, :8])
    root = tmp_path / "tree"
    _png(root / "a" / "1.png", astronaut[:8, :8])
    (root / "b").symlink_to(real, target_is_directory=True)
    (root / "a" / "up").symlink_to(root, target_is_directory=True)  # loop back to the root
    (root / "b2").symlink_to(tmp_path / "store" / "seq", target_is_directory=True)  # same folder again
    (root / "dangling").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    (root / "c.png").symlink_to(real / "1.png")  # a symlinked file is a frame like any other
    assert [str(f.rel) for f in discover_frames(root)] == ["a/1.png", "b/1.png", "c.png"]


def test_frames_over_the_pixel_limit_are_unreadable_before_decoding(tmp_path, astronaut):
    p = _png(tmp_path / "f.png", astronaut)  # 256 x 448
    assert read_frame(p, max_pixels=256 * 448).shape == (256, 448, 3)
    with pytest.raises(FrameReadError, match=r"448x256 is 114,688 pixels, over the limit of 1,000"):
        read_frame(p, max_pixels=1000)
    with pytest.raises(FrameReadError, match="--max-pixels"):
        read_frame(p, max_pixels=1000)


def test_reading_a_fifo_named_like_a_frame_fails_at_once_never_blocks(tmp_path):
    """read_frame (and the DALI path's read_frame_bytes) check what a path is before opening it and
    open without blocking: a FIFO is a FrameReadError at once, not a read that waits for a writer."""
    import threading

    from toolkit.core.frames import FrameReadError, read_frame_bytes

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    errors = []

    def read(fn):
        try:
            fn(fifo)
        except FrameReadError as exc:
            errors.append(exc.reason)

    for fn in (read_frame, read_frame_bytes):
        t = threading.Thread(target=read, args=(fn,), daemon=True)
        t.start()
        t.join(timeout=10)
        if t.is_alive():  # blocked in open(): let it go, then fail
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            pytest.fail(f"{fn.__name__} blocked on a FIFO")
    assert len(errors) == 2 and all("FIFO" in e for e in errors)
