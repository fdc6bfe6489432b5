"""Terminal and JSON output every layer may use: the two Rich consoles and dtk's JSON rules."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console

from toolkit.core.atomic import write_bytes_atomic


def _console(stderr: bool = False) -> Console:
    """A console that keeps tables readable when output is piped (no terminal: 140 columns)."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, width=None if probe.is_terminal else 140)


console = _console()
err_console = _console(stderr=True)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """JSON text; non-finite floats become null."""
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False)


def write_json(path: Path | str, obj: Any) -> Path:
    """`dumps(obj)` written atomically (parents created)."""
    return write_bytes_atomic(path, (dumps(obj) + "\n").encode())


def print_wide(table, out: Console | None = None) -> None:
    """Print a wide table whole: piped output (no terminal) gets the table's natural width instead
    of cells cut short with '…'; a terminal keeps its own width."""
    out = out or console
    if out.is_terminal:
        out.print(table)
        return
    natural = out.measure(table, options=out.options.update_width(100_000)).maximum
    width = out.width
    out.width = max(width, natural)
    try:
        out.print(table)
    finally:
        out.width = width
