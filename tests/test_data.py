"""Training data: conversions, corrupt files, reproducible order."""

import itertools

import numpy as np
import pytest
from PIL import Image

from stylekit.data import ImageFolder, ResumableSampler, list_images, load_rgb
from stylekit.errors import ConfigError
from stylekit.testing import make_images


def test_modes_are_converted_to_rgb(tmp_path):
    Image.new("L", (10, 8), 77).save(tmp_path / "gray.png")
    Image.new("RGBA", (10, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("CMYK", (10, 8), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("P", (10, 8), 3).save(tmp_path / "palette.gif")
    assert np.asarray(load_rgb(tmp_path / "gray.png"))[0, 0].tolist() == [77, 77, 77]
    assert np.asarray(load_rgb(tmp_path / "clear.png"))[0, 0].tolist() == [255, 255, 255]  # alpha over white
    cmyk = np.asarray(load_rgb(tmp_path / "cmyk.jpg"))[0, 0]
    assert cmyk[1] < 40 and cmyk[0] > 200  # magenta
    assert load_rgb(tmp_path / "palette.gif").mode == "RGB"


def test_recursive_listing_and_errors(tmp_path):
    make_images(tmp_path / "a" / "b", 2)
    (tmp_path / "notes.txt").write_text("x")
    files = list_images(tmp_path)
    assert [f.name for f in files] == ["img_000.jpg", "img_001.jpg"]
    with pytest.raises(ConfigError, match="no images"):
        list_images(tmp_path / "a" / "b" / "..", extensions=[".webp"])
    with pytest.raises(ConfigError, match="is not a folder"):
        list_images(tmp_path / "missing")
    assert len(list_images("builtin:skimage")) >= 5


def test_corrupt_images_are_skipped_and_reported(tmp_path):
    make_images(tmp_path, 2)
    (tmp_path / "img_000.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "img_001.jpg").read_bytes()[:200])
    ds = ImageFolder(list_images(tmp_path), 16, "center")
    item = ds[(0, 0)]
    assert item["image"].shape == (3, 16, 16)
    assert len(item["skipped"]) == 1 and "img_000.jpg" in item["skipped"][0]
    item = ds[(2, 0)]
    assert "truncated.png" in item["skipped"][0]


def test_crops_are_seeded_by_position(tmp_path):
    ds = ImageFolder(make_images(tmp_path, 3), 16, "random", seed=1)
    assert (ds[(0, 5)]["image"] == ds[(0, 5)]["image"]).all()
    assert not (ds[(0, 5)]["image"] == ds[(0, 6)]["image"]).all()


def test_sampler_resumes_the_same_stream():
    full = list(itertools.islice(iter(ResumableSampler(7, seed=3)), 40))
    resumed = list(itertools.islice(iter(ResumableSampler(7, seed=3, start=12)), 28))
    assert full[12:] == resumed
    assert sorted(i for i, _ in full[:7]) == list(range(7))  # each epoch is a permutation


def test_sampler_ranks_partition_the_single_process_stream():
    single = list(itertools.islice(iter(ResumableSampler(10, seed=0)), 12))
    r0 = list(itertools.islice(iter(ResumableSampler(10, seed=0, rank=0, num_replicas=2)), 6))
    r1 = list(itertools.islice(iter(ResumableSampler(10, seed=0, rank=1, num_replicas=2)), 6))
    assert sorted(r0 + r1, key=lambda t: t[1]) == single
