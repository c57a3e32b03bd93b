"""The transformer network: architecture, output range, any input size."""

import pytest
import torch

from stylekit.models import TransformerNet


@pytest.mark.parametrize("norm", ["batch", "instance", "instance_floor"])
@pytest.mark.parametrize("upsample", ["deconv", "nearest"])
def test_any_size_and_range(norm, upsample):
    net = TransformerNet({"norm": norm, "upsample": upsample, "channels": 8, "residual_blocks": 2}).eval()
    for h, w in [(32, 32), (37, 51), (18, 66)]:
        y = net(torch.rand(1, 3, h, w) * 255)
        assert y.shape == (1, 3, h, w)
        assert y.min() >= 0 and y.max() <= 255


def test_paper_architecture():
    net = TransformerNet()
    convs = [m for m in net.down.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.out_channels) for c in convs] == [((9, 9), (1, 1), 32), ((3, 3), (2, 2), 64),
                                                                           ((3, 3), (2, 2), 128)]
    assert len(net.residual) == 5
    ups = [m for m in net.up.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(u.stride, u.out_channels) for u in ups] == [((2, 2), 64), ((2, 2), 32)]
    assert net.out[1].kernel_size == (9, 9) and net.out[1].out_channels == 3
    assert isinstance(net.down[0][2], torch.nn.InstanceNorm2d)
    assert isinstance(TransformerNet({"norm": "batch"}).down[0][2], torch.nn.BatchNorm2d)


def test_vgg_taps_of_conv_and_relu_outputs_are_both_intact():
    """VGG runs its ReLUs in place for speed; a tapped conv output must not be overwritten by them."""
    from stylekit.plugins import get_registry

    vgg = get_registry().get("backbone", "vgg16")({"weights": "random"})
    x = torch.rand(1, 3, 32, 32) * 255
    feats = vgg(x, ["conv1_2", "relu1_2", "conv2_1", "relu2_2"])
    assert float(feats["conv1_2"].min()) < 0 <= float(feats["relu1_2"].min())
    torch.testing.assert_close(feats["relu1_2"], feats["conv1_2"].relu())
    torch.testing.assert_close(vgg(x, ["relu2_2"])["relu2_2"], feats["relu2_2"])
    y = x.clone().requires_grad_(True)
    vgg(y, ["relu2_2"])["relu2_2"].sum().backward()  # in-place ReLUs keep autograd valid
    assert y.grad is not None and float(y.grad.abs().sum()) > 0


@pytest.mark.parametrize("size", [(32, 32), (30, 45)])
def test_fast_layers_compute_the_listed_modules_exactly(size):
    """The upsampling and output layers run reformulated convs; the result is the plain module chain's."""
    net = TransformerNet({"norm": "instance", "upsample": "nearest", "channels": 8, "residual_blocks": 1}).double()
    x = torch.rand(2, 3, *size, dtype=torch.double) * 255

    def plain(module, value):
        for layer in module:
            value = layer(value)
        return value

    for layer, shape in ((net.up[0], (2, 32, 9, 13)), (net.up[1], (2, 16, 17, 23)), (net.out, (2, 8, 36, 44))):
        value = torch.randn(*shape, dtype=torch.double, requires_grad=True)
        fast, reference = layer(value), plain(layer, value)
        torch.testing.assert_close(fast, reference)
        grad = torch.randn_like(fast)
        torch.testing.assert_close(torch.autograd.grad(fast, value, grad)[0],
                                   torch.autograd.grad(reference, value, grad)[0])
    assert net(x).shape == x.shape


@pytest.mark.parametrize("norm,upsample", [("instance", "nearest"), ("batch", "deconv"), ("instance_floor", "nearest")])
def test_the_fast_network_is_the_plain_network_with_the_same_state_dict(norm, upsample):
    """The fast forms are swapped in once at build time; the plain modules are the paper's, and the same weights
    give the same outputs and gradients (checked in float64)."""
    from stylekit.models.fast_layers import ReflectionPad, SpaceToDepthConv, UpsampleConv, use_fast_layers

    torch.manual_seed(0)
    options = {"norm": norm, "upsample": upsample, "channels": 8, "residual_blocks": 1}
    fast, plain = TransformerNet(options).double(), TransformerNet(options, fast=False).double()
    assert list(fast.state_dict()) == list(plain.state_dict())  # checkpoints do not see the swap
    plain.load_state_dict(fast.state_dict())
    assert not any(isinstance(m, (ReflectionPad, SpaceToDepthConv, UpsampleConv)) for m in plain.modules())
    assert isinstance(fast.out, SpaceToDepthConv) and isinstance(fast.down[0][0], ReflectionPad)
    assert isinstance(fast.up[0], UpsampleConv) == (upsample == "nearest")
    assert [type(m) for m in use_fast_layers(fast).modules()] == [type(m) for m in fast.modules()]  # idempotent

    x = torch.rand(2, 3, 30, 45, dtype=torch.double) * 255
    outputs, grads = [], []
    for net in (fast, plain):
        image = x.clone().requires_grad_(True)
        y = net(image)
        y.pow(2).mean().backward()
        outputs.append(y.detach())
        grads.append([image.grad, *[p.grad for p in net.parameters()]])
    torch.testing.assert_close(outputs[0], outputs[1])
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected)


def test_floored_instance_norm_is_its_formula_with_exact_gradients():
    """Training uses a fused form with a hand-written backward; it equals the formula, value and gradient (float64)."""
    from stylekit.models.transformer import FlooredInstanceNorm, _FlooredInstanceNorm

    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.double, requires_grad=True)
    weight, bias = torch.rand(3, dtype=torch.double, requires_grad=True), torch.rand(3, dtype=torch.double, requires_grad=True)
    floor = torch.rand(3, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda *a: _FlooredInstanceNorm.apply(*a, floor, 1e-5)[0].view(x.shape),
                                    (x, weight, bias))
    var, mean = torch.var_mean(x, dim=(-2, -1), keepdim=True, correction=0)
    formula = (x - mean) / torch.sqrt(var + floor.view(1, -1, 1, 1) + 1e-5) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(_FlooredInstanceNorm.apply(x, weight, bias, floor, 1e-5)[0].view(x.shape), formula)
    norm = FlooredInstanceNorm(3, momentum=0.0).double()  # momentum 0: the floor stays, train and eval agree
    norm.running_var.copy_(floor)
    trained = norm.train()(x)
    torch.testing.assert_close(norm.eval()(x), trained)


def test_floored_instance_norm_keeps_a_flat_map_quiet_and_learns_its_floor():
    """Plain instance norm blows a near-flat feature map up to unit spread (the blob's seed); the floor keeps it near 0.
    The floor follows the mean variance of the training batches."""
    from stylekit.models.transformer import FlooredInstanceNorm

    torch.manual_seed(0)
    textured = torch.randn(4, 2, 16, 16) * 3.0
    norm = FlooredInstanceNorm(2, momentum=0.5)
    for _ in range(20):
        norm(textured)
    assert torch.allclose(norm.running_var, textured.var((-2, -1), unbiased=False).mean(0), rtol=0.05)
    flat = 5.0 + 0.01 * torch.randn(1, 2, 16, 16)  # a sky: almost no spread
    assert torch.nn.functional.instance_norm(flat).std() > 0.9
    assert norm.eval()(flat).abs().max() < 0.05
