"""Polygraphy's logger, set for dtk: warnings and errors only, no colour probe.

Polygraphy (NVIDIA's TensorRT toolkit: ONNX loaders, TensorRT/ONNX Runtime runners, comparator)
logs every step at INFO to stdout; dtk prints its own one-line summaries instead.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, redirect_stdout

from toolkit.core.errors import DtkError
from toolkit.core.lazy import optional_import


def quiet_polygraphy(severity: str = "WARNING") -> AbstractContextManager:
    """A context manager under which Polygraphy logs only `severity` and above."""
    logger = optional_import("polygraphy.logger").G_LOGGER
    logger.colors = False  # else its first message probes for the `colored` module and warns
    return logger.verbosity(getattr(logger, severity))


class _Tee(io.TextIOBase):
    """Text written to it goes on to `out` and is kept."""

    def __init__(self, out) -> None:
        self.out, self.text = out, []

    def write(self, text: str) -> int:
        self.text.append(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


@contextmanager
def polygraphy_failures(failure: str, annotate: Callable[[list[str]], list[str]] = list) -> Iterator[None]:
    """Run Polygraphy quietly with its log on stderr (stdout may carry `--json -`); its failure
    (PolygraphyException, raised by G_LOGGER.critical) becomes a DtkError: `failure`, then the
    errors it logged (through `annotate`), else its exception's message."""
    exception = optional_import("polygraphy.exception").PolygraphyException
    tee = _Tee(sys.stderr)
    try:
        with quiet_polygraphy(), redirect_stdout(tee):
            yield
    except exception as exc:
        errors = [line[4:] for line in "".join(tee.text).splitlines() if line.startswith("[E] ")]
        details = "\n  ".join(annotate(errors) if errors else [str(exc)])
        raise DtkError(f"{failure}:\n  {details}") from None
