"""`RunRequest`: every option of a `dtk run`, in one typed, frozen, picklable value.

The CLI parses into it, the Python API builds it, Ray pickles it to its actors; every job takes
it whole (app.run, app.video_run, app.ray_executor). `check()` is the options' one check (no
paths: those are app.preflight's), called before any model loads; `tiling` is how its frames are
cut (engines.tiled).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cached_property
from numbers import Integral, Real
from typing import Any

from engines.options import check_batch
from engines.tiled import Tiling
from toolkit.core.bounds import check_choice, check_number
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError
from toolkit.core.evidence import check_known_blur_name
from toolkit.core.frames import DEFAULT_MAX_PIXELS
from toolkit.core.kernels import get_kernel
from toolkit.core.pipeline import PIPELINES
from toolkit.core.tiles import DEFAULT_OVERLAP

EXECUTORS = ("local", "ray")  # dtk run --executor
_KINDS = {"bool": "True or False", "int": "a whole number", "int | None": "a whole number or None",
          "float": "a number", "str | None": "a string or None", "str": "a string"}


@dataclass(frozen=True)
class RunRequest:
    """What a run does to each frame and how it runs (defaults: `dtk run`'s)."""

    batch: int = 8  # frames per batch
    blur: str | None = None  # blur sharp input first with this seed kernel
    known_blur: str | None = None  # the blur the frames carry: told to the network, not decided
    resize: bool = False  # the seed's protocol: through the network at 256x448, resized back
    keep_size: bool = False  # with `resize`: keep the 256x448 outputs
    tile_overlap: int = DEFAULT_OVERLAP  # pixels neighbouring tiles share
    max_tile_pixels: int | None = None  # the most pixels of one runner call (None: engines.tiled's)
    overwrite: bool = False  # redo outputs made with other settings (or none)
    strict: bool = False  # stop at the first unreadable frame or folder
    pipeline: str = "auto"  # auto | dali | fallback | torch (core.pipeline)
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # a larger frame is an unreadable frame
    codec: str | None = None  # videos: the output's encoder (None: libx264 when PyAV has it)
    crf: int | None = None  # videos: the encoder's quality
    pix_fmt: str | None = None  # videos: the output's pixel format (None: the input's)
    resumable: bool = False  # videos: keep deblurred frames as PNGs until the video is written
    executor: str = "local"  # local | ray
    workers: int = 2  # ray: actors
    gpus_per_worker: float = 0.0  # ray
    ray_address: str | None = None  # ray: the cluster (None: start one here)

    def check(self) -> RunRequest:
        """DtkError for an option out of range or a combination that does not go (before any model
        loads); returns itself."""
        self._check_types()
        check_batch(self.batch)
        if self.blur is not None:
            get_kernel(self.blur)
        check_known_blur_name(self.known_blur)
        if self.keep_size and not self.resize:
            raise DtkError("--keep-size keeps the network's 256x448 outputs of --resize; at native size "
                           "(the default) outputs already have each input's size: add --resize or drop "
                           "--keep-size")
        self.tiling  # noqa: B018 - --tile-overlap's and --max-tile-pixels' checks
        check_choice("--pipeline", self.pipeline, PIPELINES)
        if self.max_pixels is not None:
            check_number("--max-pixels", self.max_pixels, min=1)
        check_choice("--executor", self.executor, EXECUTORS)
        check_number("--workers", self.workers, min=1, max=1024)
        check_number("--gpus-per-worker", self.gpus_per_worker, min=0, max=64)
        return self

    def _check_types(self) -> None:
        """DtkError for a value of the wrong kind (the API takes keywords: "yes" for a flag, "8" for
        a number), named as the CLI names the option."""
        for f in fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            flag = "--" + f.name.replace("_", "-")
            if kind == "bool":
                ok = isinstance(value, bool)
            elif kind.startswith("int"):
                number = isinstance(value, Integral) and not isinstance(value, bool)
                ok = number or (value is None and "None" in kind)
            elif kind == "float":
                ok = isinstance(value, Real) and not isinstance(value, bool)
            else:  # str | None
                ok = value is None or isinstance(value, str)
            if not ok:
                raise DtkError(f"{flag} must be {_KINDS.get(kind, kind)}, got {value!r}")

    @cached_property
    def tiling(self) -> Tiling:
        """How frames at their own size are cut into tiles (DtkError for a bad overlap or budget)."""
        return Tiling(FRAME_SIZE, self.tile_overlap, self.max_tile_pixels)

    @property
    def mode(self) -> str:
        return "resize" if self.resize else "native"

    def but(self, **changes: Any) -> RunRequest:
        """A copy with `changes` (e.g. `overwrite=True` for what a claim decided)."""
        return replace(self, **changes)
