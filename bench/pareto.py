"""Batch sweeps: the latency vs throughput Pareto front and the best batch under a latency budget."""

from __future__ import annotations

from typing import Any


def group_name(row: dict[str, Any], with_model: bool = False) -> str:
    name = f"{row['backend']}/{row['variant']}" + ("" if row.get("mode", "compute") == "compute"
                                                   else f" {row['mode']}")
    return f"{row.get('model', '')}: {name}" if with_model else name


def ran(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with figures (status ran or failed quality: both were measured)."""
    return [r for r in rows if r.get("latency_ms") and r.get("images_per_s")]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, throughput) points no other point beats on both (lower latency,
    higher throughput), in order of latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def best_under_budget(rows: list[dict[str, Any]], budget_ms: float,
                      stat: str = "p99") -> list[dict[str, Any]]:
    """Per backend/variant (and model, mode): the batch with the highest images/s whose latency `stat`
    (p99; the max, more cautious, under 100 calls) is within `budget_ms`; batch None when none fits."""
    groups: dict[tuple, list[dict]] = {}
    for r in ran(rows):
        key = (r.get("model", ""), r["backend"], r["variant"], r.get("mode", "compute"))
        groups.setdefault(key, []).append(r)
    out = []
    for (model, backend, variant, mode), members in groups.items():
        fits = [r for r in members if _latency(r, stat) <= budget_ms]
        best = max(fits, key=lambda r: r["images_per_s"]) if fits else None
        out.append({"model": model, "backend": backend, "variant": variant, "mode": mode,
                    "budget_ms": budget_ms,
                    "batch": best["batch"] if best else None,
                    "images_per_s": best["images_per_s"] if best else None,
                    "latency_ms": _latency(best, stat) if best else None,
                    "statistic": _stat_used(best or members[0], stat)})
    return out


def _stat_used(row: dict[str, Any], stat: str) -> str:
    return stat if stat != "p99" or row["latency_ms"]["count"] >= 100 else "max"


def _latency(row: dict[str, Any], stat: str) -> float:
    return float(row["latency_ms"][_stat_used(row, stat)])
