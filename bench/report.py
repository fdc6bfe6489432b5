"""Rendering a bench report (its JSON dict): rich table, CSV, PNG (throughput vs batch, latency CDF).

Figures are named as trtexec names them: Throughput (images/s), Latency min/mean/median/
percentile(90/95/99)/max per call (one batch), in ms.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.harness import SCHEMA
from toolkit.core.errors import DtkError
from toolkit.core.figures import pyplot, save_figure

CSV_FIELDS = ("model", "backend", "variant", "mode", "device", "batch", "iterations", "images_per_s",
              "ms_per_image", "lat_min_ms", "lat_mean_ms", "lat_p50_ms", "lat_p90_ms", "lat_p95_ms",
              "lat_p99_ms", "lat_max_ms", "gflop_per_image", "gflops", "ceiling_gflops", "ceiling_pct",
              "peak_rss_mb", "peak_device_mb", "h2d_ms", "compute_ms", "d2h_ms", "timer")


def load_report(path: Path | str) -> dict:
    """A bench JSON report; DtkError when missing or not one."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise DtkError(f"bench report not found: {p}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DtkError(f"cannot read bench report {p}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("rows"), list):
        raise DtkError(f"{p} is not a dtk bench report (schema {SCHEMA}); write one with dtk bench --json")
    return doc


def row_label(row: dict) -> str:
    parts = [row["backend"] + "/" + row["variant"]]
    if row.get("mode", "compute") != "compute":
        parts.append(row["mode"])
    return " ".join(parts)


def _f(value: Any, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _ms(value: float) -> str:
    """Latency in ms: one decimal below 1 s, whole ms above (keeps columns narrow)."""
    return format(value, ".1f" if value < 1000 else ".0f")


def bench_table(report: dict) -> Table:
    """One row per model x backend x variant x batch (x mode)."""
    rows = report["rows"]
    models = {r.get("model", "") for r in rows}
    title = "dtk bench"
    if report.get("model", {}).get("label"):
        title += f" — {report['model']['label']}"
    size = report.get("config", {}).get("config", {}).get("size")
    if size:
        title += f" ({size[0]}x{size[1]})"
    table = Table(title=title)
    split = any(r.get("phases_ms") for r in rows)  # CUDA runners: H2D / compute / D2H per call
    cols = (["model"] if len(models) > 1 else []) + [
        "backend/variant", "batch", "img/s", "ms/img", "min", "mean", "median", "p90", "p95", "p99",
        "max"] + (["H2D/compute/D2H"] if split else []) + ["GFLOP/s", "%ceil", "MiB"]
    for c in cols:
        left = c in ("model", "backend/variant")
        table.add_column(c, justify="left" if left else "right", no_wrap=left)
    last = None
    groups = dict.fromkeys((r.get("model"), r["backend"], r["variant"]) for r in rows)
    order = {k: i for i, k in enumerate(groups)}
    rows = sorted(rows, key=lambda r: (order[(r.get("model"), r["backend"], r["variant"])],
                                       r.get("mode", "compute") != "compute", r["batch"]))
    for r in rows:
        group = (r.get("model"), r["backend"], r["variant"], r.get("mode"))
        if last is not None and group != last:
            table.add_section()
        last = group
        lat = r["latency_ms"]
        peak = r.get("peak_device_mb") if r.get("peak_device_mb") is not None else r.get("peak_rss_mb")
        cells = ([r.get("model", "")] if len(models) > 1 else []) + [
            row_label(r), str(r["batch"]), _f(r["images_per_s"], ".2f"), _ms(r["ms_per_image"]),
            *(_ms(lat[k]) for k in ("min", "mean", "p50", "p90", "p95", "p99", "max")),
            *([phase_cell(r.get("phases_ms"))] if split else []),
            _f(r.get("gflops"), ".1f"), _f(r.get("ceiling_pct"), ".0f"), _f(peak, ".0f")]
        table.add_row(*cells)
    table.caption = ("latency per call (one batch) in ms; warm-up excluded; MiB: peak RSS (CPU) or "
                     "device memory (GPU); "
                     + ", ".join(f"ceiling {c['device']} {c['dtype']} {c['best_gflops']:.0f} GFLOP/s"
                                 for c in report.get("ceilings", [])))
    return table


def phase_cell(phases: dict[str, float] | None) -> str:
    """'0.4/12.1/0.3': mean ms of the H2D copy, compute and D2H copy of one call ('-' when unknown)."""
    if not phases:
        return "-"
    return "/".join(_ms(phases.get(k, float("nan"))) for k in ("h2d", "compute", "d2h"))


def csv_rows(report: dict) -> list[dict[str, Any]]:
    out = []
    for r in report["rows"]:
        lat = r["latency_ms"]
        flat = {k: r.get(k) for k in CSV_FIELDS if k in r}
        flat.update({f"lat_{k}_ms": lat[k] for k in ("min", "mean", "p50", "p90", "p95", "p99", "max")})
        flat.update({f"{k}_ms": v for k, v in (r.get("phases_ms") or {}).items()})
        out.append({k: flat.get(k) for k in CSV_FIELDS})
    return out


def write_csv(report: dict, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_rows(report))
    return path


def write_plot(report: dict, path: Path | str) -> Path:
    """Left: throughput (images/s) vs batch per backend/variant. Right: latency CDF of every row."""
    import numpy as np

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups: dict[str, list[dict]] = {}
    for r in report["rows"]:
        name = (r.get("model", "") + ": " if len({x.get("model") for x in report["rows"]}) > 1 else "") \
            + row_label(r)
        groups.setdefault(name, []).append(r)
    for name, rows in groups.items():
        rows = sorted(rows, key=lambda r: r["batch"])
        ax1.plot([r["batch"] for r in rows], [r["images_per_s"] for r in rows], marker="o", label=name)
        for r in rows:
            s = np.sort(np.asarray(r.get("samples_ms") or [], dtype=float))
            if s.size:
                ax2.step(s, np.arange(1, s.size + 1) / s.size, where="post", label=f"{name} b{r['batch']}")
    ax1.set_xscale("log", base=2)
    batches = sorted({r["batch"] for r in report["rows"]})
    ax1.set_xticks(batches, [str(b) for b in batches])
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("throughput (images/s)")
    ax1.set_title("Throughput vs batch")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=8)
    ax2.set_xscale("log")
    ax2.set_xlabel("latency per call (ms, log)")
    ax2.set_ylabel("fraction of calls")
    ax2.set_title("Latency CDF")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)
