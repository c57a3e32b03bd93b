"""stylekit.functional: each function against its formula, and the old import paths of the moved names."""

import importlib

import pytest
import torch

from stylekit import functional


# -- least-squares scale and shift ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_align_scale_shift_recovers_an_affine_map(dtype):
    target = torch.rand(3, 1, 5, 6, dtype=dtype)
    pred = (target - 0.25) / 3.5  # target = 3.5 · pred + 0.25
    aligned = functional.align_scale_shift(pred, target)
    assert aligned.dtype == dtype
    torch.testing.assert_close(aligned, target)


def test_align_scale_shift_is_the_least_squares_solution():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 1, 4, 7, generator=gen, dtype=torch.double), torch.rand(2, 1, 4, 7, generator=gen,
                                                                                         dtype=torch.double)
    aligned = functional.align_scale_shift(pred, target)
    for i in range(2):  # normal equations of min ‖s·p + t − q‖², solved by torch.linalg.lstsq
        design = torch.stack([pred[i].flatten(), torch.ones(28, dtype=torch.double)], 1)
        s, t = torch.linalg.lstsq(design, target[i].flatten()[:, None]).solution.flatten()
        torch.testing.assert_close(aligned[i], s * pred[i] + t)


def test_align_scale_shift_fits_only_the_masked_pixels():
    target = torch.rand(2, 1, 6, 6, dtype=torch.double)
    pred = 2 * target - 1
    mask = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    mask[..., :3, :] = True
    corrupted = target.clone()
    corrupted[..., 3:, :] = 100.0  # outside the mask: must not move the fit
    torch.testing.assert_close(functional.align_scale_shift(pred, corrupted, mask), target)
    # a mask that broadcasts (one per image, shared by all channels) works the same
    torch.testing.assert_close(functional.align_scale_shift(pred, corrupted, mask[:, :, :, :1]), target)


def test_align_scale_shift_of_a_flat_prediction_is_the_target_mean_with_a_finite_gradient():
    target = torch.rand(2, 1, 5, 5)
    pred = torch.full_like(target, 0.3).requires_grad_(True)
    aligned = functional.align_scale_shift(pred, target)
    torch.testing.assert_close(aligned, target.mean((1, 2, 3), keepdim=True).expand_as(target))
    aligned.sum().backward()
    assert torch.isfinite(pred.grad).all()


def test_align_scale_shift_gradient_flows_through_scale_and_shift():
    pred = torch.rand(2, 1, 3, 4, dtype=torch.double, requires_grad=True)
    target = torch.rand(2, 1, 3, 4, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda p: functional.align_scale_shift(p, target), (pred,))


# -- min–max -------------------------------------------------------------------------------------------------------
def test_normalize_min_max_maps_each_item_to_0_1_and_a_flat_one_to_0():
    x = torch.tensor([[[[2.0, 4.0], [6.0, 10.0]]], [[[5.0, 5.0], [5.0, 5.0]]]])
    y = functional.normalize_min_max(x)
    torch.testing.assert_close(y[0], torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))
    assert (y[1] == 0).all()


# -- moved names --------------------------------------------------------------------------------------------------
GONE = [("stylekit.losses", "Tap"), ("stylekit.losses", "gram_matrix"), ("stylekit.losses.base", "NetworkSpec"),
        ("stylekit.losses.base", "feature_reconstruction"), ("stylekit.losses.content", "feature_reconstruction"),
        ("stylekit.losses.tv", "total_variation"), ("stylekit.evaluate.functional", "align_scale_shift"),
        ("stylekit.depth.maps", "least_squares_align"), ("stylekit.depth.maps", "normalize01"),
        ("stylekit.card", "read_card"), ("stylekit.evaluate.builtin_metrics", "Metric"),
        ("stylekit.losses.style", "gram_matrix")]


@pytest.mark.parametrize("old,name", GONE)
def test_names_that_moved_before_the_first_release_live_only_in_their_new_place(old, name):
    """0.1.0 was never released, so the old paths of moved names are gone (no deprecation aliases)."""
    assert not hasattr(importlib.import_module(old), name)


def test_an_unknown_name_is_still_an_attribute_error():
    import stylekit.losses

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        stylekit.losses.nope  # noqa: B018
