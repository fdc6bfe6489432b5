"""Compare two bench reports row by row: ratios B / A of throughput and latency, and what differs.

Rows match on (model, backend, variant, batch, mode). images/s ratio > 1 means B is faster;
latency ratio < 1 means B is faster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

ENV_KEYS = ("platform", "cpu_count", "torch", "onnxruntime", "tensorrt", "gpu", "cuda", "dali")


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


def _key(row: dict) -> tuple:
    return (row.get("model", ""), row["backend"], row["variant"], int(row["batch"]),
            row.get("mode", "compute"))


def _ratio(b: float | None, a: float | None) -> float:
    if a is None or b is None or a == 0:
        return float("nan")
    return b / a


def compare_reports(a: dict, b: dict) -> dict[str, Any]:
    """Ratios for rows present in both reports, rows only in one, and environment differences."""
    rows_a = {_key(r): r for r in a["rows"]}
    rows_b = {_key(r): r for r in b["rows"]}
    ratios = []
    for key, ra in rows_a.items():
        rb = rows_b.get(key)
        if rb is None:
            continue
        ratios.append(RowRatio(*key, a_images_per_s=ra["images_per_s"], b_images_per_s=rb["images_per_s"],
                               throughput_ratio=_ratio(rb["images_per_s"], ra["images_per_s"]),
                               p50_ratio=_ratio(rb["latency_ms"]["p50"], ra["latency_ms"]["p50"]),
                               p99_ratio=_ratio(rb["latency_ms"]["p99"], ra["latency_ms"]["p99"])))
    env_a, env_b = a.get("environment", {}), b.get("environment", {})
    env_diff = {k: [env_a.get(k), env_b.get(k)] for k in ENV_KEYS if env_a.get(k) != env_b.get(k)}
    return {
        "ratios": [asdict(r) for r in ratios],
        "only_in_a": [list(k) for k in rows_a if k not in rows_b],
        "only_in_b": [list(k) for k in rows_b if k not in rows_a],
        "environment_diff": env_diff,
    }


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
