"""Rendering a bench report (its JSON dict): rich table, CSV, PNG (throughput vs batch, latency CDF).

Figures are named as trtexec names them: Throughput (images/s), Latency min/mean/median/
percentile(90/95/99)/max per call (one batch), in ms.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from bench.harness import SCHEMA, STATUS_FAILED_QUALITY, STATUS_RAN
from bench.pareto import group_name, pareto_front, ran
from bench.timing import shown_percentile
from toolkit.core.atomic import write_bytes_atomic
from toolkit.core.console import write_json
from toolkit.core.errors import DtkError
from toolkit.core.figures import pyplot, save_figure
from toolkit.core.kernels import KERNEL_NAMES

CSV_FIELDS = ("model", "backend", "variant", "mode", "device", "batch", "status", "reason", "iterations",
              "cv", "stability", "extended_calls", "images_per_s", "tiles_per_s", "deblurred_per_s",
              "passed_per_s", "mpx_per_s",
              "ms_per_image", "lat_min_ms", "lat_mean_ms", "lat_p50_ms", "lat_p90_ms", "lat_p95_ms",
              "lat_p99_ms", "lat_max_ms", "gflop_per_image", "gflops", "ceiling_gflops", "ceiling_pct",
              "peak_rss_mb", "peak_device_mb", "h2d_ms", "compute_ms", "d2h_ms", "timer",
              "psnr_k3_db", "psnr_k7_db", "psnr_k11_db", "max_abs_err", "p999_abs_err", "hints")


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
    for i, row in enumerate(doc["rows"], 1):
        problem = row_problem(row)
        if problem:
            name = f" ({row_name(row)})" if isinstance(row, dict) else ""
            raise DtkError(f"cannot read {p}: row {i}{name}: {problem}; write the report again with "
                           "dtk bench --json")
    return doc


def _shown(value: Any) -> str:
    """A report value as its JSON reads (null, "fast"), cut short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def row_problem(row: Any) -> str | None:
    """Why a report row cannot be read (compared, gated, shown), or None. A row that ran needs its
    keys, a number of images/s (NaN: not measured) and latency percentiles; PSNRs are numbers or null."""
    if not isinstance(row, dict):
        return f"not a row but {type(row).__name__}"
    for key in ("backend", "variant"):
        if not isinstance(row.get(key), str):
            return f"{key} is {_shown(row.get(key))}, not a name"
    for key in ("model", "mode"):
        if row.get(key) is not None and not isinstance(row[key], str):
            return f"{key} is {_shown(row[key])}, not a name"
    if not isinstance(row.get("batch"), int) or isinstance(row["batch"], bool) or row["batch"] < 1:
        return f"batch is {_shown(row.get('batch'))}, not a batch size"
    latency = row.get("latency_ms")
    if not latency and row.get("status") not in (STATUS_RAN, STATUS_FAILED_QUALITY):
        return None  # did not run: nothing in it is read
    if not _is_number(row.get("images_per_s")):
        return f"images_per_s is {_shown(row.get('images_per_s'))}, not a number"
    if not isinstance(latency, dict):
        return f"latency_ms is {_shown(latency)}, not the latency figures"
    for key in ("p50", "p99"):
        if not _is_number(latency.get(key)):
            return f"latency_ms.{key} is {_shown(latency.get(key))}, not a number"
    quality = row.get("quality")
    if quality is not None and not isinstance(quality, dict):
        return f"quality is {_shown(quality)}, not the quality figures"
    psnr = (quality or {}).get("psnr_db")
    if psnr is not None and (not isinstance(psnr, dict) or
                             any(v is not None and not _is_number(v) for v in psnr.values())):
        return f"quality.psnr_db is {_shown(psnr)}, not numbers (dB) per kernel"
    return None


def row_name(row: dict) -> str:
    """'model: backend/variant batch N mode', as compare names rows."""
    model = f"{row['model']}: " if isinstance(row.get("model"), str) and row["model"] else ""
    mode = row.get("mode") or "compute"
    return f"{model}{row.get('backend')}/{row.get('variant')} batch {row.get('batch')} {mode}"


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


def _pct(row: dict, p: int) -> str:
    """A latency percentile cell: '—' when the row has too few calls for it to mean anything."""
    lat = row["latency_ms"]
    return _ms(lat[f"p{p}"]) if shown_percentile(p, lat["count"]) else "—"


def status_cell(row: dict, notes: dict[str, int], narrow: bool = False) -> str:
    """'ran', 'ran, unstable', or the status with a footnote number for its reason (`notes`: reason
    -> number, grown here); `narrow`: 'ok', 'unstable', 'not run [n]' / 'failed [n]'."""
    status = row.get("status", STATUS_RAN)
    if status == STATUS_RAN:
        unstable = row.get("stability") == "unstable"
        return ("unstable" if unstable else "ok") if narrow else ("ran, unstable" if unstable else "ran")
    n = notes.setdefault(row.get("reason", ""), len(notes) + 1)
    return f"{NARROW_STATUS.get(status, 'not run') if narrow else status} [{n}]"


def cv_cell(row: dict) -> str:
    cv = row.get("cv")
    if cv is None:
        return "—"
    mark = {"settled": "~", "unstable": "!"}.get(row.get("stability") or "", "")
    return f"{100 * cv:.1f}%{mark}"


def bench_table(report: dict) -> Table:
    """One row per model x backend x variant x batch (x mode), every status included."""
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
    ceil = any(r.get("ceiling_pct") is not None for r in rows)
    kernels = [k for k in KERNEL_NAMES if any(k in ((r.get("quality") or {}).get("psnr_db") or {})
                                              for r in rows)]  # k3 too: --known-blur k3
    errs = any("max_abs_err" in (r.get("quality") or {}) for r in rows)
    tiles = any(r.get("tiles_per_s") for r in rows)
    cols = (["model"] if len(models) > 1 else []) + [
        "backend/variant", "batch", "status", "calls", "CV", "img/s"] + (
        ["deblurred/s", "passed/s", "Mpx/s", "tiles/s"] if tiles else []) + [
        "mean", "median", "p99", "max"] + (
        ["H2D/compute/D2H"] if split else []) + ["GFLOP/s"] + (["%ceil"] if ceil else []) + ["MiB"] + [
        f"PSNR {k}" for k in kernels] + (["max err", "p99.9 err"] if errs else [])
    for c in cols:
        left = c in ("model", "backend/variant", "status")
        table.add_column(c, justify="left" if left else "right", no_wrap=left)
    last = None
    groups = dict.fromkeys((r.get("model"), r["backend"], r["variant"]) for r in rows)
    order = {k: i for i, k in enumerate(groups)}
    rows = sorted(rows, key=lambda r: (order[(r.get("model"), r["backend"], r["variant"])],
                                       r.get("mode", "compute") != "compute", r["batch"]))
    notes: dict[str, int] = {}
    for r in rows:
        group = (r.get("model"), r["backend"], r["variant"], r.get("mode"))
        if last is not None and group != last:
            table.add_section()
        last = group
        head = ([r.get("model", "")] if len(models) > 1 else []) + [row_label(r), str(r["batch"]),
                                                                    status_cell(r, notes)]
        lat = r.get("latency_ms")
        if not lat:
            table.add_row(*head, *(["—"] * (len(cols) - len(head))), style="dim")
            continue
        peak = r.get("peak_device_mb") if r.get("peak_device_mb") is not None else r.get("peak_rss_mb")
        q = r.get("quality") or {}
        psnr = q.get("psnr_db") or {}
        cells = head + [
            str(lat["count"]), cv_cell(r), _f(r["images_per_s"], ".2f"),
            *([_f(r.get("deblurred_per_s"), ".2f"), _f(r.get("passed_per_s"), ".2f"),
               _f(r.get("mpx_per_s"), ".2f"), _f(r.get("tiles_per_s"), ".1f")] if tiles else []),
            _ms(lat["mean"]), _ms(lat["p50"]), _pct(r, 99), _ms(lat["max"]),
            *([phase_cell(r.get("phases_ms"))] if split else []),
            _f(r.get("gflops"), ".1f"), *([_f(r.get("ceiling_pct"), ".0f")] if ceil else []), _f(peak, ".0f"),
            *(_f(psnr.get(k), ".2f") for k in kernels),
            *([_f(q.get("max_abs_err"), ".2e"), _f(q.get("p999_abs_err"), ".2e")] if errs else [])]
        table.add_row(*cells, style="red" if r.get("status") != STATUS_RAN else None)
    caption = ["latency per call (one batch) in ms, warm-up excluded; calls: timed calls; p99 '—' under "
               "100 calls; CV: std/mean of the call latency (~ settled after extension, ! never settled); "
               "MiB: peak RSS (CPU) or device memory (GPU); PSNR in dB vs the sharp frames; err: |output - "
               "fp32 reference|"]
    caption += [f"ceiling {c['device']} {c['dtype']} {c['best_gflops']:.0f} GFLOP/s"
                for c in report.get("ceilings", [])]
    caption += [escape(f"[{n}] {reason}") for reason, n in notes.items()]
    table.caption = "\n".join(caption)
    return table


NARROW_STATUS = {STATUS_RAN: "ok", STATUS_FAILED_QUALITY: "failed"}


def narrow_tables(report: dict) -> list[Table]:
    """`dtk bench`'s tables within 100 columns: one for the compute rows (img/s, median and p99
    latency, GFLOP/s), one for the e2e rows (frames/s, split into frames deblurred and frames
    passed as they are, and the frames' megapixels/s); PSNR per kernel of each runner. Every other
    figure is in `bench_table` (--wide) and the JSON."""
    rows = report["rows"]
    models = {r.get("model", "") for r in rows}
    kernels = [k for k in KERNEL_NAMES if any(k in ((r.get("quality") or {}).get("psnr_db") or {})
                                              for r in rows)]
    psnr_head = [f"PSNR {'/'.join(kernels)}"] if kernels else []
    size = report.get("config", {}).get("config", {}).get("size")
    label = report.get("model", {}).get("label")
    groups = dict.fromkeys((r.get("model"), r["backend"], r["variant"]) for r in rows)
    order = {k: i for i, k in enumerate(groups)}
    tables = []
    for mode in ("compute", "e2e"):
        mine = sorted((r for r in rows if r.get("mode", "compute") == mode),
                      key=lambda r: (order[(r.get("model"), r["backend"], r["variant"])], r["batch"]))
        if not mine:
            continue
        if mode == "compute":
            title = "dtk bench" + (f" — {label}" if label else "") + (
                f" ({size[0]}x{size[1]})" if size else "")
            figures = ["img/s", "median", "p99", "GFLOP/s"]
        else:
            frames = (report.get("extra") or {}).get("e2e_frames") or {}
            blur = frames.get("blur")
            title = "dtk bench e2e" + (f" — {label}" if label else "") + (
                f": {frames['where']}" if frames.get("where") else "") + (f", {blur}-blurred" if blur else "")
            figures = ["frames/s", "deblurred", "passed", "Mpx/s"]
        cols = (["model"] if len(models) > 1 else []) + ["backend/variant", "batch", "status", *figures,
                                                          *psnr_head]
        table = Table(title=title)
        for c in cols:
            left = c in ("model", "backend/variant", "status")
            table.add_column(c, justify="left" if left else "right", no_wrap=left)
        notes: dict[str, int] = {}
        last = None
        for r in mine:
            group = (r.get("model"), r["backend"], r["variant"])
            if last is not None and group != last:
                table.add_section()
            last = group
            head = ([r.get("model", "")] if len(models) > 1 else []) + [
                f"{r['backend']}/{r['variant']}", str(r["batch"]), status_cell(r, notes, narrow=True)]
            lat = r.get("latency_ms")
            if not lat:
                table.add_row(*head, *(["—"] * (len(cols) - len(head))), style="dim")
                continue
            if mode == "compute":
                cells = [_f(r["images_per_s"], ".2f"), _ms(lat["p50"]), _pct(r, 99),
                         _f(r.get("gflops"), ".1f")]
            else:
                cells = [_f(r["images_per_s"], ".2f"), _f(r.get("deblurred_per_s"), ".2f"),
                         _f(r.get("passed_per_s"), ".2f"), _f(r.get("mpx_per_s"), ".2f")]
            psnr = (r.get("quality") or {}).get("psnr_db") or {}
            if kernels:
                cells.append("/".join(_f(psnr.get(k), ".2f") for k in kernels))
            table.add_row(*head, *cells, style="red" if r.get("status") != STATUS_RAN else None)
        if mode == "compute":
            caption = ["img/s: network inputs per second, batches already in memory (compute only), "
                       "warm-up excluded; median, p99: ms per call (one batch), p99 '—' under 100 calls"]
        else:
            caption = ["frames read, blurred and deblurred as dtk run does them; deblurred, passed: "
                       "frames/s of each (the gate passes frames that need no deblurring as they are)"]
        caption += ["PSNR: dB vs the sharp frames" if kernels else "",
                    "every figure: dtk bench --wide, or --json"]
        caption += [escape(f"[{n}] {reason}") for reason, n in notes.items()]
        table.caption = "\n".join(c for c in caption if c)
        tables.append(table)
    return tables


def notes_text(report: dict) -> list[str]:
    """Hints, GPU warnings and the best batch under the latency budget, as lines for the console."""
    extra = report.get("extra", {})
    lines = [f"hint: {h}" for h in extra.get("hints", [])]
    told = report.get("config", {}).get("config", {}).get("known_blur")
    if told:
        lines.append(f"known blur: e2e rows run told {told} and the quality columns score {told}-blurred "
                     "frames told it (--known-blur); compute rows feed random batches as always")
    lines += [f"warning: {w}" for w in extra.get("gpu_warnings", [])]
    for r in report["rows"]:
        for h in r.get("hints") or []:
            lines.append(f"hint {group_name(r)} batch {r['batch']}: {h}")
    for b in extra.get("latency_budget", []):
        name = f"{b['backend']}/{b['variant']}"
        if b["batch"] is None:
            lines.append(f"latency budget {b['budget_ms']:g} ms: no batch of {name} fits ({b['statistic']})")
        else:
            lines.append(f"latency budget {b['budget_ms']:g} ms: {name} best at batch {b['batch']} "
                         f"({b['images_per_s']:.2f} img/s, {b['statistic']} {b['latency_ms']:.1f} ms)")
    return lines


def export_times(report: dict, path: Path | str) -> Path:
    """Every timed call of every row (trtexec's --exportTimes): start and latency in ms."""
    doc = [{"model": r.get("model", ""), "backend": r["backend"], "variant": r["variant"],
            "batch": r["batch"],
            "mode": r.get("mode", "compute"), "status": r.get("status", STATUS_RAN),
            "calls": [{"start_ms": s, "latency_ms": t}
                      for s, t in zip(r.get("call_start_ms") or [None] * len(r.get("samples_ms") or []),
                                      r.get("samples_ms") or [], strict=False)]}
           for r in report["rows"]]
    return write_json(path, doc)


def phase_cell(phases: dict[str, float] | None) -> str:
    """'0.4/12.1/0.3': mean ms of the H2D copy, compute and D2H copy of one call ('-' when unknown)."""
    if not phases:
        return "-"
    return "/".join(_ms(phases.get(k, float("nan"))) for k in ("h2d", "compute", "d2h"))


def csv_rows(report: dict) -> list[dict[str, Any]]:
    out = []
    for r in report["rows"]:
        lat = r.get("latency_ms") or {}
        flat = {k: r.get(k) for k in CSV_FIELDS if k in r}
        flat.update({f"lat_{k}_ms": lat.get(k) for k in ("min", "mean", "p50", "p90", "p95", "p99", "max")})
        flat.update({f"{k}_ms": v for k, v in (r.get("phases_ms") or {}).items()})
        q = r.get("quality") or {}
        flat.update({f"psnr_{k}_db": v for k, v in (q.get("psnr_db") or {}).items()})
        flat.update({k: q.get(k) for k in ("max_abs_err", "p999_abs_err")})
        flat["hints"] = "; ".join(r.get("hints") or [])
        out.append({k: flat.get(k) for k in CSV_FIELDS})
    return out


def write_csv(report: dict, path: Path | str) -> Path:
    """One CSV row per table row, written atomically (a link at `path` is replaced, not followed)."""
    fh = io.StringIO(newline="")
    writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(csv_rows(report))
    return write_bytes_atomic(path, fh.getvalue().encode())


def write_plot(report: dict, path: Path | str) -> Path:
    """Left: throughput vs batch per backend/variant. Middle: latency (p50 solid, p99 dashed; the max
    under 100 calls) vs throughput across the batch sweep, Pareto front circled. Right: latency CDF."""
    import numpy as np

    plt = pyplot()
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(17, 4.8))
    rows = ran(report["rows"])
    if not rows:
        raise DtkError("nothing to plot: no row ran")
    many = len({x.get("model") for x in rows}) > 1
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(group_name(r, many), []).append(r)
    for name, members in groups.items():
        members = sorted(members, key=lambda r: r["batch"])
        line, = ax1.plot([r["batch"] for r in members], [r["images_per_s"] for r in members], marker="o",
                         label=name)
        tput = [r["images_per_s"] for r in members]
        p50 = [r["latency_ms"]["p50"] for r in members]
        tail = [r["latency_ms"]["p99" if shown_percentile(99, r["latency_ms"]["count"]) else "max"]
                for r in members]
        ax3.plot(tput, p50, marker="o", color=line.get_color(), label=f"{name} p50")
        ax3.plot(tput, tail, marker="^", ls="--", color=line.get_color(), alpha=0.6, label=f"{name} p99/max")
        for r, x, y in zip(members, tput, p50, strict=True):
            ax3.annotate(f"b{r['batch']}", (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
        for r in members:
            s = np.sort(np.asarray(r.get("samples_ms") or [], dtype=float))
            if s.size:
                ax2.step(s, np.arange(1, s.size + 1) / s.size, where="post", label=f"{name} b{r['batch']}")
    points = [(r["latency_ms"]["p50"], r["images_per_s"]) for r in rows]
    front = pareto_front(points)
    ax3.plot([points[i][1] for i in front], [points[i][0] for i in front], "o", ms=13, mfc="none", mec="k",
             label="Pareto front (p50)")
    batches = sorted({r["batch"] for r in rows})
    ax1.set_xscale("log", base=2)
    ax1.set_xticks(batches, [str(b) for b in batches])
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("throughput (images/s)")
    ax1.set_title("Throughput vs batch")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=8)
    ax3.set_yscale("log")
    ax3.set_xlabel("throughput (images/s)")
    ax3.set_ylabel("latency per call (ms, log)")
    ax3.set_title("Latency vs throughput (batch sweep)")
    ax3.grid(True, alpha=0.3)
    budget = report.get("config", {}).get("latency_budget_ms")
    if budget:
        ax3.axhline(budget, color="r", lw=0.8, label=f"budget {budget:g} ms")
    ax3.legend(fontsize=6)
    ax2.set_xscale("log")
    ax2.set_xlabel("latency per call (ms, log)")
    ax2.set_ylabel("fraction of calls")
    ax2.set_title("Latency CDF")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)

