"""Compare two bench reports row by row: ratios B / A of throughput and latency, and what differs.

Rows match on (model, backend, variant, batch, mode). images/s ratio > 1 means B is faster;
latency ratio < 1 means B is faster. Only rows that ran in both are compared.

The regression gate (`dtk bench compare A.json B.json --max-slowdown 5%`): a matching row is a
regression when B's images/s is below A's by more than the allowed slowdown (A/B - 1 > limit), or
when its PSNR on any kernel dropped by more than `--max-psnr-drop` dB; the CLI then exits 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from bench.report import row_name
from toolkit.core.errors import DtkError

EXIT_REGRESSION = 1  # the gate's exit code: a matching row got slower or lost PSNR
ENV_KEYS = ("platform", "cpu_count", "torch", "onnxruntime", "openvino", "tensorrt", "gpu", "cuda", "dali")


@dataclass(frozen=True)
class RowRatio:
    model: str
    backend: str
    variant: str
    batch: int
    mode: str
    a_images_per_s: float
    b_images_per_s: float
    throughput_ratio: float
    p50_ratio: float
    p99_ratio: float
    slowdown: float = float("nan")  # A images/s / B images/s - 1: 0.05 = B is 5 % slower
    psnr_drop_db: float | None = None  # largest PSNR loss over the kernels (A - B), when both have one
    psnr_lost: bool = False  # A scored a PSNR that B does not have


def _key(row: dict) -> tuple:
    return (row.get("model", ""), row["backend"], row["variant"], int(row["batch"]),
            row.get("mode", "compute"))


def _ratio(b: float | None, a: float | None) -> float:
    if a is None or b is None or a == 0:
        return float("nan")
    return b / a


def compare_reports(a: dict, b: dict) -> dict[str, Any]:
    """Ratios for rows present in both reports, rows only in one, and environment differences."""
    rows_a = {_key(r): r for r in a["rows"] if r.get("latency_ms")}
    rows_b = {_key(r): r for r in b["rows"] if r.get("latency_ms")}
    ratios = []
    for key, ra in rows_a.items():
        rb = rows_b.get(key)
        if rb is None:
            continue
        ratios.append(RowRatio(*key, a_images_per_s=ra["images_per_s"], b_images_per_s=rb["images_per_s"],
                               throughput_ratio=_ratio(rb["images_per_s"], ra["images_per_s"]),
                               p50_ratio=_ratio(rb["latency_ms"]["p50"], ra["latency_ms"]["p50"]),
                               p99_ratio=_ratio(rb["latency_ms"]["p99"], ra["latency_ms"]["p99"]),
                               slowdown=_ratio(ra["images_per_s"], rb["images_per_s"]) - 1.0,
                               psnr_drop_db=psnr_drop(ra, rb), psnr_lost=psnr_lost(ra, rb)))
    env_a, env_b = a.get("environment", {}), b.get("environment", {})
    env_diff = {k: [env_a.get(k), env_b.get(k)] for k in ENV_KEYS if env_a.get(k) != env_b.get(k)}
    return {
        "ratios": [asdict(r) for r in ratios],
        "only_in_a": [list(k) for k in rows_a if k not in rows_b],
        "only_in_b": [list(k) for k in rows_b if k not in rows_a],
        "environment_diff": env_diff,
    }


def psnr_drop(a: dict, b: dict) -> float | None:
    """The largest PSNR loss (dB, A - B) over the kernels both rows scored, or None."""
    pa = (a.get("quality") or {}).get("psnr_db") or {}
    pb = (b.get("quality") or {}).get("psnr_db") or {}
    drops = [pa[k] - pb[k] for k in pa if pa[k] is not None and pb.get(k) is not None]
    return max(drops) if drops else None


def psnr_lost(a: dict, b: dict) -> bool:
    """Whether A has a PSNR on a kernel where B has none."""
    pa = (a.get("quality") or {}).get("psnr_db") or {}
    pb = (b.get("quality") or {}).get("psnr_db") or {}
    return any(v is not None and pb.get(k) is None for k, v in pa.items())


def parse_percent(text: str) -> float:
    """'5%' or '5' -> 0.05; DtkError otherwise."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise DtkError(f"--max-slowdown takes a percentage such as 5%, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise DtkError(f"--max-slowdown must be a finite percentage >= 0, got {text!r}")
    return value / 100.0


def regressions(result: dict[str, Any], max_slowdown: float | None,
                max_psnr_drop: float | None = None) -> list[str]:
    """Why the gate fails: one line per matching row slower than allowed or that lost PSNR.

    The gate fails closed: with a limit given, DtkError "nothing to compare" when no row ran in
    both reports (or, for --max-psnr-drop, no matching row has a PSNR in both); a row whose new
    images/s is 0 or unknown is slower than any limit; a row that had a PSNR and lost it dropped."""
    gating = max_slowdown is not None or max_psnr_drop is not None
    ratios = result["ratios"]
    if gating and not ratios:
        raise DtkError(f"nothing to compare: no row ran in both reports ({len(result['only_in_a'])} only in "
                       f"A, {len(result['only_in_b'])} only in B; rows match on model, backend, variant, "
                       "batch and mode), so the gate cannot pass")
    if max_psnr_drop is not None and not any(r.get("psnr_drop_db") is not None for r in ratios):
        raise DtkError("nothing to compare: no matching row has a PSNR in both reports (bench without "
                       "--no-quality), so --max-psnr-drop cannot pass")
    out = []
    for r in ratios:
        name = row_name(r)
        slowdown, b_ips = r["slowdown"], r["b_images_per_s"]
        if max_slowdown is not None:
            if b_ips is None or not math.isfinite(b_ips) or b_ips <= 0 or not math.isfinite(slowdown):
                out.append(f"{name}: B measured {b_ips} images/s (A {r['a_images_per_s']}): no throughput "
                           "to compare counts as a regression")
            elif slowdown > max_slowdown:
                out.append(f"{name}: {100 * slowdown:.1f}% slower ({r['a_images_per_s']:.2f} -> "
                           f"{b_ips:.2f} img/s), allowed {100 * max_slowdown:g}%")
        drop = r.get("psnr_drop_db")
        if max_psnr_drop is not None and drop is None and r.get("psnr_lost"):
            out.append(f"{name}: A has a PSNR, B has none: counts as a drop")
        elif max_psnr_drop is not None and drop is not None and drop > max_psnr_drop:
            out.append(f"{name}: PSNR dropped {drop:.2f} dB, allowed {max_psnr_drop:g} dB")
    return out


def compare_table(result: dict, name_a: str = "A", name_b: str = "B") -> Table:
    table = Table(title=f"dtk bench compare: B = {name_b} over A = {name_a}")
    for c in ("model", "backend/variant", "batch", "mode", "A images/s", "B images/s", "B/A images/s",
              "B/A median", "B/A p99"):
        table.add_column(c, justify="left" if c in ("model", "backend/variant", "mode") else "right")
    for r in result["ratios"]:
        tr = r["throughput_ratio"]
        style = "green" if tr > 1.05 else "red" if tr < 0.95 else ""
        table.add_row(r["model"], f"{r['backend']}/{r['variant']}", str(r["batch"]), r["mode"],
                      f"{r['a_images_per_s']:.2f}", f"{r['b_images_per_s']:.2f}",
                      f"[{style}]{tr:.3f}x[/]" if style else f"{tr:.3f}x",
                      f"{r['p50_ratio']:.3f}x", f"{r['p99_ratio']:.3f}x")
    notes = [f"{k}: {va} -> {vb}" for k, (va, vb) in result["environment_diff"].items()]
    if result["only_in_a"] or result["only_in_b"]:
        notes.append(f"unmatched rows: {len(result['only_in_a'])} only in A, "
                     f"{len(result['only_in_b'])} only in B")
    table.caption = "; ".join(notes) if notes else "same environment"
    return table
