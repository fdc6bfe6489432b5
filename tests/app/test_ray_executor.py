"""`dtk run --executor ray` on a local 2-CPU Ray cluster, against the local executor."""

import shutil
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from toolkit.app.ray_executor import FAULT_ENV, actor_resources
from toolkit.app.request import RunRequest
from toolkit.core.errors import DtkError
from toolkit.core.frames import discover_frames

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install .[ray])")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.fixture
def frames_in(demo_dir, tmp_path):
    """Three demo sequences plus one frame of another size, an animated PNG of 2 frames and one
    corrupt file."""
    root = tmp_path / "in"
    for seq in sorted(p for p in demo_dir.iterdir() if p.is_dir())[:3]:
        shutil.copytree(seq, root / seq.name)
    first = sorted(root.rglob("*.png"))[0]
    Image.open(first).resize((300, 200), Image.BILINEAR).save(first.with_name("small.png"))
    Image.open(first).save(root / "anim.png", save_all=True, append_images=[Image.open(first).rotate(90)])
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return root


def tree(root):
    """Every file's bytes but the run's own lock and manifest (the local runs here record none)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".dtk-run.")}


def run_local(src, dst, model):
    from engines.onnxruntime import OrtRunner
    from toolkit.app.run import run_frames

    return run_frames(src, dst, OrtRunner(model, threads=1), RunRequest(batch=1, blur="k7",
                                                                        pipeline="fallback"))


def run_ray(src, dst, model, backend="onnxruntime", **kw):
    from engines.spec import RunnerSpec
    from toolkit.app.ray_executor import run_frames_ray

    spec = RunnerSpec.choose(backend, model, size=(256, 448))
    return run_frames_ray(src, dst, spec, RunRequest(**{"batch": 1, "blur": "k7", "workers": 2, **kw}))


def test_ray_output_is_byte_identical_to_local(cluster, frames_in, onnx_model, tmp_path):
    local = run_local(frames_in, tmp_path / "local", onnx_model)
    summary = run_ray(frames_in, tmp_path / "ray", onnx_model)
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    n_good = len(discover_frames(frames_in)) - 1
    assert summary.written == local.written == n_good
    assert [p for p, _ in summary.failed] == [str((frames_in / "broken.png").resolve())]
    assert sum(summary.backend["frames_per_worker"].values()) == n_good
    anim = (frames_in / "anim.png").resolve()  # its first image deblurred, the file reported with its count
    assert summary.multi_frame == [(str(anim), 2)] and local.multi_frame == [(str(frames_in / "anim.png"), 2)]
    # a rerun finds everything done
    again = run_ray(frames_in, tmp_path / "ray", onnx_model)
    assert again.written == 0 and again.skipped_done == n_good


def test_openvino_on_ray_matches_local_openvino(cluster, frames_in, tmp_path):
    """The shipped blind model through OpenVINO on Ray actors: the local OpenVINO run's bytes."""
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install .[cpu])")
    from engines.spec import RunnerSpec
    from toolkit.app.run import run_frames

    spec = RunnerSpec.choose("openvino", None, size=(256, 448))
    local = run_frames(frames_in, tmp_path / "local", spec.open(),
                       RunRequest(batch=2, blur="k7", pipeline="fallback"))
    summary = run_ray(frames_in, tmp_path / "ray", None, backend="openvino", batch=2)
    assert summary.written == local.written > 0
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_partial_tree_is_completed(cluster, frames_in, onnx_model, tmp_path):
    run_local(frames_in, tmp_path / "local", onnx_model)
    out = tmp_path / "ray"
    shutil.copytree(tmp_path / "local", out)
    removed = sorted(out.rglob("*.png"))[::2]
    for p in removed:
        p.unlink()
    (out / "chelsea").mkdir(exist_ok=True)
    # a tree these settings made (issue 27: PNGs no manifest vouches for are never taken as done)
    from engines.spec import RunnerSpec
    from toolkit.app.outputs import RunSettings, write_manifest

    spec = RunnerSpec.choose("onnxruntime", onnx_model, size=(256, 448))
    write_manifest(out, RunSettings.for_spec(spec, RunRequest(blur="k7")), redo_all=False)
    summary = run_ray(frames_in, out, onnx_model, batch=2)
    assert summary.written == len(removed)
    assert set(tree(out)) == set(tree(tmp_path / "local"))


def test_worker_dying_mid_batch_still_writes_every_frame_once(cluster, frames_in, onnx_model, tmp_path,
                                                              monkeypatch):
    marker = tmp_path / "fault-fired"
    monkeypatch.setenv(FAULT_ENV, str(marker))
    summary = run_ray(frames_in, tmp_path / "ray", onnx_model, batch=2)
    assert marker.exists(), "the injected fault did not fire"
    expected = sorted(str(f.rel.with_suffix(".png")) for f in discover_frames(frames_in)
                      if f.rel.name != "broken.png")
    assert sorted(tree(tmp_path / "ray")) == expected  # every frame, no temp files left
    assert summary.written == len(expected)


def test_known_blur_travels_to_the_actors(cluster, frames_in, tmp_path):
    """`dtk run --executor ray --known-blur K`: the actors run told K, as the local run does."""
    from engines.onnxruntime import OrtRunner
    from toolkit.app.cli import app
    from toolkit.app.outputs import read_manifest
    from toolkit.app.run import run_frames
    from toolkit.core.modelfiles import resolve_model

    shipped = resolve_model(None, "onnxruntime")
    local = run_frames(frames_in, tmp_path / "local", OrtRunner(shipped, threads=1),
                       RunRequest(batch=1, blur="k7", known_blur="k11", pipeline="fallback"))
    res = CliRunner().invoke(app, ["run", str(frames_in), "-o", str(tmp_path / "ray"), "--executor", "ray",
                                   "--workers", "2", "--backend", "onnxruntime", "--batch", "1",
                                   "--blur", "k7", "--known-blur", "k11"])
    assert res.exit_code == 3, res.output  # broken.png
    assert local.written > 0 and tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert read_manifest(tmp_path / "ray")["settings"]["known_blur"] == "k11"


def test_known_blur_on_ray_with_a_model_that_cannot_be_told_claims_nothing(frames_in, onnx_model, tmp_path):
    from toolkit.app.cli import app

    res = CliRunner().invoke(app, ["run", str(frames_in), "-o", str(tmp_path / "o"), "--executor", "ray",
                                   "--model", str(onnx_model), "--backend", "onnxruntime",
                                   "--known-blur", "k7"])
    assert res.exit_code == 2 and "cannot be told the blur" in " ".join(res.output.split())
    assert not (tmp_path / "o").exists()


def test_without_ray_exit_2_with_hint(monkeypatch, frames_in, tmp_path):
    from toolkit.app.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)
    res = CliRunner().invoke(app, ["run", str(frames_in), "-o", str(tmp_path / "o"), "--executor", "ray"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "pip install .[ray]" in res.output


def test_actor_resources_leave_a_cpu_for_ray():
    assert actor_resources(2, 2, 0) == 0.5
    assert actor_resources(16, 4, 0) == 1.0
    assert actor_resources(1, 1, 1) == 0.1  # GPU actors on a 1-CPU node
    with pytest.raises(DtkError):
        actor_resources(1, 2, 0)
