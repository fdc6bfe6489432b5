"""Polygraphy's logger, set for dtk: warnings and errors only, no colour probe.

Polygraphy (NVIDIA's TensorRT toolkit: ONNX loaders, TensorRT/ONNX Runtime runners, comparator)
logs every step at INFO to stdout; dtk prints its own one-line summaries instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from toolkit.core.lazy import optional_import


def quiet_polygraphy(severity: str = "WARNING") -> AbstractContextManager:
    """A context manager under which Polygraphy logs only `severity` and above."""
    logger = optional_import("polygraphy.logger").G_LOGGER
    logger.colors = False  # else its first message probes for the `colored` module and warns
    return logger.verbosity(getattr(logger, severity))
