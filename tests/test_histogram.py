"""The histogram loss (Risser et al. 2017): each channel's whole distribution pulled to the painting's, so an output
cannot match the Gram matrices with a washed-out palette."""

from __future__ import annotations

import torch

from stylekit import functional
from stylekit.features import Features
from stylekit.losses import HistogramLoss
from stylekit.losses.base import LossBatch, TermContext
from stylekit.testing import check_term, make_perception, random_images


def test_remap_gives_each_value_the_target_value_at_its_rank():
    values = torch.tensor([[[3.0, -1.0, 7.0, 0.5]]])                      # N=1, C=1, 4 values
    target = functional.quantiles(torch.tensor([[[10.0, 40.0, 20.0, 30.0]]]), count=4)
    torch.testing.assert_close(target, torch.tensor([[10.0, 20.0, 30.0, 40.0]]))
    # ranks 2, 0, 3, 1 → the target's 3rd, 1st, 4th and 2nd values: order kept, distribution replaced
    torch.testing.assert_close(functional.histogram_remap(values, target), torch.tensor([[[30.0, 10.0, 40.0, 20.0]]]))


def test_the_paintings_own_pixels_in_any_order_cost_nothing_and_a_washed_out_copy_does():
    painting = random_images(1, (24, 16), seed=4) * 0.9 + 10
    term = HistogramLoss({"layers": ["pixels"], "quantiles": 384})
    term.prepare(TermContext(make_perception(), [painting], torch.device("cpu")))
    term.set_style([Features()])
    shuffled = painting.flatten(2)[..., torch.randperm(16 * 24)].view_as(painting)
    washed = painting.mean((-2, -1), keepdim=True) + 0.4 * (painting - painting.mean((-2, -1), keepdim=True))

    def loss(y):
        return term(LossBatch(y, y, Features(), Features()))

    assert float(loss(shuffled)) < 1e-6
    assert float(loss(washed)) > 0.1
    # its gradient restores the contrast: one step moves the spread toward the painting's
    y = washed.clone().requires_grad_(True)
    loss(y).sum().backward()
    stepped = y.detach() - 0.2 * y.grad / y.grad.abs().max() * 20
    assert float(stepped.std()) > float(washed.std())


def test_contract_on_a_network_layer_and_pixels():
    check_term(HistogramLoss, {"layers": ["pixels", "relu1_2"]})


def test_a_multi_style_network_is_judged_against_each_images_own_painting():
    dark, bright = random_images(1, (16, 16), seed=1) * 0.3, random_images(1, (16, 16), seed=2) * 0.3 + 170
    term = HistogramLoss({"layers": ["pixels"], "quantiles": 256})
    term.prepare(TermContext(make_perception(), [dark, bright], torch.device("cpu"), per_style=True))
    term.set_style([Features(), Features()])
    y = torch.cat([dark, dark])
    values = term(LossBatch(y, y, Features(), Features(), style=torch.tensor([0, 1])))
    assert float(values[0]) < 1e-6 < float(values[1])
