"""The round-3 head: pooled shares of local detectors, tiles that add up to their frame, and the
conservative gate (a pass is exactly the input)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from toolkit.core.demo import skimage_photo_path
from toolkit.core.frames import read_frame, resize_frame
from toolkit.core.kernels import blur
from toolkit.core.models import create_model
from toolkit.core.models.head import gate
from training.calibrate import decisions
from training.fit import init_from


@pytest.fixture(scope="module")
def shipped(round3c_dir):
    """Round 3c's gated model (the shipped network without its gain head): the gate's tests."""
    from toolkit.core.models.checkpoint import load_model

    return load_model(round3c_dir / "r3c.safetensors")


@pytest.fixture(scope="module")
def round3(shipped):
    """The shipped weights with 8 local detectors (new, seeded) and a hard gate."""
    torch.manual_seed(0)
    model = create_model(replace(shipped.config, head_shares=8, gate_deblur=0.6, gate_strong=0.8))
    fresh = init_from(model, shipped)
    assert fresh == ["head.local.bias", "head.local.weight"]  # the MLP's first layer grew zero columns
    return model.eval()


def test_a_grown_head_starts_deciding_as_its_start(round3, shipped):
    x = nchw(blur(resize_frame(read_frame(skimage_photo_path("rocket")), (256, 448)), "k7"))
    with torch.no_grad():
        mine, theirs = (m.head.decide(m.evidence(x)) for m in (round3, shipped.eval()))
    assert torch.allclose(mine, theirs, atol=1e-4)


def nchw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255)


def test_evidence_is_means_and_shares_so_tiles_average_to_their_frame(round3):
    frame = resize_frame(read_frame(skimage_photo_path("astronaut")), (512, 896))
    frame = blur(frame, "k7")
    with torch.no_grad():
        whole = round3.evidence(nchw(frame))[0].numpy()
        tiles = [round3.evidence(nchw(frame[y : y + 256, x : x + 448]))[0].numpy()
                 for y in (0, 256) for x in (0, 448)]
    assert whole.shape == (32 + 8,) and (whole >= 0).all()
    assert ((whole[32:] > 0) & (whole[32:] < 1)).all()  # shares of positions
    combined = np.mean(tiles, axis=0)
    gap = np.abs(np.log(combined + 1e-4) - np.log(whole + 1e-4))  # what the head's MLP sees
    assert np.median(gap) < 0.1, gap  # only the tiles' borders differ
    with torch.no_grad():
        decide = [round3.head.decide(torch.from_numpy(e)[None]).softmax(1)[0] for e in (whole, combined)]
    assert (decide[0] - decide[1]).abs().max() < 0.05


def test_gate_soft_or_conservative():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.5, 0.4], [0.05, 0.25, 0.7], [0.3, 0.1, 0.6]])
    assert torch.equal(gate(p, 0.0, 0.0), p)
    w = gate(p, 0.6, 0.65)
    assert w.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]]
    # training.calibrate scores thresholds with the same rule, in NumPy
    rng = np.random.default_rng(0)
    q = rng.dirichlet([1, 1, 1], 500)
    for d, s in ((0.5, 0.5), (0.8, 0.9), (0.3, 0.99)):
        want = gate(torch.from_numpy(q), d, s).argmax(dim=1).numpy()
        assert (decisions(q, d, s) == want).all()


def test_a_pass_is_exactly_the_input(shipped):
    never = create_model(replace(shipped.config, gate_deblur=1.5, gate_strong=1.5))
    never.load_state_dict(shipped.state_dict())
    x = nchw(blur(resize_frame(read_frame(skimage_photo_path("coffee")), (256, 448)), "k7"))
    with torch.no_grad():
        assert torch.equal(never.eval()(x), x)


def test_teacher_forced_classes_mix_that_class(shipped):
    x = nchw(blur(resize_frame(read_frame(skimage_photo_path("coffee")), (256, 448)), "k11"))
    with torch.no_grad():
        passed, _, _ = shipped.decided(x, classes=torch.tensor([0]))
        k11, _, _ = shipped.decided(x, classes=torch.tensor([2]))
    assert torch.equal(passed, x) and not torch.equal(k11, x)


def test_gated_model_exports_and_onnx_runtime_agrees_with_torch(round3, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from training.export import export_onnx

    path = export_onnx(round3, tmp_path / "r3.onnx")  # checks parity itself
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frame = blur(resize_frame(read_frame(skimage_photo_path("chelsea")), (256, 448)), "k7")
    x = nchw(frame)
    with torch.no_grad():
        ev = round3.evidence(x)
        want = round3(x, evidence=ev).numpy()
    got, own = sess.run(None, {"input": x.numpy(), "evidence": ev.numpy()})
    assert own.shape == (1, 40)
    assert np.abs(got - want).max() < 1e-3


def test_gate_with_a_second_mlp_lets_it_alone_decide_k11():
    p = torch.tensor([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.4, 0.4]])
    q = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.9, 0.1], [0.0, 0.05, 0.95], [0.3, 0.6, 0.1]])
    w = gate(p, 0.99, 0.9, q)
    # k11 when q is sure whatever p says; else k7 only when p is sure of a blur; else pass
    assert w.tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0]]
    rng = np.random.default_rng(1)
    a, b = rng.dirichlet([1, 1, 1], 500), rng.dirichlet([1, 1, 1], 500)
    for d, s in ((0.5, 0.5), (0.9, 0.6), (0.3, 0.99)):
        want = gate(torch.from_numpy(a), d, s, torch.from_numpy(b)).argmax(dim=1).numpy()
        assert (decisions(a, d, s, b) == want).all()


def test_agreement_deblurs_only_what_both_mlps_believe_blurred():
    # a soft photo's sharp frame the first MLP is sure is blurred and the second is not; the reverse;
    # a k7 frame both believe; a k11 frame both believe
    p = torch.tensor([[0.0001, 0.9999, 0.0], [0.4, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.01, 0.99]])
    q = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.0, 1.0], [0.0, 0.99, 0.01], [0.0, 0.0, 1.0]])
    assert gate(p, 0.999, 0.99, q).argmax(dim=1).tolist() == [1, 2, 1, 2]  # no agreement: both errors
    assert gate(p, 0.999, 0.99, q, agree=0.9).argmax(dim=1).tolist() == [0, 0, 1, 2]
    # per scale: given rows (several tiles) use agree_given, and 0 there is no condition
    given = torch.tensor([[True], [False], [True], [False]])
    assert gate(p, 0.999, 0.99, q, given, 0.0, 0.9, 0.0).argmax(dim=1).tolist() == [1, 0, 1, 2]
    assert gate(p, 0.999, 0.99, q, given, 0.0, 0.0, 0.9).argmax(dim=1).tolist() == [0, 2, 1, 2]
    rng = np.random.default_rng(2)
    a, b = rng.dirichlet([1, 1, 1], 500), rng.dirichlet([1, 1, 1], 500)
    for d, s, ag in ((0.5, 0.5, 0.6), (0.9, 0.6, 0.3), (0.3, 0.99, 0.9)):
        want = gate(torch.from_numpy(a), d, s, torch.from_numpy(b), agree=ag).argmax(dim=1).numpy()
        assert (decisions(a, d, s, b, ag) == want).all()


def test_frames_of_several_tiles_have_their_own_k11_threshold(shipped):
    p = torch.tensor([[0.0, 1.0, 0.0]] * 4)
    q = torch.tensor([[0.0, 0.05, 0.95]] * 4)
    given = torch.tensor([[True], [False], [True], [False]])
    assert gate(p, 0.9, 0.99, q, given, 0.9).argmax(dim=1).tolist() == [2, 1, 2, 1]
    assert gate(p, 0.9, 0.99, q, given, 0.0).argmax(dim=1).tolist() == [1, 1, 1, 1]  # 0: one threshold
    # in the model: a frame decided on given evidence (engines.tiled, several tiles) vs on its own
    model = create_model(replace(shipped.config, gate_strong=2.0, gate_strong_native=0.5)).eval()
    model.load_state_dict(shipped.state_dict())
    x = nchw(blur(resize_frame(read_frame(skimage_photo_path("astronaut")), (256, 448)), "k11"))
    with torch.no_grad():
        ev = model.evidence(x)
        assert 0.5 < float(model.head.probabilities(ev)[1][0, 2]) < 1.0
        as_k11, _, _ = shipped.decided(x, classes=torch.tensor([2]))
        assert torch.equal(model(x, evidence=ev), as_k11)  # given: strong_native 0.5
        assert not torch.equal(model(x), as_k11)  # own: strong 2.0, never k11


def test_a_second_mlp_exports_and_onnx_runtime_agrees_with_torch(shipped, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from training.decision import with_strong
    from training.export import export_onnx

    perturbed = with_strong(shipped)
    torch.manual_seed(1)
    with torch.no_grad():
        for prm in perturbed.head.strong.parameters():
            prm.add_(0.3 * torch.randn_like(prm))  # unlike the first MLP
    config = replace(perturbed.config, gate_deblur=0.5, gate_strong=0.99, gate_strong_native=0.3,
                     gate_agree=0.6, gate_agree_native=0.2)
    model = create_model(config).eval()
    model.load_state_dict(perturbed.state_dict())
    path = export_onnx(model, tmp_path / "strong.onnx")  # checks parity itself
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    photo = resize_frame(read_frame(skimage_photo_path("chelsea")), (256, 448))
    x = torch.cat([nchw(blur(photo, kernel)) for kernel in ("k7", "k11")])
    with torch.no_grad():
        ev = model.evidence(x)
    own_rows = -torch.ones_like(ev)
    # own decisions; one frame's evidence for both; each its own, given (as tiles of two frames)
    for evidence in (own_rows, ev[1:], ev):
        with torch.no_grad():
            want = model(x, evidence=evidence).numpy()
        got, own = sess.run(None, {"input": x.numpy(), "evidence": evidence.numpy()})
        assert np.abs(got - want).max() < 1e-3 and np.allclose(own, ev.numpy(), atol=1e-4)
