"""The one rule for numeric and list options: finite and in range, never empty, checked before
anything loads.

Every command's numbers (durations, warm-ups, sizes, opsets, learning rates, batches, crops,
fractions, epochs, tolerances and thresholds) pass `check_number` in the CLI before a model or a
frame is touched; nan and inf never pass (a nan compares false with every bound, an inf duration
never ends). A comma-separated list option (`--kernels`, `--blur`, `--baselines`, `--frames`,
`--batch`, ...) is split by `parse_list`, which refuses an empty one: an empty list never means
"all". `engines.options` keeps the runner options' own bounds (batch, threads, precision).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from toolkit.core.errors import DtkError


def _bound_text(min: float | None, max: float | None, above: float | None, below: float | None) -> str:
    parts = []
    if min is not None:
        parts.append(f">= {min:g}")
    if above is not None:
        parts.append(f"> {above:g}")
    if max is not None:
        parts.append(f"<= {max:g}")
    if below is not None:
        parts.append(f"< {below:g}")
    return " and ".join(parts) if parts else "finite"


def check_number(flag: str, value: float | int | None, *, min: float | None = None,  # noqa: A002
                 max: float | None = None, above: float | None = None,  # noqa: A002
                 below: float | None = None, multiple_of: int | None = None, hint: str = "") -> None:
    """DtkError unless `value` (None: not given, passes) is a finite number with min <= value <= max,
    value > above, value < below and, for `multiple_of`, an integer multiple of it."""
    if value is None:
        return
    wanted = _bound_text(min, max, above, below)
    tail = f" ({hint})" if hint else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DtkError(f"{flag} must be a finite number {wanted}, got {value}{tail}")
    if ((min is not None and value < min) or (max is not None and value > max)
            or (above is not None and value <= above) or (below is not None and value >= below)):
        raise DtkError(f"{flag} must be {wanted}, got {value:g}{tail}")
    if multiple_of is not None and value % multiple_of:
        raise DtkError(f"{flag} must be a multiple of {multiple_of}, got {value:g}{tail}")


def check_tolerance(flag: str, value: float | None, *, max: float | None = None) -> None:  # noqa: A002
    """A tolerance or threshold: finite and >= 0 (None: not given)."""
    check_number(flag, value, min=0, max=max)


def check_choice(flag: str, value: str, choices: Iterable[str]) -> None:
    """DtkError unless `value` is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise DtkError(f"unknown {flag} {value!r}: choose one of {', '.join(choices)}")


def parse_list(text: str, what: str, hint: str = "") -> list[str]:
    """The items of a comma-separated list option (`what`: its flag), stripped; DtkError when it
    names none ('', ' ', ','): an empty list is a mistake, never "all" nor "none"."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise DtkError(f"{what} is empty: give at least one comma-separated value"
                       + (f" ({hint})" if hint else ""))
    return items
