"""core.checks (the one set of input checks) and core.filters (the one Gaussian blur)."""
import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from course_lib.core.checks import (ConfigMixin, InputError, check_choice, check_finite, check_int, check_number,
                                    check_same_shape, check_size, check_tensor, make_generator)
from course_lib.core.filters import gaussian_blur, gaussian_kernel1d


def test_input_error_is_caught_as_value_or_type_error():
    for exc in (ValueError, TypeError):
        with pytest.raises(exc, match=r"^espcn: scale must be an int >= 2, got 1$"):
            check_int(1, "espcn: scale", minimum=2)


@pytest.mark.parametrize("value", [True, 2.0, "3", None, 1])
def test_check_int_rejects_bools_floats_and_out_of_range(value):
    with pytest.raises(InputError, match="n must be an int >= 2 and <= 9"):
        check_int(value, "n", minimum=2, maximum=9)
    assert check_int(5, "n", minimum=2, maximum=9) == 5


def test_check_number_bounds_and_non_finite():
    assert check_number(0.5, "p", low=0, high=1) == 0.5
    for bad in (float("nan"), float("inf"), 0.0, "1", True):
        with pytest.raises(InputError, match=r"^beta must be a finite number > 0 and <= 1, got"):
            check_number(bad, "beta", low=0, low_open=True, high=1)


def test_check_choice_tensor_size_and_shapes():
    assert check_choice("hio", ["er", "hio"], "method") == "hio"
    with pytest.raises(InputError, match=r"method must be one of 'er', 'hio'; got 'x'"):
        check_choice("x", ["er", "hio"], "method")
    x = torch.zeros(2, 3, 4, 5)
    assert check_tensor(x, "x", dims=4, channels=3) is x
    with pytest.raises(InputError, match=r"x must have 4 dimensions \(N, C, H, W\), got shape \(3, 4, 5\)"):
        check_tensor(x[0], "x", dims=4, shape_hint="(N, C, H, W)")
    with pytest.raises(InputError, match="must have 1 channel"):
        check_tensor(x, "x", channels=1)
    with pytest.raises(InputError, match=r"x is empty"):
        check_tensor(torch.zeros(1, 3, 0, 5), "x")
    with pytest.raises(InputError, match="must be a torch.Tensor"):
        check_tensor(np.zeros(3), "x")
    with pytest.raises(InputError, match=r"pred and target must have the same shape, got \(2,\) and \(3,\)"):
        check_same_shape(torch.zeros(2), torch.zeros(3), "pred and target")
    assert check_size(8, "size") == (8, 8) and check_size([4, 6], "size") == (4, 6)
    with pytest.raises(InputError, match=r"size must be an int or a pair \(H, W\) of ints >= 1"):
        check_size((4, 0), "size")
    with pytest.raises(InputError, match="image must be finite, found 1 NaN and 1 infinite"):
        check_finite(torch.tensor([0.0, float("nan"), float("inf")]), "image")
    g = make_generator(3, "seed")
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(3)))
    assert make_generator(None, "seed") is None


def test_config_mixin_round_trip_and_unknown_keys():
    @dataclasses.dataclass
    class Cfg(ConfigMixin):
        scale: int = 3
        widths: tuple = (64, 32)

    c = Cfg(scale=2)
    assert c.to_dict() == {"scale": 2, "widths": [64, 32]}
    assert Cfg.from_dict(c.to_dict()).scale == 2
    with pytest.raises(InputError, match=r"Cfg: unknown key\(s\) \['colour'\]"):
        Cfg.from_dict({"colour": 1})


@pytest.mark.parametrize("border, mode", [("reflect", "mirror"), ("replicate", "nearest"), ("zeros", "constant")])
@pytest.mark.parametrize("sigma", [0.6, 1.3, 2.0])
def test_gaussian_blur_equals_scipy(border, mode, sigma):
    x = torch.rand(2, 3, 21, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    r = int(np.ceil(3 * sigma))
    ref = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), truncate=r / sigma, mode=mode)
    assert torch.allclose(gaussian_blur(x, sigma, border=border), torch.from_numpy(ref), atol=1e-12)
    assert torch.allclose(gaussian_blur(x[0], sigma, border=border), torch.from_numpy(ref[0]), atol=1e-12)


def test_gaussian_kernel_sums_to_one_and_zero_sigma_is_identity():
    g = gaussian_kernel1d(1.5, dtype=torch.float64)
    assert g.numel() == 2 * 5 + 1 and abs(float(g.sum()) - 1) < 1e-12 and torch.equal(g, g.flip(0))
    x = torch.rand(1, 4, 4)
    assert gaussian_blur(x, 0) is x
