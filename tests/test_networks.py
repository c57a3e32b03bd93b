"""Transformer networks as plugins: Johnson's (unchanged), `lite`, and the conditional-instance-norm networks
(Dumoulin et al. 2017) checked against the layout of the authors' code (magenta image_stylization ops.py,
model.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import stylekit
from stylekit.checkpoint import load_model, read_safetensors_header, save_model
from stylekit.errors import StylekitError
from stylekit.models import ConditionalLiteNet, ConditionalNet, LiteNet, TransformerNet
from stylekit.models.conditional import ConditionalNorm, StyleError, style_weights
from stylekit.models.transformer import FlooredInstanceNorm
from stylekit.models.zoo import shipped_models

NORMS = ["instance", "batch", "instance_floor"]
TINY = {"channels": 4, "residual_blocks": 1}


def perturbed(net: nn.Module, seed: int = 0) -> nn.Module:
    """``net`` with every parameter moved off its initialization, so each one matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter += 0.3 * torch.randn(parameter.shape, generator=generator)
    return net.eval()


def test_the_registry_builds_every_network_kind():
    assert stylekit.list_components("model") == ["cin", "cin_lite", "johnson", "lite"]
    x = torch.rand(2, 3, 21, 34) * 255
    for name in ("johnson", "lite"):
        assert stylekit.create_model(name, **TINY)(x).shape == x.shape
    for name in ("cin", "cin_lite"):
        net = stylekit.create_model(name, styles=["a", "b"], **TINY)
        assert net.styles == ["a", "b"] and net(x, torch.tensor([0, 1])).shape == x.shape


def test_johnson_keeps_its_state_dict_keys_and_old_files_load(tmp_path):
    """The default network is today's: a file without ``model_name`` (every model shipped before networks were
    plugins) loads as it; the shipped ones name theirs."""
    from safetensors.torch import load_file, save_file

    net = TransformerNet(TINY)
    keys = list(net.state_dict())
    assert keys[:4] == ["down.0.1.weight", "down.0.1.bias", "down.0.2.weight", "down.0.2.bias"]
    assert stylekit.create_model("johnson", **TINY).state_dict().keys() == net.state_dict().keys()
    headers = {name: (file, read_safetensors_header(file)[0]) for name, file in shipped_models().items()}
    shipped = {name: (file, metadata) for name, (file, metadata) in headers.items()
               if metadata.get("model_name") == "johnson"}
    assert {"wave_johnson", "wave_depth_aware"} <= set(shipped), "the package ships single-style Johnson models"
    for name, (file, metadata) in shipped.items():
        assert type(load_model(file)) is TransformerNet
        old = tmp_path / f"{name}.safetensors"  # as files were written before `model_name` existed
        save_file(load_file(file), old, metadata={k: v for k, v in metadata.items() if k != "model_name"})
        assert type(load_model(old)) is TransformerNet
    # the shipped multi-style networks name their network and their five styles
    for name, network in (("multi_style", "cin_lite"), ("multi_style_large", "cin")):
        multi, metadata = headers[name]
        assert metadata.get("model_name") == network, name
        assert load_model(multi).styles == ["wave", "starry_night", "composition_vii", "the_scream", "udnie"]


@pytest.mark.parametrize("norm", NORMS)
def test_conditional_norms_sit_where_magenta_puts_them(norm):
    """ops.py conditional_instance_norm: per norm layer, gamma and beta of shape [num_styles, channels],
    initialized to ones and zeros; model.py: the normalizer follows every conv, the last (3 channels) too."""
    johnson = TransformerNet({**TINY, "norm": norm})
    cin = ConditionalNet({**TINY, "norm": norm, "styles": ["a", "b", "c"]})
    norms = [m for m in johnson.modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d, FlooredInstanceNorm))]
    conditional = cin.conditional_norms()
    assert len(conditional) == len(norms) + 1  # + the output's
    assert [n.gamma.shape for n in conditional] == [(3, n.weight.shape[0]) for n in norms] + [(3, 3)]
    assert all(bool((n.gamma == 1).all()) and bool((n.beta == 0).all()) for n in conditional)
    # the norm layers keep no affine of their own; the rest of the network is Johnson's, key for key
    assert not any(name.endswith((".norm.weight", ".norm.bias")) for name in cin.state_dict())
    norm_names = {name for name, m in johnson.named_modules() if any(m is n for n in norms)}
    affine = {f"{name}.{p}" for name in norm_names for p in ("weight", "bias")}
    shared = {k.replace(".norm.", "."): v.shape for k, v in cin.state_dict().items()
              if not k.endswith((".gamma", ".beta")) and not k.startswith("out_norm.")}
    assert shared == {k: v.shape for k, v in johnson.state_dict().items() if k not in affine}
    assert len(cin.style_parameters()) == 2 * len(conditional)


@pytest.mark.parametrize("norm", NORMS)
def test_one_style_is_johnsons_network_with_that_styles_affine(norm):
    """Conditioned on style s (or a mixture), the network equals Johnson's whose norm layers have γ_s, β_s (the
    mixed ones) as their affine: the norm without its own affine, then the style's."""
    cin = perturbed(ConditionalNet({**TINY, "norm": norm, "styles": ["a", "b", "c"], "output_norm": False})).double()
    x = torch.rand(2, 3, 22, 31, dtype=torch.double) * 255
    for mixture in ({"b": 1.0}, {"a": 0.6, "c": 0.4}):
        weights = style_weights(mixture, cin.styles).double()
        johnson = TransformerNet({**TINY, "norm": norm}).double().eval()
        state = {}
        for key, value in cin.state_dict().items():
            if key.endswith(".gamma") or key.endswith(".beta"):
                state[key.rsplit(".", 1)[0] + (".weight" if key.endswith(".gamma") else ".bias")] = weights @ value
            else:
                state[key.replace(".norm.", ".")] = value
        johnson.load_state_dict(state)
        torch.testing.assert_close(cin(x, mixture), johnson(x))


def test_each_image_of_a_batch_gets_its_own_style():
    cin = perturbed(ConditionalNet({**TINY, "styles": ["a", "b", "c"]}))
    x = torch.rand(3, 3, 20, 24) * 255
    together = cin(x, torch.tensor([2, 0, 1]))
    alone = torch.cat([cin(x[i:i + 1], style) for i, style in enumerate(["c", "a", "b"])])
    torch.testing.assert_close(together, alone, atol=1e-3, rtol=1e-4)
    assert (together[0] - cin(x[:1], "a")[0]).abs().mean() > 1  # styles really differ


def test_styles_are_picked_and_blended_by_name_index_or_text():
    names = ["wave", "udnie", "scream"]
    assert style_weights("udnie", names).tolist() == [0, 1, 0] == style_weights(1, names).tolist()
    torch.testing.assert_close(style_weights("wave=0.6,udnie=0.4", names), torch.tensor([0.6, 0.4, 0.0]))
    torch.testing.assert_close(style_weights({"wave": 1, "scream": 1}, names), torch.tensor([0.5, 0.0, 0.5]))
    for bad, words in (("vangogh", "unknown style 'vangogh'; this network's styles are: wave, udnie, scream"),
                       ("wave=lots", "NAME=WEIGHT"), ({"wave": -1}, "not negative"), ({"wave": 0}, "not all 0"),
                       ("", "empty"), (7, "unknown style 7")):
        with pytest.raises(StyleError, match=words):
            style_weights(bad, names)
    cin = ConditionalNet({**TINY, "styles": names})
    with pytest.raises(StyleError, match="has 3 styles .*choose one"):
        cin(torch.rand(1, 3, 16, 16) * 255)


def test_style_names_must_differ_and_be_writable_in_a_blend():
    with pytest.raises(StylekitError, match="own name"):
        stylekit.create_model("cin", styles=["a", "a"])
    with pytest.raises(StylekitError, match="no '='"):
        stylekit.create_model("cin", styles=["a=b"])


@pytest.mark.parametrize("cls", [LiteNet, ConditionalLiteNet])
def test_lite_fast_layers_compute_its_plain_modules(cls):
    options = {"channels": 4, "residual_blocks": 2, **({"styles": ["a", "b"]} if cls is ConditionalLiteNet else {})}
    net = perturbed(cls(options)).double()
    plain = net.plain().double()
    assert type(plain.out) is nn.Sequential and type(net.out) is not nn.Sequential  # really two forms
    x = torch.rand(2, 3, 26, 37, dtype=torch.double) * 255
    extra = (torch.tensor([0, 1]),) if net.styles else ()
    torch.testing.assert_close(net(x, *extra), plain(x, *extra))


def test_lite_is_depthwise_separable_and_much_smaller():
    lite, half = LiteNet(), TransformerNet({"channels": 16})
    depthwise = [m for m in lite.residual.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 2 * 5 and all(m.groups == m.in_channels == 64 for m in depthwise)
    assert [m.out_channels for m in lite.up.modules() if isinstance(m, nn.Conv2d)] == [16, 4]
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(lite) < count(half) / 4


def test_every_network_round_trips_through_its_file(tmp_path):
    x = torch.rand(1, 3, 19, 27) * 255
    for net in (perturbed(LiteNet(TINY)), perturbed(ConditionalLiteNet({**TINY, "styles": ["a", "b"]})),
                perturbed(ConditionalNet({**TINY, "norm": "instance_floor", "styles": ["x", "y", "z"]}))):
        save_model(net, tmp_path / "m.safetensors")
        loaded = load_model(tmp_path / "m.safetensors")
        assert type(loaded) is type(net) and loaded.styles == net.styles
        extra = (net.styles[1],) if net.styles else ()
        torch.testing.assert_close(loaded(x, *extra), net(x, *extra))
        assert stylekit.load(tmp_path / "m.safetensors").styles == net.styles


def test_a_file_of_an_unknown_network_says_so(tmp_path):
    from stylekit.checkpoint import CheckpointError

    net = LiteNet(TINY)
    save_model(net, tmp_path / "m.safetensors", {"model_name": "wings"})
    with pytest.raises(CheckpointError, match="'wings' network, which no installed plugin registers.*known networks: "
                                              "cin, cin_lite, johnson, lite"):
        load_model(tmp_path / "m.safetensors")


def test_conditional_norm_keeps_the_running_statistics_shared():
    norm = ConditionalNorm(FlooredInstanceNorm(5), styles=2)
    assert set(dict(norm.named_parameters())) == {"gamma", "beta"}
    assert set(norm.state_dict()) == {"gamma", "beta", "norm.running_var"}
