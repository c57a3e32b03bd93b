"""A recipe's ``model`` section: which registered transformer network, its options, and where its weights start.

Its keys are ``name`` (default ``johnson``, so recipes and run folders from before networks were plugins mean
Johnson's network), ``init`` and ``train``; every other key is an option of the named network, validated by
that network's own ``Options`` like a loss term's (:func:`stylekit.config.validate_recipe`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelConfig(BaseModel):
    """The transformer network: `name` picks a registered one (`stylekit plugins`); every other key except `init`
    and `train` is an option of that network (see its options under Components)."""

    model_config = ConfigDict(extra="allow")
    name: str = Field("johnson", description="Registered transformer network: 'johnson' (Johnson et al. 2016), "
                                             "'lite' (fast on CPUs), 'cin' and 'cin_lite' (one network for all "
                                             "`style.images`, Dumoulin et al. 2017).")
    init: str | None = Field(None, description="Start from the weights of this run folder, checkpoint, model file "
                                               "or shipped model (a multi-style network: its shared layers and the "
                                               "γ/β of the styles with the same names).")
    train: Literal["all", "new_styles"] = Field(
        "all", description="'all': train every weight; 'new_styles': only the γ/β of the styles `init` lacks "
                           "(adding styles to a trained multi-style network; the rest stays bit-for-bit).")

    def options(self) -> dict[str, Any]:
        """The network's own options: every key but ``name``, ``init`` and ``train``."""
        return dict(self.model_extra or {})


def with_style_names(cls, options: dict[str, Any], images: list[str], errors: list[str]) -> dict[str, Any] | None:
    """A multi-style network's options (its ``Options`` has ``styles``) with one style name per style image: the
    images' file names unless ``model.styles`` names them. A mismatch is added to ``errors``; None when the
    options cannot be validated for it."""
    if "styles" not in cls.Options.model_fields:
        return options
    names = options.get("styles")
    if names is None:
        names = [Path(image).stem for image in images]
        clashes = sorted(name for name in set(names) if names.count(name) > 1)
        if clashes:
            errors.append(f"  style.images: several images are named {', '.join(clashes)}; a multi-style network "
                          "needs a name per style: give them with model.styles")
            return None
        options = {**options, "styles": names}
    elif isinstance(names, list) and len(names) != len(images):
        errors.append(f"  model.styles: {len(names)} names for {len(images)} style.images; give one name per image, "
                      "in the same order (or leave model.styles out: the images' file names)")
    return options
