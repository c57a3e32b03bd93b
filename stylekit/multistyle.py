"""Training a multi-style network: which style each image of a batch learns, where its weights start, and which
of them train.

- **Styles per batch** (:func:`style_labels`): a style per batch element by default, as Dumoulin et al.'s
  code draws them (magenta ``image_utils.style_image_inputs`` batches independently shuffled style examples,
  one label each), or one per batch (``style.sampling: batch``). The labels are a pure function of the seed and
  the step, so a resumed run draws the same ones.
- **Starting weights** (:func:`init_from`, ``model.init``): every tensor of a trained model whose name and
  shape match; a multi-style network's γ/β rows are copied by style *name*, so the source's styles keep their
  parameters and styles it lacks start as magenta's do (γ = 1, β = 0).
- **Adding styles** (``model.train: new_styles``): only the new styles' rows of γ/β train (as magenta's
  ``image_stylization_finetune.py`` trains only the normalization parameters), only the new styles are drawn,
  and the shared layers run as at inference (eval mode: a batch norm or ``instance_floor`` keeps its stored
  statistics), so the styles the source had stay bit-for-bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_model, model_file_for
from .errors import ConfigError, StylekitError
from .models.base import TransformerNetwork
from .models.conditional import ConditionalNorm


def style_labels(seed: int, step: int, batch: int, choices: list[int], *, per_batch: bool = False,
                 rank: int = 0, world: int = 1) -> torch.Tensor:
    """The styles (indices) of the ``batch`` images this rank trains at ``step``: uniform draws from
    ``choices``, the same for every run with this seed; ``per_batch``: one style for the whole global batch."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    count = 1 if per_batch else batch * world
    drawn = torch.randint(len(choices), (count,), generator=generator)
    labels = torch.tensor(choices)[drawn]
    return labels.expand(batch).clone() if per_batch else labels[rank * batch:(rank + 1) * batch]


@dataclass
class InitReport:
    """What :func:`init_from` did: the styles the source lacks, and the tensors it could not fill."""

    new_styles: list[str]
    copied: int
    total: int
    not_copied: list[str]

    def describe(self, source: str | Path) -> str:
        """One line for the training header: all tensors, or how many and which were left at initialization."""
        if not self.not_copied:
            return f"starting from {source}: all {self.total} tensors"
        shown = ", ".join(self.not_copied[:4]) + (f" … ({len(self.not_copied)} in all)" if len(self.not_copied) > 4 else "")
        return (f"starting from {source}: {self.copied} of {self.total} tensors; left at initialization (not in it, "
                f"or of another shape): {shown}")


def init_from(model: TransformerNetwork, source: str | Path) -> InitReport:
    """Copy into ``model`` every tensor of the model at ``source`` (a run, checkpoint, file or shipped name) whose
    name and shape match, γ/β rows by style name; reports the styles of ``model`` that ``source`` lacks and the
    tensors that were not copied (a source trained with other network options: ``norm``, ``channels``…)."""
    try:
        given = load_model(model_file_for(source))
    except StylekitError as exc:
        raise ConfigError(f"model.init: {exc}") from None
    theirs = given.state_dict()
    old_styles = given.styles
    new_styles = [name for name in model.styles if name not in old_styles]
    rows = [(model.styles.index(name), old_styles.index(name)) for name in model.styles if name in old_styles]
    conditional = {f"{prefix}.{p}" for prefix, module in model.named_modules()
                   if isinstance(module, ConditionalNorm) for p in ("gamma", "beta")}
    copied, not_copied = 0, []
    mine_all = model.state_dict()
    with torch.no_grad():
        for key, mine in mine_all.items():
            if key in conditional and key in theirs and theirs[key].shape[1:] == mine.shape[1:]:
                for to, frm in rows:
                    mine[to].copy_(theirs[key][frm])
                copied += 1
            elif key in theirs and theirs[key].shape == mine.shape:
                mine.copy_(theirs[key])
                copied += 1
            else:
                not_copied.append(key)
    if not copied:
        raise ConfigError(f"model.init: {source} holds a {given.name!r} network sharing no weights with this "
                          f"{model.name!r} one; start from a model of the same network")
    return InitReport(new_styles, copied, len(mine_all), not_copied)


def trainable_parameters(model: TransformerNetwork, train: str, new_styles: list[str]) -> list[torch.nn.Parameter]:
    """What the optimizer updates: every parameter, or (``new_styles``) only the γ/β matrices, of which only
    the new styles' rows ever get a gradient (only they are drawn)."""
    if train == "all":
        return list(model.parameters())
    keep = {id(p) for p in model.style_parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in keep)
    return [p for p in model.parameters() if id(p) in keep]


def check_new_styles(recipe, new_styles: list[str]) -> None:
    """``model.train: new_styles`` needs a style ``model.init`` lacks (the rest is checked by
    :func:`stylekit.preflight.check_model_init`, before the run folder exists)."""
    if recipe.model.train == "new_styles" and not new_styles:
        raise ConfigError(f"model.train: new_styles, but {recipe.model.init} already has every style of this "
                          "recipe; add the new style image to style.images")
