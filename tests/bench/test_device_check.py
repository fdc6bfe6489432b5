"""The GPU device check's own logic on a CPU: dry run, per-step time limits, the plan, packing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import device_check as dc

REPO = Path(__file__).resolve().parents[2]


def fake_photoset(root: Path) -> Path:
    """A tiny photo set in the layout `dtk data photos` writes (two train photos, one val)."""
    from toolkit.core.demo import skimage_photo_path
    from toolkit.core.frames import read_frame

    root.mkdir(parents=True, exist_ok=True)
    records = []
    for name, split in (("brick", "train"), ("retina", "train"), ("ihc", "val")):
        img = read_frame(skimage_photo_path(name))
        Image.fromarray(img).save(root / f"{name}.jpg", quality=95)
        records.append(
            {
                "name": name,
                "file": f"{name}.jpg",
                "licence": "test",
                "colour": True,
                "split": split,
                "size": list(img.shape[:2]),
            }
        )
    (root / "sources.json").write_text(json.dumps(records))
    return root


def test_dry_run_passes_with_a_photo_set_and_prints_the_plan(tmp_path):
    photos = fake_photoset(tmp_path / "photos")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.device_check",
            "--dry-run",
            "--photos",
            str(photos),
            "--train-minutes",
            "4",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("machine", "train", "bench", "gpu-tests", "native", "run", "pack"):
        assert step in proc.stdout
    assert "dry run: ok" in proc.stdout


def test_dry_run_fails_and_says_how_to_fix_a_missing_photo_set(tmp_path, capsys):
    assert dc.dry_run(tmp_path / "w", tmp_path / "out", 600, 4, tmp_path / "nope") == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "dtk data photos" in out


def test_dry_run_names_a_photo_listed_but_absent(tmp_path, capsys):
    photos = fake_photoset(tmp_path / "photos")
    (photos / "ihc.jpg").unlink()
    assert dc.dry_run(tmp_path / "w", tmp_path / "out", 600, 4, photos) == 1
    assert "ihc.jpg missing" in capsys.readouterr().out


def test_a_step_over_its_limit_is_cut_and_the_rest_still_run(tmp_path):
    slow = dc.Step("slow", 60, [[sys.executable, "-c", "import time; time.sleep(60)"]], needs_cuda=False)
    quick = dc.Step("quick", 60, [[sys.executable, "-c", "print('hi')"]], needs_cuda=False)
    t0 = time.monotonic()
    dc.run_step(slow, 1.0, tmp_path / "slow.log")
    assert slow.status == "cut" and "limit" in slow.note
    assert time.monotonic() - t0 < 15
    dc.run_step(quick, 10, tmp_path / "quick.log")
    assert quick.status == "ok" and "hi" in (tmp_path / "quick.log").read_text()


def test_side_by_side_commands_share_the_step_limit(tmp_path):
    step = dc.Step("two", 60, [[sys.executable, "-c", "import time; time.sleep(0.2)"]] * 2, needs_cuda=False)
    dc.run_step(step, 10, tmp_path / "two.log")
    assert step.status == "ok" and step.exit_codes == [0, 0]
    bad = dc.Step("bad", 60, [[sys.executable, "-c", "raise SystemExit(3)"]], needs_cuda=False)
    dc.run_step(bad, 10, tmp_path / "bad.log")
    assert bad.status == "failed" and bad.exit_codes == [3]
    missing = dc.Step("missing", 60, [["no-such-tool-here"]], needs_cuda=False)
    dc.run_step(missing, 10, tmp_path / "missing.log")
    assert missing.status == "failed" and "could not start" in (tmp_path / "missing.log").read_text()


def test_budget_gives_later_steps_what_is_left_and_skips_when_none(tmp_path):
    now = [0.0]
    seen = {}

    def runner(step, timeout, log):
        seen[step.name] = timeout
        now[0] += timeout  # every step uses all it was given
        step.status = "ok"
        return step

    steps = [
        dc.Step("a", 100, [["x"]], needs_cuda=False),
        dc.Step("gpu", 50, [["x"]]),
        dc.Step("b", 100, [["x"]], needs_cuda=False),
        dc.Step("c", 100, [["x"]], needs_cuda=False),
    ]
    dc.run_plan(steps, tmp_path, budget_s=200, cuda=False, runner=runner, clock=lambda: now[0])
    assert seen["a"] == 100
    assert steps[1].status == "skipped" and "CUDA" in steps[1].note
    assert seen["b"] == pytest.approx(200 - dc.PACK_RESERVE_S - 100)
    assert steps[3].status == "skipped" and "no time" in steps[3].note


def test_default_plan_fits_the_budget_with_its_training_minutes(tmp_path):
    assert [s.name for s in dc.plan(tmp_path, 0)] == ["machine", "gpu-tests", "native", "run", "bench"]
    steps = dc.plan(tmp_path, 4.0)
    assert [s.name for s in steps] == ["machine", "gpu-tests", "native", "run", "bench", "train", "card"]
    native = steps[2]
    assert any("--e2e-size" in c and "1280x720" in c for c in native.commands)
    assert any(c[3:5] == ["run", str(tmp_path / "native")] and "fp16" in c for c in native.commands)
    train, card = steps[-2:]
    assert len(train.commands) == len(dc.TRAININGS) and train.budget_s >= 4 * 60
    assert all(c[c.index("--train") + 1] == "refiner" and c[c.index("--hold-out") + 1] == dc.SHIPPED
               for c in train.commands)  # the shipped head and gate kept, its calibration photos unseen
    assert card.sequential and "training.card" in card.commands[0] and "--forced" in card.commands[0]
    assert sum(a.startswith("--also") for a in card.commands[0]) == len(dc.TRAININGS)  # the others + shipped
    assert "training.ceiling" in card.commands[1] and card.commands[1].count("--bar") == len(dc.BARS)
    assert all(Path(c[c.index("--init") + 1]).is_file() for c in train.commands)  # the shipped weights
    assert all("--minutes" in c and "4.0" in c for c in train.commands)
    bench = steps[4]
    assert sum(s.budget_s for s in dc.plan(tmp_path, 0)) + dc.PACK_RESERVE_S <= 600  # the default budget
    assert bench.sequential and any("--width" in c for c in bench.commands)
    assert all("1,8,32" in c for c in bench.commands)


def test_pack_keeps_at_most_the_limit_of_files_and_bytes(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.safetensors"
    big.write_bytes(b"x" * 2000)
    small = src / "small.safetensors"
    small.write_bytes(b"y" * 10)
    items = [
        ("log.txt", b"z" * 5000),
        ("big.safetensors", big),
        ("missing.json", src / "nope.json"),
        ("small.safetensors", small),
    ] + [(f"extra{i}.json", b"{}") for i in range(5)]
    out = tmp_path / "out"
    res = dc.pack(items, out, max_files=3, max_bytes=1000)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(res["written"]) and len(files) == 3
    assert (out / "log.txt").stat().st_size == 1000  # text cut to the limit
    why = {d["name"]: d["why"] for d in res["left_out"]}
    assert "2000 bytes" in why["big.safetensors"] and why["missing.json"] == "not produced"
    assert all(p.stat().st_size <= 1000 for p in out.iterdir())
    assert sum("more than 3 files" in w for w in why.values()) == 4


def test_logs_fit_in_one_file(tmp_path):
    steps = [dc.Step(n, 1, [["x"]]) for n in ("a", "b")]
    (tmp_path / "a.log").write_bytes(b"A" * 50_000)
    blob = dc.collect_logs(tmp_path, steps, limit=20_000)
    assert len(blob) <= 20_000 and b"===== a" in blob and b"===== b" in blob and b"cut" in blob


def test_nvidia_smi_summary_keeps_what_explains_a_figure():
    text = """
==============NVSMI LOG==============
Driver Version                            : 580.159.04
CUDA Version                              : 13.0
Attached GPUs                             : 1
GPU 00000000:00:05.0
    Product Name                          : NVIDIA H200
    Clocks
        Graphics                          : 345 MHz
        SM                                : 345 MHz
    Max Clocks
        SM                                : 1980 MHz
    GPU Power Readings
        Current Power Limit               : 700.00 W
"""
    s = dc.nvidia_summary(text)
    assert s["Product Name"] == "NVIDIA H200"
    assert s["Clocks/SM"] == "345 MHz" and s["Max Clocks/SM"] == "1980 MHz"
    assert s["GPU Power Readings/Current Power Limit"] == "700.00 W"


def test_main_on_a_cpu_writes_a_summary_and_at_most_8_small_files(tmp_path, monkeypatch):
    def tiny_plan(work, minutes, photos=dc.PHOTOSET):
        return [
            dc.Step(
                "machine", 20, [[sys.executable, "-c", "print('Product Name : none')"]], needs_cuda=False
            ),
            dc.Step("train", 20, [[sys.executable, "-c", "print(1)"]]),
        ]

    monkeypatch.setattr(dc, "plan", tiny_plan)
    out = tmp_path / "out"
    rc = dc.main(["--out", str(out), "--work", str(tmp_path / "work"), "--budget", "60"])
    assert rc == 0
    files = list(out.iterdir())
    assert len(files) <= dc.MAX_FILES and all(f.stat().st_size <= dc.MAX_FILE_BYTES for f in files)
    summary = json.loads((out / "summary.json").read_text())
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert status == {"machine": "ok", "train": "skipped"}  # no CUDA on this machine
    assert "cuda" in summary["not_here"] and "tensorrt" in summary["not_here"]
    assert {d["name"] for d in summary["packed"]["left_out"]} >= {f"{dc.CANDIDATE}.safetensors"}
    assert np.isfinite(summary["total_seconds"])


def test_bench_headlines_keep_the_reports_ceiling_and_memory_columns():
    row = {
        "model": "m",
        "backend": "torch",
        "variant": "cuda-fp16",
        "batch": 8,
        "images_per_s": 500.0,
        "gflops": 1.0,
        "ceiling_pct": 30.9,
        "phases_ms": {"compute": 11.0},
        "peak_device_mb": 900.0,
        "latency_ms": {"p50": 14.5},
    }
    (head,) = dc.bench_headlines({"rows": [row]})
    assert head["ceiling_pct"] == 30.9 and head["peak_device_mb"] == 900.0 and head["p50_ms"] == 14.5


def test_out_and_work_are_never_the_photo_set(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for args in (["--out", str(photos / "out")], ["--out", str(tmp_path / "o"), "--work", str(photos)]):
        assert dc.main([*args, "--photos", str(photos), "--dry-run"]) == 2
        assert "refusing to write into" in capsys.readouterr().err
    assert list(photos.iterdir()) == []
