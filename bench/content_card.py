"""The content card: what dtk does to each kind of content users really have, blind and told.

    python -m bench.content_card data/photoset -o reports/card [--size 320x576] [--photos N]
        [--categories up2x-lanczos,jpeg] [--backend onnxruntime] [--model M]

Frames: every held-out (validation) photo of the photo set, never trained on, made into each
content category of `training.content` (own scale, upscaled, downscaled, JPEG, H.264 / HEVC,
denoised, screen, noisy) at two sizes: `--size` (several tiles, decided over the frame as
`dtk run` decides) and 256x448 (one tile, the seed's protocol). Each is scored unblurred and
blurred with k3, k7 and k11 at that size, through the same path as `dtk run` (engines.tiled on
one runner). A blurred-first category (`recorded`: the camera's blur, then H.264) is blurred
before its processing and scored against the unprocessed scene:

- blind: the model deciding (what `dtk run` does);
- told: the same network told the true kernel (`--known-blur`);
- prior: the bank's known-kernel prior inverse (toolkit.core.baselines "prior"), k7 / k11.

Per group (crisp and soft: the photo at its own scale, by the photo's character; the other
groups: every photo), size, kernel and method: frames, input dB, mean dB, mean gain, the worst
frame's gain, the share of frames made worse than their input by more than 0.1 dB. Writes
OUT/content-card.json (per frame too) and OUT/content-card.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from engines.tiled import Tiling, deblur_frames
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.baselines import BASELINES
from toolkit.core.constants import FRAME_SIZE
from toolkit.core.errors import DtkError, exits_on_dtk_error
from toolkit.core.kernels import blur, get_kernel
from toolkit.core.metrics import WORSE_DB, capped, psnr
from toolkit.core.modelfiles import with_checkpoint_files
from toolkit.core.safepaths import check_output_folder
from training.content import CATEGORIES, category_frame, category_scene

KERNELS = ("none", "k3", "k7", "k11")
TOLD = ("k7", "k11")  # told k3 is a pass: its input
PRIOR = ("k7", "k11")
OWN_SIZE = (320, 576)  # several tiles (2 x 2 of 256x448 with the default overlap), as dtk run cuts


def card_frames(photoset: Path, size: tuple[int, int], categories: Iterable[str],
                photos: int | None = None) -> list[dict]:
    """Every (photo, category, size) frame: {photo, character, category, group, size, frame}."""
    from training.photoset import SOURCES_FILE, load_sources

    records = {r["name"]: r for r in json.loads((photoset / SOURCES_FILE).read_text())}
    images = sorted(load_sources(photoset, "val").items())
    if photos is not None:
        images = images[::max(1, len(images) // photos)][:photos]
    out = []
    for name, image in images:
        character = records[name].get("character", "crisp")
        for cat in categories:
            for label, shape in (("own", size), ("256x448", FRAME_SIZE)):
                entry = {"photo": name, "character": character, "category": cat, "size": label}
                group = CATEGORIES[cat].group
                entry["group"] = character if group == "own" else group
                if CATEGORIES[cat].blurred_first:  # each kernel blurs the scene before the encoder
                    entry["frame"] = category_scene(image, shape, cat)
                    entry["inputs"] = {k: category_frame(image, shape, cat, name,
                                                         blur=None if k == "none" else k) for k in KERNELS}
                else:
                    entry["frame"] = category_frame(image, shape, cat, name)
                if entry["frame"] is not None:
                    out.append(entry)
    return out


def score_frames(runner, frames: list[dict], kernels=KERNELS, batch: int = 8,
                 log=print) -> list[dict]:
    """Per frame and kernel: input, blind, told and prior PSNR against the category frame."""
    rows = []
    for k in kernels:
        started = time.perf_counter()
        sharp = [f["frame"] for f in frames]
        inputs = [f["inputs"][k] if "inputs" in f else s if k == "none" else blur(s, get_kernel(k))
                  for f, s in zip(frames, sharp, strict=True)]
        blind = deblur_frames(runner, inputs, Tiling(), batch=batch)
        told = deblur_frames(runner, inputs, Tiling(), batch=batch, known_blur=k) if k in TOLD else None
        for i, f in enumerate(frames):
            if blind.failures[i]:
                raise DtkError(f"{f['photo']} ({f['category']}, {k}): {blind.failures[i]}")
            row = {key: f[key] for key in ("photo", "character", "category", "group", "size")}
            row.update(kernel=k, input=capped(psnr(inputs[i], sharp[i])),
                       blind=capped(psnr(blind.images[i], sharp[i])))
            if told is not None:
                row["told"] = capped(psnr(told.images[i], sharp[i]))
            if k in PRIOR:
                row["prior"] = capped(psnr(BASELINES["prior"](inputs[i], get_kernel(k)), sharp[i]))
            rows.append(row)
        log(f"{k}: {len(frames)} frames, {blind.tiles + blind.evidence_tiles} blind passes, "
            f"{time.perf_counter() - started:.0f} s")
    return rows


METHODS = ("blind", "told", "prior")


def summarise(rows: list[dict]) -> list[dict]:
    """Per (group, size, kernel, method): frames, input, mean, gain, worst gain, share worse."""
    keys = sorted({(r["group"], r["size"], r["kernel"]) for r in rows},
                  key=lambda t: (_group_order(t[0]), t[1] != "own", KERNELS.index(t[2])))
    out = []
    for group, size, k in keys:
        sel = [r for r in rows if (r["group"], r["size"], r["kernel"]) == (group, size, k)]
        inp = np.array([r["input"] for r in sel])
        entry = {"group": group, "size": size, "kernel": k, "frames": len(sel), "input": float(inp.mean())}
        for method in METHODS:
            if method not in sel[0]:
                continue
            out_db = np.array([r[method] for r in sel])
            gains = out_db - inp
            worst = int(np.argmin(gains))
            entry[method] = {"mean": float(out_db.mean()), "gain": float(gains.mean()),
                             "worst_gain": float(gains[worst]), "worst_frame": f"{sel[worst]['photo']} "
                             f"({sel[worst]['category']})", "min": float(out_db.min()),
                             "worse_share": float(np.mean(gains < -WORSE_DB))}
        out.append(entry)
    return out


def _group_order(group: str) -> int:
    order = ["crisp", "soft", "upscaled", "downscaled", "jpeg", "video", "recorded", "denoised", "screen",
             "noisy"]
    return order.index(group) if group in order else len(order)


def markdown(summary: list[dict]) -> str:
    lines = ["| content | size | kernel | frames | input dB | blind gain | worst | worse | told gain | worst "
             "| worse | prior gain | worst |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def cells(e, method, share=True):
        m = e.get(method)
        if m is None:
            return ["-", "-"] + (["-"] if share else [])
        c = [f"{m['gain']:+.2f}", f"{m['worst_gain']:+.2f}"]
        return c + ([f"{100 * m['worse_share']:.0f} %"] if share else [])

    for e in summary:
        blind = cells(e, "blind")
        if e["kernel"] == "none":  # an unblurred frame: what matters is that it stays itself
            blind[0] = f"{e['blind']['mean']:.1f} dB (min {e['blind']['min']:.1f})"
        lines.append("| " + " | ".join([e["group"], e["size"], e["kernel"], str(e["frames"]),
                                        f"{e['input']:.2f}", *blind, *cells(e, "told"),
                                        *cells(e, "prior", share=False)]) + " |")
    return "\n".join(lines)


def compact(summary: list[dict]) -> str:
    """One row per content group and size: unblurred (lowest dB, share worse), then k7 and k11 as
    blind gain (worst frame, share worse), told gain (worst), prior inverse gain."""
    rows = {}
    for e in summary:
        rows.setdefault((e["group"], e["size"]), {})[e["kernel"]] = e
    lines = ["| content | size | frames | unblurred: lowest dB (worse) | k7 blind (worst, worse) | k7 told "
             "(worst) | k7 prior | k11 blind (worst, worse) | k11 told (worst) | k11 prior |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (group, size), by_k in rows.items():
        cells = [group, size, str(next(iter(by_k.values()))["frames"])]
        none = by_k.get("none")
        cells.append("-" if none is None else
                     f"{none['blind']['min']:.1f} ({100 * none['blind']['worse_share']:.0f} %)")
        for k in ("k7", "k11"):
            e = by_k.get(k)
            if e is None:
                cells += ["-", "-", "-"]
                continue
            b, t, p = e["blind"], e.get("told"), e.get("prior")
            cells.append(f"{b['gain']:+.2f} ({b['worst_gain']:+.1f}, {100 * b['worse_share']:.0f} %)")
            cells.append("-" if t is None else f"{t['gain']:+.2f} ({t['worst_gain']:+.1f})")
            cells.append("-" if p is None else f"{p['gain']:+.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@exits_on_dtk_error
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photoset", type=Path, help="the photo set (dtk data photos DIR); its validation photos")
    p.add_argument("-o", "--out", type=Path, required=True, help="folder for content-card.json / .md")
    p.add_argument("--size", default="576x320", help="own-size frames, WIDTHxHEIGHT (default 576x320)")
    p.add_argument("--photos", type=int, help="use this many validation photos, spread evenly (default all)")
    p.add_argument("--categories", default=",".join(CATEGORIES),
                   help="comma-separated training.content names")
    p.add_argument("--kernels", default=",".join(KERNELS))
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--model", type=Path, help="the model (default: the shipped one)")
    p.add_argument("--threads", type=int)
    a = p.parse_args(argv)
    from engines.spec import RunnerSpec

    check_output_folder(a.out, "-o", inputs=with_checkpoint_files([a.photoset, a.model]))
    categories = [c for c in a.categories.split(",") if c]
    kernels = [k for k in a.kernels.split(",") if k]
    unknown = [c for c in categories if c not in CATEGORIES] + [k for k in kernels if k not in KERNELS]
    if unknown or not categories or not kernels:
        raise DtkError(f"unknown or no categories/kernels: {', '.join(unknown) or '(empty)'}")
    width, height = _wh(a.size)
    frames = card_frames(a.photoset, (height, width), categories, a.photos)
    if not frames:
        raise DtkError(f"no validation photo in {a.photoset} makes a frame (is it a photo set?)")
    spec = RunnerSpec.choose(a.backend, a.model, threads=a.threads)
    started = time.perf_counter()
    with spec.open() as runner:
        rows = score_frames(runner, frames, kernels)
    summary = summarise(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    doc = {"size": a.size, "model": str(spec.model), "backend": spec.backend, "categories": categories,
           "photos": len({f["photo"] for f in frames}), "seconds": round(time.perf_counter() - started, 1),
           "summary": summary, "frames": rows}
    write_bytes_atomic(a.out / "content-card.json", (json.dumps(doc, indent=1) + "\n").encode())
    table = markdown(summary)
    write_bytes_atomic(a.out / "content-card.md", (table + "\n\n" + compact(summary) + "\n").encode())
    print(table)
    print()
    print(compact(summary))
    return 0


def _wh(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (width, height), both multiples of 8 and at least 8."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DtkError(f"--size {text!r}: write WIDTHxHEIGHT, e.g. 576x320") from None
    if w < 8 or h < 8:
        raise DtkError(f"--size {text!r}: each side must be at least 8")
    return w, h


if __name__ == "__main__":
    raise SystemExit(main())
