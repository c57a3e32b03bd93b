"""Each depth network is fed what its authors' code feeds it, and its map comes back at the image size.

The expected sizes are computed here from the authors' rules, transcribed from their files:
isl-org/MiDaS ``midas/transforms.py`` ``Resize.get_size``/``constrain_to_multiple_of`` (the same class is in
DepthAnything/Depth-Anything-V2 ``depth_anything_v2/util/transform.py``) with the parameters of MiDaS's
``midas/model_loader.py`` (and ``hubconf.py``) and Depth Anything V2's ``dpt.py`` ``image2tensor``; the
hourglass port's ``src/experiment/test_on_one_image.py`` squashes every image to 320×240.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from stylekit.depth import DepthAnythingV2, DPTHybrid, DPTLarge, HourglassDepth, MidasSmall
from stylekit.depth.transforms import Resize

#: (class, options for a fast random build, the authors' (width, height, resize_method, ensure_multiple_of))
AUTHORS = {
    "midas_small": (MidasSmall, {}, (256, 256, "upper_bound", 32)),
    "dpt_hybrid": (DPTHybrid, {"variant": "tiny"}, (384, 384, "minimal", 32)),
    "dpt_large": (DPTLarge, {"variant": "tiny"}, (384, 384, "minimal", 32)),
    "depth_anything_v2": (DepthAnythingV2, {"variant": "tiny"}, (518, 518, "lower_bound", 14)),
    "hourglass": (HourglassDepth, {}, (320, 240, "squash", 1)),
}
#: (height, width): square, portrait, landscape, very wide
IMAGES = [(480, 480), (640, 480), (480, 640), (240, 1600)]
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def authors_size(h: int, w: int, net_w: int, net_h: int, method: str, multiple: int) -> tuple[int, int]:
    """MiDaS ``Resize(net_w, net_h, keep_aspect_ratio=True, ensure_multiple_of, resize_method).get_size``."""
    if method == "squash":  # PIL Image.resize((320, 240)): exactly the network size
        return net_h, net_w

    def constrain(x, min_val=0, max_val=None):
        y = (np.round(x / multiple) * multiple).astype(int)
        if max_val is not None and y > max_val:
            y = (np.floor(x / multiple) * multiple).astype(int)
        if y < min_val:
            y = (np.ceil(x / multiple) * multiple).astype(int)
        return int(y)

    scale_h, scale_w = net_h / h, net_w / w
    if method == "lower_bound":
        scale_h = scale_w = max(scale_h, scale_w)
    elif method == "upper_bound":
        scale_h = scale_w = min(scale_h, scale_w)
    elif abs(1 - scale_w) < abs(1 - scale_h):  # minimal
        scale_h = scale_w
    else:
        scale_w = scale_h
    if method == "lower_bound":
        return constrain(scale_h * h, min_val=net_h), constrain(scale_w * w, min_val=net_w)
    if method == "upper_bound":
        return constrain(scale_h * h, max_val=net_h), constrain(scale_w * w, max_val=net_w)
    return constrain(scale_h * h), constrain(scale_w * w)


def test_the_rule_itself_on_the_issues_example():
    """MiDaS small's own transform feeds a 480×640 photo at 192×256, not at a padded 256×352."""
    assert authors_size(480, 640, 256, 256, "upper_bound", 32) == (192, 256)
    assert MidasSmall.transform.size(480, 640) == (192, 256)


@pytest.mark.parametrize("name", AUTHORS)
@pytest.mark.parametrize("hw", IMAGES, ids=["square", "portrait", "landscape", "very-wide"])
def test_published_transform_sizes(name, hw):
    cls, _, rule = AUTHORS[name]
    assert cls.transform.size(*hw) == authors_size(*hw, *rule)
    assert cls.transform.source  # the docstring's pointer to the authors' file


_built: dict[str, torch.nn.Module] = {}


def _net(name):
    if name not in _built:
        cls, options, _ = AUTHORS[name]
        _built[name] = cls({**options, "weights": "random"})
    return _built[name]


BUILDABLE = [pytest.param(n, marks=pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="transformers not installed"))
             if n == "depth_anything_v2" else n for n in AUTHORS]


@pytest.mark.parametrize("name", BUILDABLE)
def test_the_network_is_fed_the_authors_size_and_the_map_comes_back(name, monkeypatch):
    net = _net(name)
    fed = []

    def infer(x):
        fed.append(tuple(x.shape[-2:]))
        return x.mean(1, keepdim=True)  # stands in for the network: a map at the size it was fed

    monkeypatch.setattr(net, "infer", infer)
    rule = AUTHORS[name][2]
    for h, w in IMAGES[:3] + [(60, 400)]:
        image = (torch.rand(1, 3, h, w) * 255).requires_grad_(True)
        out = net(image)["output"]
        assert fed[-1] == authors_size(h, w, *rule) and out.shape == (1, 1, h, w)
        out.mean().backward()
        assert image.grad.abs().sum() > 0  # differentiable, as training needs


def test_pad_option_keeps_the_previous_behavior(monkeypatch):
    net = MidasSmall({"weights": "random", "resize": "pad"})
    fed = []
    monkeypatch.setattr(net, "infer", lambda x: fed.append(tuple(x.shape[-2:])) or x.mean(1, keepdim=True))
    assert net(torch.rand(1, 3, 480, 640) * 255)["output"].shape == (1, 1, 480, 640)
    assert fed == [(256, 352)]  # shorter side 256, padded to a multiple of 32


def test_input_size_scales_the_target():
    assert MidasSmall.transform.at(128).size(480, 640) == authors_size(480, 640, 128, 128, "upper_bound", 32)
    assert HourglassDepth.transform.at(48).size(100, 100) == (48, 64)  # 320:240 kept, multiple of 16
    assert Resize(256, 256, "upper_bound", 32).size(10, 1000) == (32, 256)  # MiDaS would give 0 rows


def _cv2_inter_cubic(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """OpenCV's INTER_CUBIC on a float image, written from its definition: half-pixel centers, Keys
    kernel with a = −0.75, 4×4 taps, coordinates clamped at the border (no antialiasing)."""
    def weights(t):
        a = -0.75
        t = np.abs(t)
        return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                        np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))

    def along(x, n_out, axis):
        n_in = x.shape[axis]
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        base = np.floor(src).astype(int)
        out = 0.0
        for k in range(-1, 3):
            idx = np.clip(base + k, 0, n_in - 1)
            wk = weights(src - (base + k))
            shape = [1] * x.ndim
            shape[axis] = n_out
            out = out + np.take(x, idx, axis=axis) * wk.reshape(shape)
        return out

    return along(along(image, h, 0), w, 1)


@pytest.mark.parametrize("hw", [(93, 171), (400, 300)], ids=["up", "down"])
def test_midas_resampling_is_opencvs_inter_cubic(hw):
    image = np.random.default_rng(1).random((*hw, 3)) * 255
    ours = MidasSmall.transform(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    expected = _cv2_inter_cubic(image, *ours.shape[:2])
    assert np.abs(ours - expected).max() < 1e-6 * 255
