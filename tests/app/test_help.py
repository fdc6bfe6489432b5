"""Every command's --help: flags shown as flags, bracketed text ([ray], [gpu]) kept (issue 18), and
help a person reads at 80 columns without a TTY (issue 40): nothing cut, every choice and metavar
whole, each command's first help line shown in full, also in its group's command list."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from toolkit.app.cli import app

runner = CliRunner()


def all_commands() -> list[tuple[list[str], object]]:
    """(argv prefix, click command) for the root, every group and every subcommand."""
    out = []

    def walk(cmd, path: list[str]) -> None:
        out.append((path, cmd))
        for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


COMMANDS = all_commands()


def help_text(path: list[str]) -> str:
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    return res.output


def flat(text: str) -> str:
    """Rendered help without the panel borders and line wraps."""
    return " ".join(text.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


def test_every_command_is_walked():
    names = {" ".join(p) for p, _ in COMMANDS}
    for name in ("run", "eval", "export", "bench", "bench compare", "data demo", "build-engine", "quantize",
                 "train", "doctor"):
        assert name in names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "dtk")
def test_help_shows_flags_without_bool_metavar(path):
    text = help_text(path)
    assert "<bool>" not in text
    assert "--help" in text


def test_flag_rows_stay_flags():
    text = help_text(["run"])
    row = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("--overwrite"))
    assert "<" not in row and "Redo every frame" in row


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_bracketed_text_in_help_is_rendered(path, cmd):
    """Every bracketed piece written in a help text or docstring (`[ray]`, `[gpu]`, `[cpu]`; markup
    would swallow them) must appear in the rendered --help."""
    sources = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    pieces = {m.replace("\\[", "[") for s in sources for m in re.findall(r"\\?\[[^\]\[]*\]", s)}
    text = flat(help_text(path))
    for piece in pieces:
        assert " ".join(piece.split()) in text, (piece, text)


def help_at_80(path: list[str]) -> str:
    """--help as a person's 80-column terminal gets it when the output is not a TTY (a pipe, a log)."""
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    return res.output


def first_line(cmd) -> str:
    """The first paragraph of a command's help, on one line: what the command does."""
    return " ".join((cmd.help or "").strip().split("\n\n")[0].split())


def metavars(cmd) -> list[str]:
    return [p.metavar for p in cmd.params if getattr(p, "metavar", None)]


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_help_reads_at_80_columns(path, cmd):
    text = help_at_80(path)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert "…" not in text and "│" not in text
    head = first_line(cmd)
    assert head and head in flat(text), (head, text)
    for metavar in metavars(cmd):  # a choice list or a name, on one line, whole
        assert metavar in text, (metavar, text)
    sources = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    for choices in {m for s in sources for m in re.findall(r"\b\w+(?:\|[\w-]+)+\b", s)}:
        assert choices in text, (choices, text)  # `auto|tensorrt|onnxruntime|...` never cut or broken


@pytest.mark.parametrize("path,cmd", [(p, c) for p, c in COMMANDS if getattr(c, "commands", None)],
                         ids=lambda x: " ".join(x) or "dtk" if isinstance(x, list) else "")
def test_command_lists_show_each_first_line_whole(path, cmd):
    """Click shortens a command's first sentence to fit the list; each must fit, so none ends in '...'."""
    text = flat(help_at_80(path))
    for name, sub in cmd.commands.items():
        assert f"{name} {first_line(sub)}" in text, (name, text)
    assert "..." not in text.replace("[ARGS]...", "").replace("(mp4, mkv, mov, ...)", "")


def test_root_help_says_what_dtk_does_today():
    text = flat(help_at_80([]))
    assert "seed U-Net" not in text and "videos" in text and "--known-blur" in text
    assert "OpenVINO" in text and "TensorRT" in text
    run = flat(help_at_80(["run"]))
    assert "video" in run.split("Arguments:")[0]


def test_real_entry_point_without_a_tty_wraps_at_80():
    """The installed `dtk` in a pipe (no TTY) with COLUMNS=80: the wrapped help, choices whole."""
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("TERMINAL_WIDTH", None)
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = f"{root}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.run([sys.executable, "-c", "from toolkit.app.cli import main; main()", "run", "--help"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    assert "--backend [auto|tensorrt|onnxruntime|openvino|torch]" in proc.stdout
    assert "…" not in proc.stdout
