"""Loss values match the papers' formulas on hand-computed tensors."""

import pytest
import torch

from stylekit.composer import LossComposer
from stylekit.features import Features, Tap
from stylekit.functional import gram_matrix
from stylekit.losses import ContentLoss, LossBatch, StyleLoss, TotalVariation
from stylekit.losses.base import LossTerm, TermOptions


def batch_with(out_feats: dict, content_feats: dict, output=None):
    output = output if output is not None else torch.zeros(len(next(iter(out_feats.values()))), 3, 4, 4)
    return LossBatch(output, output.clone(), Features({Tap(k): v for k, v in out_feats.items()}),
                     Features({Tap(k): v for k, v in content_feats.items()}))


def test_content_is_squared_l2_over_chw():
    a = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    b = torch.zeros_like(a)
    b[1] = 1.0
    term = ContentLoss({"layer": "relu2_2"})
    value = term(batch_with({"relu2_2": a}, {"relu2_2": b}))
    expected0 = sum(float(v) ** 2 for v in a[0].flatten()) / 12
    expected1 = sum((float(v) - 1) ** 2 for v in a[1].flatten()) / 12
    assert value.shape == (2,)
    assert value.tolist() == pytest.approx([expected0, expected1])


def test_gram_matrix_by_hand():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # N=1, C=2, H=1, W=2
    g = gram_matrix(f)
    # F Fᵀ = [[1+4, 3+8], [3+8, 9+16]] / (C·H·W = 4)
    assert torch.allclose(g, torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)


def test_gram_is_float32_under_bf16_input():
    assert gram_matrix(torch.randn(1, 4, 3, 3).bfloat16()).dtype == torch.float32


def test_style_is_squared_frobenius_of_gram_difference_summed_over_layers():
    torch.manual_seed(0)
    s1, s2 = torch.randn(1, 3, 4, 4), torch.randn(1, 5, 2, 2)
    o1, o2 = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)
    term = StyleLoss({"layers": ["a", "b"], "layer_weights": [1.0, 0.5]})
    term.set_style([Features({Tap("a"): s1, Tap("b"): s2})])
    value = term(batch_with({"a": o1, "b": o2}, {"a": o1, "b": o2}))
    for i in range(2):
        ga = o1[i].reshape(3, -1) @ o1[i].reshape(3, -1).T / 48 - s1[0].reshape(3, -1) @ s1[0].reshape(3, -1).T / 48
        gb = o2[i].reshape(5, -1) @ o2[i].reshape(5, -1).T / 20 - s2[0].reshape(5, -1) @ s2[0].reshape(5, -1).T / 20
        assert value[i].item() == pytest.approx((ga ** 2).sum().item() + 0.5 * (gb ** 2).sum().item(), rel=1e-5)
    mean = StyleLoss({"layers": ["a"], "reduction": "mean"})
    mean.set_style([Features({Tap("a"): s1})])
    summed = StyleLoss({"layers": ["a"]})
    summed.set_style([Features({Tap("a"): s1})])
    batch = batch_with({"a": o1}, {"a": o1})
    assert torch.allclose(mean(batch) * 9, summed(batch))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_normalized_layers_count_alike_whatever_their_activation_scale(reduction):
    """normalize_layers: a layer whose activations are 100× larger (HED's early layers) no longer drowns the
    others; each layer's distance is relative to its style Gram's size."""
    torch.manual_seed(0)
    s, o = torch.randn(1, 3, 4, 4), torch.randn(2, 3, 4, 4)
    options = {"layers": ["small", "big"], "normalize_layers": True, "reduction": reduction}
    term = StyleLoss(options)
    term.set_style([Features({Tap("small"): s, Tap("big"): 100 * s})])
    value = term(batch_with({"small": o, "big": 100 * o}, {}))
    one = StyleLoss({**options, "layers": ["small"]})
    one.set_style([Features({Tap("small"): s})])
    assert torch.allclose(value, 2 * one(batch_with({"small": o}, {})), rtol=1e-4)  # both layers count alike
    plain = StyleLoss({"layers": ["small", "big"], "reduction": reduction})
    plain.set_style([Features({Tap("small"): s, Tap("big"): 100 * s})])
    gram = gram_matrix(s)
    norm = gram.pow(2).mean() if reduction == "mean" else gram.pow(2).sum()
    unnormalized = plain(batch_with({"small": o, "big": 100 * o}, {}))
    assert torch.allclose(one(batch_with({"small": o}, {})) * norm * (1 + 1e8), unnormalized, rtol=1e-3)


def test_style_target_of_several_images_is_mean_gram():
    a, b = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 5, 5)
    term = StyleLoss({"layers": ["x"]})
    term.set_style([Features({Tap("x"): a}), Features({Tap("x"): b})])
    assert torch.allclose(term.targets["x"][0], (gram_matrix(a)[0] + gram_matrix(b)[0]) / 2)


def test_style_is_zero_for_the_style_image_itself():
    f = torch.randn(1, 4, 6, 6)
    term = StyleLoss({"layers": ["x"]})
    term.set_style([Features({Tap("x"): f})])
    assert term(batch_with({"x": f}, {"x": f})).item() == pytest.approx(0.0, abs=1e-10)


def test_style_options_validate():
    with pytest.raises(ValueError, match="layer_weights has 1 entries but layers has 2"):
        StyleLoss({"layers": ["a", "b"], "layer_weights": [1.0]})


def test_total_variation_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [3.0, 7.0]]]]).expand(1, 3, 2, 2)
    # vertical: (3-0)² + (7-1)² = 45; horizontal: (1-0)² + (7-3)² = 17; × 3 channels
    tv = TotalVariation({"weight": 1.0})
    batch = LossBatch(img, img, Features(), Features())
    assert tv(batch).item() == pytest.approx(3 * (45 + 17))
    assert TotalVariation({"power": 1})(batch).item() == pytest.approx(3 * (3 + 6 + 1 + 4))


class Spy(LossTerm):
    """Counts calls."""

    name = "spy"
    Options = TermOptions

    def __init__(self, options=None, *, key=None, value=1.0):
        super().__init__(options, key=key)
        self.calls, self.value = 0, value

    def forward(self, batch):
        self.calls += 1
        return torch.full((batch.output.shape[0],), self.value)


def test_composer_weights_sums_and_reports_unweighted():
    a, b = Spy({"weight": 2.0}, key="b_term", value=3.0), Spy({"weight": 0.5}, key="a_term", value=4.0)
    composer = LossComposer([a, b])
    total, raw = composer(LossBatch(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), Features(), Features()))
    assert total.item() == pytest.approx(2 * 3 + 0.5 * 4)
    assert raw == {"a_term": pytest.approx(4.0), "b_term": pytest.approx(3.0)}
    assert list(raw) == ["a_term", "b_term"]  # ordered by name, not by registration


def test_zero_weight_term_is_not_computed(tmp_path):
    from stylekit.composer import build_terms
    from stylekit.config import validate_recipe
    from stylekit.plugins import get_registry
    from stylekit.testing import tiny_recipe

    recipe = validate_recipe(tiny_recipe(tmp_path, losses={"tv": {"weight": 0.0}}), get_registry())
    keys = [t.key for t in build_terms(recipe, get_registry())]
    assert keys == ["content", "style"]


def test_feature_reconstruction_value_and_gradient_match_the_formula():
    from stylekit.functional import feature_reconstruction

    a = torch.randn(3, 4, 5, 6, dtype=torch.double, requires_grad=True)
    b = torch.randn(3, 4, 5, 6, dtype=torch.double, requires_grad=True)
    value = feature_reconstruction(a, b)
    torch.testing.assert_close(value.double(), ((a - b) ** 2).sum((1, 2, 3)).detach() / (4 * 5 * 6))
    weights = torch.tensor([1.0, 2.0, 3.0])
    (value * weights).sum().backward()
    expected = 2 * (a - b).detach() * weights.double().view(3, 1, 1, 1) / (4 * 5 * 6)
    torch.testing.assert_close(a.grad, expected.to(a.dtype), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(b.grad, -expected.to(a.dtype), rtol=1e-6, atol=1e-9)
    low = feature_reconstruction(a.detach().bfloat16().contiguous(memory_format=torch.channels_last),
                                 b.detach().bfloat16())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low.double(), value.detach().double(), rtol=2e-2, atol=0)


def test_a_style_term_can_look_through_another_network_than_the_backbone():
    """`network`: the term's taps, targets and value use that network's layers, not the recipe backbone's."""
    from stylekit.features import NetworkSpec

    options = {"layers": ["blocks.1"], "network": {"name": "timm", "options": {"model": "tf_efficientnet_lite0"}}}
    term = StyleLoss(options)
    key = NetworkSpec.of("backbone", "timm", {"model": "tf_efficientnet_lite0"}).key
    assert term.networks() == [NetworkSpec.of("backbone", "timm", {"model": "tf_efficientnet_lite0"})]
    assert term.output_taps() == term.style_taps() == [Tap("blocks.1", key)]
    s, o = torch.randn(1, 3, 4, 4), torch.randn(2, 3, 4, 4)
    term.set_style([Features({Tap("blocks.1", key): s, Tap("blocks.1"): 100 * s})])
    backbone_same = Features({Tap("blocks.1"): 100 * o, Tap("blocks.1", key): s.expand(2, -1, -1, -1)})
    assert torch.allclose(term(LossBatch(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), backbone_same,
                                         Features())), torch.zeros(2))  # compared at its own network's taps
    with pytest.raises(Exception):
        StyleLoss({"network": {"model": "x"}})  # a network needs a registered name
