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


def _synthetic_result(kernels):
    """Method 'a' passes k3 through (70 dB) but is worse on k7/k11; 'b' is the better deblurrer."""
    from toolkit.app.evaluate import EvalResult, FrameScore

    psnrs = {("k3", "blurred"): 45, ("k3", "a"): 70, ("k3", "b"): 44, ("k7", "blurred"): 28, ("k7", "a"): 29,
             ("k7", "b"): 31, ("k11", "blurred"): 25, ("k11", "a"): 26, ("k11", "b"): 28}
    scores = [FrameScore(f"s/{i}.png", "s", k, m, float(psnrs[(k, m)] + i), 0.9)
              for i in range(2) for k in kernels for m in ("blurred", "a", "b")]
    return EvalResult(root="r", kernels=list(kernels), methods=["blurred", "a", "b"], scores=scores)


def test_summary_row_excludes_k3_and_says_what_it_averages():
    from rich.console import Console

    from toolkit.app.report import eval_table

    result = _synthetic_result(["k3", "k7", "k11"])
    rows = {(s.kernel, s.method): s for s in result.summaries()}
    assert ("all", "a") not in rows
    assert rows[("k7+k11", "a")].frames == 4 and rows[("k7+k11", "b")].frames == 4
    # ranked by the kernels that blur: b is better (k3's pass-through would have put a first)
    assert rows[("k7+k11", "b")].mean_psnr > rows[("k7+k11", "a")].mean_psnr
    assert rows[("k7+k11", "a")].mean_psnr == pytest.approx((29 + 30 + 26 + 27) / 4)
    assert rows[("k7+k11", "b")].gain_db == pytest.approx(3.0)
    doc = result.to_json()
    assert {r["kernel"] for r in doc["summary"]} == {"k3", "k7", "k11", "k7+k11"}
    assert doc["summary_row"] == {"kernel": "k7+k11", "excludes": ["k3"]}
    assert {r["kernel"].split("/")[-1] for r in doc["per_sequence"]} == {"k3", "k7", "k11", "k7+k11"}
    console = Console(width=200, record=True)
    console.print(eval_table(result))
    text = console.export_text()
    assert "k7+k11" in text and " all " not in text


@pytest.mark.parametrize("kernels", [["k3"], ["k7"], ["k3", "k11"]])
def test_no_summary_row_that_repeats_one_kernel(kernels):
    result = _synthetic_result(kernels)
    assert {s.kernel for s in result.summaries()} == set(kernels)
    assert result.to_json()["summary_row"]["kernel"] is None


def test_psnr_figure_has_one_panel_per_kernel_with_reference_lines():
    from toolkit.app.evaluate import EvalResult, FrameScore
    from toolkit.app.plots import psnr_figure, pyplot

    psnrs = {"k3": (45, 70, 46), "k7": (28, 31, 30), "k11": (25, 28, 27)}
    names = ("blurred", "model", "wiener")
    scores = [FrameScore(f"s/{i}.png", "s", k, m, float(v + i), 0.9)
              for i in range(3) for k, vals in psnrs.items() for m, v in zip(names, vals, strict=True)]
    result = EvalResult(root="r", kernels=["k3", "k7", "k11"], methods=["blurred", "model", "wiener"],
                        scores=scores)
    fig = psnr_figure(result)
    try:
        axes = fig.get_axes()
        assert [ax.get_title() for ax in axes] == ["k3", "k7", "k11"]
        # own y-axis per kernel: k7's range is not stretched to k3's 70 dB
        assert axes[1].get_ylim()[1] < 40 and axes[0].get_ylim()[1] > 60
        for ax, (blurred, _, wiener) in zip(axes, psnrs.values(), strict=True):
            lines = {line.get_label().split()[0]: line.get_ydata()[0] for line in ax.get_lines()
                     if line.get_label().startswith(("blurred", "Wiener"))}
            assert lines == pytest.approx({"blurred": blurred + 1, "Wiener": wiener + 1})
            assert [t.get_text() for t in ax.get_xticklabels()] == ["model"]
    finally:
        pyplot().close(fig)


def test_detail_crop_finds_the_region_that_differs():
    from toolkit.app.plots import detail_crop

    rng = np.random.default_rng(0)
    sharp = np.full((256, 448, 3), 128, np.uint8)
    sharp[150:230, 300:380] = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)  # the only detail
    blurred = sharp.copy()
    blurred[150:230, 300:380] = 128
    for other in (blurred, None):
        y, x = detail_crop(sharp, other, 96)
        assert y <= 150 and y + 96 >= 230 and x <= 300 and x + 96 >= 380
    assert detail_crop(sharp[:50, :60], None, 96) == (0, 0)  # smaller than the crop: the whole image
