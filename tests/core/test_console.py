"""Console output shared by every command."""

from __future__ import annotations


def test_wide_tables_print_whole_when_piped():
    """Piped output (no terminal) gets a wide table at its natural width: no cell cut with '…'."""
    import io

    from rich.console import Console
    from rich.table import Table

    from toolkit.core.console import print_wide

    table = Table()
    for i in range(12):
        table.add_column(f"column {i}")
    table.add_row(*[f"{1000.5 + i:.1f} ms" for i in range(12)])
    out = Console(file=io.StringIO(), width=80)
    print_wide(table, out)
    text = out.file.getvalue()
    assert "…" not in text and "1011.5 ms" in text and "column 11" in text
    assert out.width == 80  # restored
