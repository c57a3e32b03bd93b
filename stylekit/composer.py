"""The weighted sum of loss terms: the one place where term weights are applied."""

from __future__ import annotations

import torch
from torch import nn

from .features import Tap
from .losses.base import LossBatch, LossTerm


def build_terms(recipe, registry) -> list[LossTerm]:
    """The recipe's terms, built from their validated options and ordered by key (never by registration order);
    weight-0 terms are left out."""
    terms = [registry.build(kind, name, recipe.options_at(where), where=where, key=where.removeprefix("losses."))
             for kind, name, _, where, _ in recipe.components() if kind == "loss"]
    return [term for term in terms if term.weight > 0]


class LossComposer(nn.Module):
    """Σ weight_i · term_i. Returns the total and each term's unweighted batch mean."""

    def __init__(self, terms: list[LossTerm]):
        super().__init__()
        terms = sorted(terms, key=lambda t: t.key)
        keys = [t.key for t in terms]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate loss term keys: {keys}")
        self.terms = nn.ModuleList(terms)

    @property
    def keys(self) -> list[str]:
        return [t.key for t in self.terms]

    def weights(self) -> dict[str, float]:
        return {t.key: t.weight for t in self.terms}

    def taps(self) -> list[Tap]:
        """Features every term needs on both ŷ and x."""
        return list(dict.fromkeys(tap for t in self.terms for tap in t.taps()))

    def output_taps(self) -> list[Tap]:
        """Features needed on ŷ: the shared ones plus those only compared with style targets."""
        return list(dict.fromkeys([*self.taps(), *(tap for t in self.terms for tap in t.output_taps())]))

    def style_taps(self) -> list[Tap]:
        return list(dict.fromkeys(tap for t in self.terms for tap in t.style_taps()))

    def networks(self) -> list:
        return list(dict.fromkeys(spec for term in self.terms for spec in term.networks()))

    def forward(self, batch: LossBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raw: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=batch.output.device)
        for term in self.terms:
            value = term(batch).float().mean()
            raw[term.key] = value
            total = total + term.weight * value
        return total, raw
