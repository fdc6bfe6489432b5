"""The `python -m` tools of training/ and bench/ never write over their inputs: a report or
checkpoint path that is the input checkpoint, its sidecar or a file in the photo set is one error
line and exit 2, before any work, and the input is left as it was."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture()
def model(tmp_path):
    from toolkit.core.modelfiles import default_model_path

    src = default_model_path("torch")
    for suffix in (".safetensors", ".json"):
        shutil.copy(src.with_suffix(suffix), tmp_path / f"m{suffix}")
    return tmp_path / "m.safetensors"


def tools(model, photos):
    from bench import int8, native_quality
    from training import calibrate, card, ceiling, decision

    sidecar, stem, ps = model.with_suffix(".json"), str(model.with_suffix("")), str(photos)
    return {
        "ceiling --json CKPT": (ceiling.main, [str(model), "--photoset", ps, "--json", str(model)]),
        "ceiling --json SIDECAR": (ceiling.main, [str(model), "--photoset", ps, "--json", str(sidecar)]),
        "card --json PHOTOSET/F": (card.main, [str(model), "--photoset", ps, "--json",
                                               str(photos / "sources.json")]),
        "calibrate -o CKPT": (calibrate.main, [str(model), "--photos", ps, "-o", stem]),
        "calibrate -o PHOTOSET/X": (calibrate.main, [str(model), "--photos", ps, "-o", str(photos / "x")]),
        "decision -o CKPT": (decision.main, [str(model), "--photos", ps, "-o", stem]),
        "native_quality -o PHOTOSET/X": (native_quality.main, [ps, "-o", str(photos / "q")]),
        "int8 --json FP32": (int8.main, [str(model), str(model), "--json", str(model)]),
    }


@pytest.mark.parametrize("name", ["ceiling --json CKPT", "ceiling --json SIDECAR", "card --json PHOTOSET/F",
                                  "calibrate -o CKPT", "calibrate -o PHOTOSET/X", "decision -o CKPT",
                                  "native_quality -o PHOTOSET/X", "int8 --json FP32"])
def test_a_tool_refuses_to_write_over_its_inputs(name, model, photos, capsys):
    from toolkit.core.errors import exits_on_dtk_error

    main, argv = tools(model, photos)[name]
    before = {p: p.read_bytes() for p in [*model.parent.iterdir(), *photos.iterdir()] if p.is_file()}
    assert exits_on_dtk_error(main)(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to write") and "never writes over its inputs" in err
    assert "Traceback" not in err
    after = {p: p.read_bytes() for p in [*model.parent.iterdir(), *photos.iterdir()] if p.is_file()}
    assert after == before  # nothing written, nothing replaced


@pytest.mark.parametrize("tool", ["calibrate", "photoset", "fit"])
def test_a_tool_with_an_input_error_prints_one_error_line_and_exits_2(tool, model, photos, tmp_path, capsys):
    """An input mistake in a `python -m training.*` tool is `error: ...` on stderr and exit 2 (no
    traceback, no bare exit 1): the checkpoint names no calibration photos, the photo set has no
    sources.json (or one that is not a photo set's index)."""
    from training import calibrate, fit, photoset

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sources.json").write_text('{"not": "a list of records"}')
    main, argv = {
        "calibrate": (calibrate.main, [str(model), "--photos", str(photos), "-o", str(tmp_path / "cal")]),
        "photoset": (photoset.main, ["tune", str(tmp_path / "nowhere")]),
        "fit": (fit.main, [str(tmp_path / "bad"), "-o", str(tmp_path / "run"), "--max-steps", "1"]),
    }[tool]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert ("names no calibration photos" in err if tool == "calibrate" else "sources.json" in err)
    assert not (tmp_path / "cal.safetensors").exists()
