"""Rich progress bars for long work: count, rate and ETA."""

from __future__ import annotations

from collections.abc import Callable

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from toolkit.core.console import err_console


class RateColumn(TextColumn):
    """Items per second of a task since it started, e.g. '12.3 frames/s'.

    completed / elapsed, not Rich's speed estimate (a window of recent updates, which batched
    updates inflate: it once showed 25.9 frames/s for a run doing 1.6). Work counted as done
    when the task was added (a resumed run) is passed as the task field `done_before` and left out.
    """

    def __init__(self, unit: str = "frames"):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D102
        from rich.text import Text

        return Text(format_rate(task.completed - task.fields.get("done_before", 0), task.elapsed, self.unit),
                    style="cyan")


def format_rate(done: float, elapsed: float | None, unit: str = "frames") -> str:
    """'N.NN unit/s' from work done and seconds elapsed; '' before there is anything to divide."""
    if not elapsed or elapsed <= 0 or done <= 0:
        return ""
    return f"{done / elapsed:.2f} {unit}/s"


class LazyProgress(Progress):
    """A Progress that shows nothing until there is work: it starts on the first update that
    leaves a task with something to do (total unknown, or fewer completed than the total), so a
    run refused before its work, or a rerun with nothing left, prints no empty bar."""

    def __enter__(self) -> LazyProgress:
        return self

    def stop(self) -> None:  # noqa: D102 - Rich prints a blank line for a bar never shown
        if self.live.is_started:
            super().stop()

    def _show_if_work(self, task_id) -> None:
        task = next((t for t in self.tasks if t.id == task_id), None)
        if task is not None and (task.total is None or task.completed < task.total):
            self.start()  # Rich's Live: a second start is a no-op

    def update(self, task_id, **kwargs) -> None:  # noqa: D102
        super().update(task_id, **kwargs)
        self._show_if_work(task_id)

    def reset(self, task_id, **kwargs) -> None:  # noqa: D102
        super().reset(task_id, **kwargs)
        self._show_if_work(task_id)


def make_progress(unit: str = "frames", transient: bool = False) -> Progress:
    """A progress bar on stderr (stdout stays clean for --json output), shown from the first
    update that leaves work to do (`LazyProgress`)."""
    return LazyProgress(
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


def resume_aware(progress: Progress, task) -> Callable[[int, int], None]:
    """A `progress(finished, total)` callback whose first call (the frames already done when a run
    resumes) is kept out of the rate."""
    seen: list[int] = []

    def update(finished: int, _total: int) -> None:
        if not seen:
            seen.append(finished)
            progress.update(task, completed=finished, done_before=finished)
        else:
            progress.update(task, completed=finished)

    return update


def tile_counter(progress: Progress, task, label: str = "deblurring") -> Callable[[int], None]:
    """An `on_tiles(n)` callback: the task's description counts network passes (tiles of large
    frames), so a frame of many tiles shows progress before it is written. The task field `label`,
    when set (a folder run names the video it is on), replaces `label`."""
    count = [0]

    def update(n: int) -> None:
        count[0] += n
        shown = next((t.fields.get("label", label) for t in progress.tasks if t.id == task), label)
        progress.update(task, description=f"{shown} ({count[0]:,} tiles)")

    return update
