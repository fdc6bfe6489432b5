"""Issue 18: every command's --help shows flags as flags and keeps bracketed text ([ray], [gpu])."""

from __future__ import annotations

import re

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
    """Rich markup would swallow `[ray]`, `[gpu]`, `[cpu]`: every bracketed piece written in a help
    text or docstring must appear in the rendered --help."""
    sources = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
    pieces = {m.replace("\\[", "[") for s in sources for m in re.findall(r"\\?\[[^\]\[]*\]", s)}
    text = flat(help_text(path))
    for piece in pieces:
        assert " ".join(piece.split()) in text, (piece, text)
