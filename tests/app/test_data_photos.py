"""`dtk data photos` without the packages: what it writes, and how it says what is missing."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from toolkit.app.cli import app


def test_data_photos_without_a_cache_writes_what_is_here_and_names_the_rest(tmp_path):
    out = tmp_path / "set"
    res = CliRunner().invoke(
        app, ["data", "photos", str(out), "--cache", str(tmp_path / "cache"), "--no-fetch"]
    )
    assert res.exit_code == 0, res.output
    records = json.loads((out / "sources.json").read_text())
    assert {r["source"] for r in records} == {"scikit-image"}  # a dependency: always here
    assert all((out / r["file"]).is_file() for r in records)
    assert all(
        set(r) >= {"licence", "character", "colour", "original_size", "jpeg_quality", "split"}
        for r in records
    )
    text = " ".join(res.output.split())
    assert "apt-get download enlightenment-data" in text
    assert "pip download --no-deps --no-binary thumbor thumbor==7.8.0" in text
    assert "validation is short of" in text
