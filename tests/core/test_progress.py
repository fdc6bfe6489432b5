"""The progress bar's rate is work done over time elapsed, not Rich's windowed estimate."""

from __future__ import annotations

from toolkit.core.progress import format_rate, make_progress


def test_rate_is_completed_over_elapsed():
    assert format_rate(20, 12.5) == "1.60 frames/s"
    assert format_rate(0, 3.0) == "" and format_rate(5, 0) == "" and format_rate(5, None) == ""


def test_rate_column_leaves_out_work_done_before_the_task_started():
    with make_progress(unit="steps") as progress:
        task_id = progress.add_task("training", total=100, completed=40, done_before=40)
        task = progress.tasks[task_id]
        task.start_time = task.get_time() - 10.0  # started 10 s ago
        progress.update(task_id, completed=60)
        rate = progress.columns[4].render(progress.tasks[task_id]).plain
    assert rate.startswith("2.0") and rate.endswith("steps/s"), rate  # 20 steps in ~10 s, not 60


def test_the_bar_shows_only_once_there_is_work_left():
    with make_progress() as progress:
        task_id = progress.add_task("deblurring", total=3)
        progress.update(task_id, completed=3)  # a rerun with everything done: nothing to show
        assert not progress.live.is_started
        progress.reset(task_id, total=5, completed=2)  # work left: shown
        assert progress.live.is_started
    assert not progress.live.is_started
