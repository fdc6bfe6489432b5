"""The one exception type for mistakes a user can cause."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


class DtkError(Exception):
    """A user-facing error: its message says what went wrong and what to do.

    The CLI prints it in red and exits with code 2, without a traceback
    (`dtk --debug ...` shows the traceback).
    """

    exit_code = 2


class FrameSkipped(DtkError):
    """One frame that a command cannot use (unreadable, or not scorable): skipped and listed with
    `reason`, or raised with --strict."""

    prefix = ""  # what the message says before the path

    def __init__(self, path: object, reason: str):
        super().__init__(f"{self.prefix}{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def exits_on_dtk_error(main: Callable[..., Any]) -> Callable[..., int]:
    """A `python -m` tool's main: a DtkError is one `error: ...` line on stderr and exit code 2,
    no traceback; otherwise `main`'s return value when it is an exit code, else 0."""

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> int:
        try:
            code = main(*args, **kwargs)
        except DtkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        return code if isinstance(code, int) and not isinstance(code, bool) else 0

    return run
