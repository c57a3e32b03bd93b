"""The intrinsic terms keep stylekit's contracts (stylekit.testing) and decompose images sensibly."""

import pytest
import torch

from stylekit.plugins import PluginManager
from stylekit.testing import check_metric, check_term, random_images
from stylekit_intrinsic import AlbedoStyleLoss, ShadingError, ShadingLoss, decompose, gaussian_blur


def test_shading_term_contract():
    check_term(ShadingLoss, zero_for_identical=True)
    check_term(ShadingLoss, {"space": "linear", "sigma": 0.2}, zero_for_identical=True)


def test_albedo_style_term_contract():
    result = check_term(AlbedoStyleLoss, {"layers": ["relu1_2", "relu2_2"]})
    assert (result.value > 0).all()


def test_albedo_style_can_use_its_own_backbone():
    term = check_term(AlbedoStyleLoss, {"layers": ["relu1_2"], "backbone": "tiny_vgg",
                                        "backbone_options": {"width": 2, "seed": 3}}).term
    assert [spec.name for spec in term.networks()] == ["tiny_vgg"]


def test_shading_error_metric_contract():
    check_metric(ShadingError, zero_for_identical=True)


def test_decomposition_recovers_a_smooth_light_on_a_sharp_albedo():
    h = w = 64
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    light = (0.4 + 0.6 * xx / (w - 1)).float()                      # smooth ramp
    reflectance = torch.where((yy // 8 + xx // 8) % 2 == 0, 0.9, 0.3)  # sharp checkerboard
    image = (255 * light * reflectance).expand(1, 3, h, w).contiguous()
    alb, shade = decompose(image)
    # shading follows the light: increasing left to right, hardly any checkerboard left in it
    column_means = shade[0, 0].mean(0)
    assert column_means[-8:].mean() > 1.8 * column_means[:8].mean()
    # albedo keeps the checkerboard's contrast and flattens the light
    a = alb[0, 0]
    bright, dark = a[(yy // 8 + xx // 8) % 2 == 0], a[(yy // 8 + xx // 8) % 2 == 1]
    assert bright.mean() > 2 * dark.mean()
    left, right = a[:, 8:24][((yy // 8 + xx // 8) % 2 == 0)[:, 8:24]], a[:, 40:56][((yy // 8 + xx // 8) % 2 == 0)[:, 40:56]]
    assert right.mean() / left.mean() < 1.35  # the light itself varies ×1.9 over that span


def test_blur_preserves_constants_and_handles_tiny_images():
    x = torch.full((1, 1, 5, 3), 7.0)
    assert torch.allclose(gaussian_blur(x, 10.0), x)
    assert decompose(random_images(1, (3, 2)))[0].shape == (1, 3, 2, 3)


def test_gradients_flow_through_the_decomposition():
    x = random_images(1).requires_grad_(True)
    alb, shade = decompose(x)
    (alb.mean() + shade.mean()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_registered_through_the_entry_point():
    """Installed with pip, the package shows up in `stylekit plugins` with no change to stylekit."""
    pytest.importorskip("importlib.metadata")
    import importlib.metadata

    if not any(ep.value.startswith("stylekit_intrinsic") for ep in importlib.metadata.entry_points(group="stylekit")):
        pytest.skip("stylekit-intrinsic is not installed (pip install ./plugins/stylekit-intrinsic)")
    registry = PluginManager(entry_points=True).registry
    assert {"shading", "albedo_style"} <= set(registry.names("loss"))
    assert "shading_error" in registry.names("metric")
    assert registry.entry("loss", "shading").source.startswith("distribution stylekit-intrinsic")


def test_module_plugin_registers_without_installing():
    registry = PluginManager(["stylekit_intrinsic.plugin"], entry_points=False).registry
    assert registry.get("loss", "albedo_style") is AlbedoStyleLoss
