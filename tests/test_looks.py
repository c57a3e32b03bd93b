"""The independent style judges (texture_lite0/lite2) and the bright-blob count: known answers on made images,
and on the real pictures in ../shared (photo, Johnson's released outputs)."""

from __future__ import annotations

import pytest
import torch

from stylekit.data import load_image
from stylekit.evaluate import EvalNetworks
from stylekit.evaluate import functional as Fm
from stylekit.evaluate.looks import BrightBlobs, TextureLite0, TextureLite2
from stylekit.metrics import MetricContext
from stylekit.plugins import get_registry

from conftest import SHARED_DATA, needs_shared


def textured(h: int = 96, w: int = 128, seed: int = 0) -> torch.Tensor:
    """A mid-gray image with texture everywhere (nothing blown out), 1×3×H×W in [0, 255]."""
    g = torch.Generator().manual_seed(seed)
    return (110 + 60 * torch.rand(1, 3, h, w, generator=g)).round()


def with_spot(image: torch.Tensor, y: int, x: int, r: int, value: float = 250.0) -> torch.Tensor:
    """``image`` with a flat white disk of radius ``r`` at (y, x)."""
    out = image.clone()
    h, w = image.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out[..., (yy - y) ** 2 + (xx - x) ** 2 <= r * r] = value
    return out


def test_a_flat_white_spot_the_content_lacks_is_one_blob():
    content = textured()
    found = Fm.bright_blobs(content, with_spot(content, 40, 60, 6))
    assert found["count"].tolist() == [1.0]
    assert found["area"].item() == pytest.approx(113 / (96 * 128), rel=0.3)  # π·6² pixels


def test_blobs_the_content_has_too_small_too_large_or_textured_do_not_count():
    content = textured()
    spotted = with_spot(content, 40, 60, 6)
    assert Fm.bright_blobs(spotted, spotted)["count"].item() == 0  # the content's own highlight
    assert Fm.bright_blobs(content, with_spot(content, 40, 60, 1))["count"].item() == 0  # a speck, below 16 px
    assert Fm.bright_blobs(content, with_spot(content, 48, 64, 60))["count"].item() == 0  # a white page, > 5 %
    noisy = with_spot(content, 40, 60, 6) - 40 * (torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(1))
                                                > 0.5)
    assert Fm.bright_blobs(content, noisy)["count"].item() == 0  # white with texture: a stroke, not a blob
    two = with_spot(with_spot(content, 30, 30, 6), 70, 100, 6)
    assert Fm.bright_blobs(content, two)["count"].item() == 2


def test_blob_metric_columns():
    content = textured()
    values = BrightBlobs().compute(torch.cat([content, content]),
                                   torch.cat([with_spot(content, 40, 60, 6), content]))
    assert values["blob_count"].tolist() == [1.0, 0.0] and values["blob_area"][1] == 0


def _judge(cls, style: torch.Tensor):
    judge = cls()
    judge.prepare(MetricContext(networks=EvalNetworks(get_registry()), style_original=style))
    return judge


def test_texture_judge_is_zero_for_the_painting_itself_and_larger_for_other_pictures():
    style = textured(128, 256, seed=3) * torch.linspace(0.5, 1.5, 256)  # a horizontal ramp of texture
    judge = _judge(TextureLite0, style.clamp(0, 255))
    same = judge.compute(style, style.clamp(0, 255))["texture_lite0"]
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    other = judge.compute(style, textured(96, 128, seed=5))["texture_lite0"]
    flat = judge.compute(style, torch.full((1, 3, 96, 128), 128.0))["texture_lite0"]
    assert 0 < other.item() < flat.item()


def test_texture_judges_say_which_weights_they_hold():
    style = textured()
    assert _judge(TextureLite0, style).weights_used() == {"efficientnet-lite0 imagenet"}
    assert _judge(TextureLite2, style).weights_used() == {"efficientnet-lite2 imagenet"}


@needs_shared
def test_on_real_pictures_johnsons_wave_is_closer_to_the_painting_than_the_photo_and_has_no_blob():
    photo = load_image(SHARED_DATA / "content" / "samples" / "chicago.jpg")
    johnson = load_image(SHARED_DATA / "reference" / "johnson_eccv16" / "chicago_wave.jpg")
    judge = _judge(TextureLite0, load_image(SHARED_DATA / "styles" / "wave.jpg"))
    assert judge.compute(photo, johnson)["texture_lite0"].item() < 0.5 * judge.compute(photo, photo)["texture_lite0"].item()
    resized = torch.nn.functional.interpolate(photo, size=johnson.shape[-2:], mode="bilinear", antialias=True)
    assert Fm.bright_blobs(resized, johnson)["count"].item() == 0
