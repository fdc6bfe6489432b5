"""Rich progress bars for long work: count, rate and ETA."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from toolkit.report import err_console


class RateColumn(TextColumn):
    """Items per second of a task, e.g. '12.3 frames/s'."""

    def __init__(self, unit: str = "frames"):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D102
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.2f} {self.unit}/s", style="cyan")


def make_progress(unit: str = "frames", transient: bool = False) -> Progress:
    """A progress bar on stderr (stdout stays clean for --json output)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )
