"""The content users' frames really are, synthesised from a photo: one home for the card and training.

A category turns a photo into the frame a user has *before* any blur dtk is asked to undo: the
photo at its own scale, upscaled for display (1.5x / 2x / 3x, bilinear, bicubic, Lanczos),
downscaled with an antialiasing filter, JPEG, H.264 / HEVC (PyAV, a short pan so P-frames are
scored), denoised as phones do, screen content with text, high-ISO noise; and a blurred recording
(`blurred_first`: the camera's blur, then H.264), which the card blurs before encoding. `category_frame`
returns a `size` (H, W) uint8 frame of the category cut from the photo's centre, or None when the
photo is too small for it. Everything is deterministic in (photo name, category).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from toolkit.core.errors import DtkError
from toolkit.core.kernels import blur as blur_kernel
from toolkit.core.kernels import get_kernel


@dataclass(frozen=True)
class Category:
    """A kind of content: `group` for the card's rows, `source_scale` = how much larger (> 1) or
    smaller (< 1) the photo window is than the frame it makes."""

    name: str
    group: str
    source_scale: float
    make: Callable[[np.ndarray, tuple[int, int], np.random.Generator], np.ndarray]
    pans: bool = False  # a video category: the frame is the last of a short pan over the window
    blurred_first: bool = False  # the blur comes before this processing (a camera's, then the encoder)


def _resize(image: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    import cv2  # heavy: only when content is made

    flags = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4,
             "area": cv2.INTER_AREA}
    h, w = size
    return np.ascontiguousarray(cv2.resize(image, (w, h), interpolation=flags[method]))


def _own(window: np.ndarray, size, rng) -> np.ndarray:
    return window


def _resampled(method: str):
    def make(window: np.ndarray, size, rng) -> np.ndarray:
        return _resize(window, size, method)
    return make


def _jpeg(window: np.ndarray, size, rng) -> np.ndarray:
    import cv2

    quality = int(rng.choice([50, 65, 80, 95]))
    ok, blob = cv2.imencode(".jpg", window[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DtkError("OpenCV could not encode a JPEG")
    return np.ascontiguousarray(cv2.imdecode(blob, cv2.IMREAD_COLOR)[:, :, ::-1])


PAN = 4  # pixels a frame of the synthetic clip moves (P-frames carry motion, as real video's)
CLIP_FRAMES = 4


def _video(codec: str):
    def make(window: np.ndarray, size, rng) -> np.ndarray:
        """The last frame of a short pan over `window`, encoded with `codec` (yuv420p) and decoded."""
        import io

        import av  # PyAV: only for the video categories

        h, w = size
        crf = int(rng.choice([18, 23, 28, 30]))
        buf = io.BytesIO()
        with av.open(buf, "w", format="matroska") as out:
            stream = out.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            if codec == "libx265":
                stream.options["x265-params"] = "log-level=error"
            for i in range(CLIP_FRAMES):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(window[:h, i * PAN:i * PAN + w]),
                                                   format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        buf.seek(0)
        with av.open(buf, "r") as src:
            frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
        if len(frames) != CLIP_FRAMES:
            raise DtkError(f"{codec}: decoded {len(frames)} of {CLIP_FRAMES} frames")
        return np.ascontiguousarray(frames[-1])
    return make


def _denoised(window: np.ndarray, size, rng) -> np.ndarray:
    """A phone's noise reduction: non-local means or a bilateral filter, of random strength."""
    import cv2

    if rng.random() < 0.5:
        h = float(rng.uniform(4, 10))
        return np.ascontiguousarray(cv2.fastNlMeansDenoisingColored(window, None, h, h, 5, 15))
    sigma = float(rng.uniform(20, 50))
    return np.ascontiguousarray(cv2.bilateralFilter(window, 7, sigma, 5))


def _noisy(window: np.ndarray, size, rng) -> np.ndarray:
    """High ISO: signal-dependent (shot) plus read noise, 3-8 grey levels at mid grey."""
    x = window.astype(np.float64)
    sigma = rng.uniform(3, 8)
    var = (sigma ** 2) * (0.3 + 0.7 * x / 128.0)
    noisy = x + rng.standard_normal(x.shape) * np.sqrt(var)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _screen(window: np.ndarray, size, rng) -> np.ndarray:
    """Screen content: flat panels, lines of text at several sizes, and the photo as an inset."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = size
    bg = tuple(int(v) for v in rng.integers(200, 256, 3))
    canvas = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(canvas)
    inset_w, inset_h = w // 2, h // 2
    inset = Image.fromarray(window).resize((inset_w, inset_h), Image.LANCZOS)
    canvas.paste(inset, (w - inset_w - 8, 8 + int(rng.integers(0, max(1, h - inset_h - 16)))))
    draw.rectangle((0, 0, w, 18), fill=tuple(int(v) for v in rng.integers(20, 90, 3)))
    words = ("frame", "deblur", "kernel", "video", "photo", "batch", "engine", "tile", "sharp", "output")
    y = 26
    while y < h - 12:
        font = ImageFont.load_default(size=int(rng.choice([10, 12, 14, 18, 24])))
        text = " ".join(rng.choice(words, size=int(rng.integers(3, 9))))
        colour = tuple(int(v) for v in rng.integers(0, 80, 3))
        draw.text((8, y), text, fill=colour, font=font)
        y += int(font.size * 1.5)
    return np.asarray(canvas)


def _categories() -> dict[str, Category]:
    cats = [Category("own", "own", 1.0, _own)]
    for scale, method in ((1.5, "bicubic"), (2.0, "lanczos"), (2.0, "bilinear"), (3.0, "bicubic")):
        cats.append(Category(f"up{scale:g}x-{method}", "upscaled", 1.0 / scale, _resampled(method)))
    cats.append(Category("down1.5x-area", "downscaled", 1.5, _resampled("area")))
    cats.append(Category("jpeg", "jpeg", 1.0, _jpeg))
    cats.append(Category("h264", "video", 1.0, _video("libx264"), pans=True))
    cats.append(Category("hevc", "video", 1.0, _video("libx265"), pans=True))
    # a blurred recording: the blur happened in the camera, the encoder came after it
    cats.append(Category("h264-recorded", "recorded", 1.0, _video("libx264"), pans=True, blurred_first=True))
    cats.append(Category("denoised", "denoised", 1.0, _denoised))
    cats.append(Category("screen", "screen", 1.0, _screen))
    cats.append(Category("noisy", "noisy", 1.0, _noisy))
    return {c.name: c for c in cats}


CATEGORIES = _categories()
GROUPS = tuple(dict.fromkeys(c.group for c in CATEGORIES.values()))
# what training synthesises (then blurs): a blurred-first category carries its own blur
TRAINING_CATEGORIES = tuple(n for n, c in CATEGORIES.items() if not c.blurred_first)


def category_rng(photo: str, category: str, salt: str = "") -> np.random.Generator:
    """The generator of one (photo, category): the same frame every run."""
    digest = hashlib.sha256(f"dtk-content:{salt}:{photo}:{category}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def source_window(image: np.ndarray, size: tuple[int, int], category: Category) -> np.ndarray | None:
    """The centre window of `image` a frame of `size` in `category` is made from (a video category
    takes a few pixels more for its pan); None when the image is too small."""
    h, w = size
    sh, sw = round(h * category.source_scale), round(w * category.source_scale)
    if category.pans:
        sw += PAN * (CLIP_FRAMES - 1)
    ih, iw = image.shape[:2]
    if ih < sh or iw < sw:
        return None
    y, x = (ih - sh) // 2, (iw - sw) // 2
    return np.ascontiguousarray(image[y:y + sh, x:x + sw])


def category_frame(image: np.ndarray, size: tuple[int, int], name: str, photo: str = "",
                   salt: str = "", blur: str | None = None) -> np.ndarray | None:
    """A `size` (H, W) uint8 RGB frame of category `name` cut from `image`'s centre (None when too
    small); `photo` names the image for the category's random choices (quality, strength).
    `blur` (a seed kernel): blurred before the category's processing, as a camera blurs before its
    encoder (the card's blurred-first categories)."""
    category = _category(name)
    window = source_window(_rgb(image), size, category)
    if window is None:
        return None
    if blur is not None:
        window = blur_kernel(window, get_kernel(blur))
    frame = category.make(window, size, category_rng(photo, name, salt))
    frame = np.ascontiguousarray(frame[: size[0], : size[1]])
    if frame.shape != (*size, 3) or frame.dtype != np.uint8:
        raise DtkError(f"content category {name} made a {frame.shape} {frame.dtype} frame, not {size}")
    return frame


def category_scene(image: np.ndarray, size: tuple[int, int], name: str) -> np.ndarray | None:
    """The sharp scene a frame of category `name` shows, before any processing: what a
    blurred-first frame is scored against (categories at the photo's own scale only)."""
    category = _category(name)
    if category.source_scale != 1.0:
        raise DtkError(f"content category {name} resamples the photo: its frame shows no window of it")
    window = source_window(_rgb(image), size, category)
    if window is None:
        return None
    x = PAN * (CLIP_FRAMES - 1) if category.pans else 0
    return np.ascontiguousarray(window[: size[0], x: x + size[1]])


def _category(name: str) -> Category:
    if name not in CATEGORIES:
        raise DtkError(f"unknown content category {name!r}: choose from {', '.join(CATEGORIES)}")
    return CATEGORIES[name]


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def random_crop(image: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A random window of `image` holding `share` (0..1] of each side: variety for training frames."""
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * share)), max(1, round(w * share))
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    return image[y:y + ch, x:x + cw]


def training_frames(photos: dict[str, np.ndarray], size: tuple[int, int], per_photo: int,
                    rng: np.random.Generator, categories=None, label: str = "") -> list[dict]:
    """`per_photo` frames of random categories and windows from each photo: {photo, category,
    group, size, frame} (a category the photo is too small for is skipped)."""
    names = list(categories or TRAINING_CATEGORIES)
    out = []
    for photo, image in sorted(photos.items()):
        for _ in range(per_photo):
            cat = names[int(rng.integers(len(names)))]
            window = random_crop(image, float(rng.uniform(0.6, 1.0)), rng)
            frame = category_frame(window, size, cat, photo, salt=str(rng.integers(1 << 30)))
            if frame is None:
                frame = category_frame(image, size, cat, photo, salt=str(rng.integers(1 << 30)))
            if frame is not None:
                out.append({"photo": photo, "category": cat, "group": CATEGORIES[cat].group,
                            "size": label or f"{size[0]}x{size[1]}", "frame": frame})
    return out
