import numpy as np
import pytest
import torch

from toolkit.core.kernels import KERNELS, blur
from toolkit.core.torch_blur import blur_tensor


def _nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.mark.parametrize("name", list(KERNELS))
def test_torch_blur_equals_reference_on_cpu(astronaut, name):
    out = blur_tensor(_nchw(astronaut), name)[0].permute(1, 2, 0).numpy()
    assert out.dtype == np.uint8
    assert np.abs(out.astype(int) - blur(astronaut, name).astype(int)).max() <= 1


def test_float_input_keeps_dtype_and_scale(astronaut):
    x = _nchw(astronaut).float() / 255
    y = blur_tensor(x, "k11")
    assert y.dtype == torch.float32 and y.shape == x.shape
    ref = blur(astronaut.astype(np.float32) / 255, "k11")
    np.testing.assert_allclose(y[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_bad_shapes_rejected():
    with pytest.raises(ValueError):
        blur_tensor(torch.zeros(3, 8, 8), "k3")
    with pytest.raises(ValueError):
        blur_tensor(torch.zeros(1, 3, 4, 4), "k11")


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(KERNELS))
def test_torch_blur_on_cuda_equals_reference(astronaut, name):
    out = blur_tensor(_nchw(astronaut).cuda(), name)[0].permute(1, 2, 0).cpu().numpy()
    assert np.abs(out.astype(int) - blur(astronaut, name).astype(int)).max() <= 1
