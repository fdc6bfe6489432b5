import json

import numpy as np
import pytest
from typer.testing import CliRunner

from engines.base import Runner
from toolkit.app.cli import app
from toolkit.app.evaluate import baseline_method, evaluate_tree, runner_method
from toolkit.core.baselines import richardson_lucy, wiener
from toolkit.core.frames import discover_frames, write_png_atomic
from toolkit.core.kernels import KERNELS, blur, parse_kernels
from toolkit.core.metrics import psnr


class IdentityRunner(Runner):
    """A model that returns its input."""

    name = "identity"

    def infer(self, batch):
        return batch.copy()

    def describe(self):
        return {"backend": self.name}

    def close(self):
        pass


def test_identity_model_scores_exactly_the_blurred_psnr(demo_dir):
    result = evaluate_tree(demo_dir, parse_kernels("k3,k7,k11"), {"model": runner_method(IdentityRunner())},
                           with_ssim=False)
    blurred = {(s.rel, s.kernel): s.psnr for s in result.scores if s.method == "blurred"}
    model = {(s.rel, s.kernel): s.psnr for s in result.scores if s.method == "model"}
    assert model == blurred and len(model) == 3 * len(discover_frames(demo_dir))
    rows = {(s.kernel, s.method): s for s in result.summaries()}
    assert rows[("k7", "model")].gain_db == 0.0
    assert rows[("k7", "model")].worse_share == 0.0


@pytest.mark.parametrize("name", ["k7", "k11"])
def test_baselines_improve_a_real_blurred_frame(astronaut, name):
    k = KERNELS[name]
    small = astronaut[:96, :128].copy()
    blurred = blur(small, k)
    base = psnr(blurred, small)
    assert psnr(wiener(blurred, k), small) > base + 2.0
    assert psnr(richardson_lucy(blurred, k, iterations=10), small) > base + 1.0


def test_wiener_of_unblurred_k3_stays_close(astronaut):
    k = KERNELS["k3"]
    blurred = blur(astronaut, k)
    assert psnr(wiener(blurred, k), astronaut) > 60


def test_predictions_paired_by_relative_path(tmp_path, demo_dir):
    frames = discover_frames(demo_dir)
    from toolkit.core.frames import read_frame

    for f in frames:  # "predictions" that are just the k7-blurred frames, saved as .png under DIR/k7/
        write_png_atomic(tmp_path / "pred" / "k7" / f.rel, blur(read_frame(f.path), "k7"))
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(demo_dir), "--predictions", str(tmp_path / "pred"),
                                 "--kernels", "k7", "--baselines", "none", "--no-ssim",
                                 "--csv", str(tmp_path / "e.csv"), "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {(r["kernel"], r["method"]): r for r in report["summary"]}
    assert rows[("k7", "predictions")]["mean_psnr"] == pytest.approx(rows[("k7", "blurred")]["mean_psnr"])
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert lines[0] == "rel,sequence,kernel,method,psnr,ssim" and len(lines) == 1 + 2 * len(frames)
    # a missing prediction is listed by name, exit 2, no traceback
    missing = tmp_path / "pred" / "k7" / frames[0].rel
    missing.unlink()
    result = runner.invoke(app, ["eval", str(demo_dir), "--predictions", str(tmp_path / "pred"),
                                 "--kernels", "k7"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert frames[0].key in result.output


def test_plots_written(tmp_path, demo_dir):
    from toolkit.app.evaluate import examples
    from toolkit.app.plots import example_strip, psnr_boxplot

    methods = {"model": runner_method(IdentityRunner()), "wiener": baseline_method(wiener)}
    ks = parse_kernels("k7")
    result = evaluate_tree(demo_dir, ks, methods, with_ssim=False)
    assert psnr_boxplot(result, tmp_path / "b.png").stat().st_size > 1000
    rows = examples(result, methods, ks, "model")
    assert [r[0].split(":")[0] for r in rows] == ["k7 worst", "k7 median"]
    assert len(rows[0][1]) == 4  # sharp / blurred / model / best baseline
    assert example_strip(rows, tmp_path / "s.png").stat().st_size > 1000
    assert np.array_equal(list(rows[0][1].values())[1], list(rows[0][1].values())[2])  # identity model
