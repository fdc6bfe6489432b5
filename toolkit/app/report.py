"""Rendering: rich tables on the terminal (consoles and JSON: `toolkit.core.console`)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from rich.markup import escape
from rich.table import Table

from toolkit.core.metrics import format_db


def human_text(value: Any) -> str:
    """A value for people, never a Python repr: a dict is `key value, key value` (None and empty
    values left out, booleans on/off), a nested dict `key (k v, ...)`, a list `a + b`, a float 4
    significant digits."""
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if v is None or v == "" or v == [] or v == {}:
                continue
            text = human_text(v)
            parts.append(f"{k} ({text})" if isinstance(v, dict) else f"{k} {text}")
        return ", ".join(parts)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " + ".join(human_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def parity_text(parity: dict) -> str:
    """export's parity check for people: 'max abs diff random 1.2e-06, real ..., k7-blurred photo ...,
    k11-blurred photo ...; blurred photos: PSNR vs PyTorch 58.5 dB' (the lower of the two)."""
    names = {"random": "random", "real": "real photo", "real_k7": "k7-blurred photo",
             "real_k11": "k11-blurred photo"}
    diffs = [f"{names.get(k[:-len('_max_abs')], k[:-len('_max_abs')])} {v:.3g}" for k, v in parity.items()
             if k.endswith("_max_abs")]
    text = "max abs diff " + ", ".join(diffs)
    if "real_psnr_vs_fp32_db" in parity:
        text += f"; blurred photos: PSNR vs PyTorch {format_db(parity['real_psnr_vs_fp32_db'])} dB"
    return text


def tile_text(sizes: dict[str, int]) -> str:
    """Network passes per tile size for people: '10 x 720x1280 + 2 x 256x448' (most first, then
    the larger)."""
    if not sizes:
        return "none"

    def order(item: tuple[str, int]) -> tuple[int, int]:
        h, w = (int(v) for v in item[0].split("x"))
        return -item[1], -h * w

    return " + ".join(f"{n} x {size}" for size, n in sorted(sizes.items(), key=order))


def key_value_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("item", style="bold")
    table.add_column("value")
    for k, v in rows.items():  # values are data (paths, hints with .[gpu]), never markup
        table.add_row(escape(k), "—" if v is None else escape(str(v)))
    return table


def eval_table(result, by_sequence: bool = False) -> Table:
    """The seed's section 8-9 table: per kernel and method, PSNR/SSIM and gain over blurred."""
    title = "per sequence" if by_sequence else "all frames"
    table = Table(title=f"PSNR / SSIM vs sharp — {result.root} ({title})")
    for col in ("kernel", "method", "frames", "mean PSNR", "median", "worst", "identical",
                "gain dB", "worse", "SSIM"):
        table.add_column(col, justify="left" if col in ("kernel", "method") else "right")
    last = None
    for s in result.summaries(by_sequence=by_sequence):
        if last is not None and s.kernel != last:
            table.add_section()
        last = s.kernel
        table.add_row(
            s.kernel, s.method, str(s.frames), format_db(s.mean_psnr), format_db(s.median_psnr),
            format_db(s.worst_psnr), str(s.identical),
            "" if s.gain_db is None else f"{s.gain_db:+.2f}",
            "" if s.worse_share is None else f"{100 * s.worse_share:.0f}%",
            f"{s.mean_ssim:.4f}" if math.isfinite(s.mean_ssim) else "n/a",
        )
    return table


def outputs_table(report) -> Table:
    """`dtk compare`: one row per (runner vs the reference, kernel); errors on the 0..1 scale."""
    q = f"p{report.quantile * 100:g}"
    reference = escape(report.runners[0]["label"])
    table = Table(title=f"dtk compare: {len(report.frames)} frames x {', '.join(report.kernels)}, "
                        f"reference {reference}")
    for name in ("runner", "kernel", "max abs", "mean abs", "median abs", f"{q} abs", "max rel",
                 "PSNR vs ref"):
        table.add_column(name, justify="left" if name in ("runner", "kernel") else "right")
    if report.check is not None:
        check = report.check
        table.add_column(f"{check['stat']} ≤ atol {check['atol']:g} or rtol {check['rtol']:g}")
    for p in report.pairs:
        row = [escape(p.other), p.kernel, *(f"{v:.3g}" for v in (p.max_abs, p.mean_abs, p.median_abs,
                                                                 p.quantile_abs, p.max_rel)),
               "inf" if p.psnr_db is None else f"{format_db(p.psnr_db)} dB"]
        if report.check is not None:
            row.append("[green]pass[/]" if p.passed else "[bold red]FAIL[/]")
        table.add_row(*row)
    return table


def videos_table(videos, output: str) -> Table:
    """`dtk run FOLDER`: one row per video of the folder (app.video_run.FolderVideo): its frames and
    rate, what became of it, frames written / left out, end-to-end frames/s."""
    table = Table(title=f"dtk run: videos -> {escape(output)}")
    for name in ("video", "frames", "fps", "status", "written", "left out", "frames/s"):
        table.add_column(name, justify="left" if name in ("video", "status") else "right")
    for v in videos:
        row = v.to_json()
        rate = row["rate"]
        fps = f"{float(Fraction(rate)):.3g}" if rate else "—"
        table.add_row(escape(v.rel), "—" if row["frames"] is None else str(row["frames"]), fps,
                      escape(v.status), str(row["written"]), str(row["failed"]),
                      f"{row['frames_per_s']:.2f}" if v.run is not None else "—")
    return table
