"""A trained style network, ready for images of any kind and size: what ``stylekit.load`` returns.

``stylize`` returns the kind it was given (PIL → PIL, numpy HWC uint8 → numpy, torch CHW/NCHW → torch with
the input's dtype and device), so it drops into whatever pipeline the caller has. It runs the same code as
``stylekit stylize`` (tiling above ~4 megapixels, ``precision="auto"``), so both give the same pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from .checkpoint import load_model, read_card
from .errors import ImageInputError
from .hardware import check_precision, pick_device, pick_precision
from .models.base import TransformerNetwork
from .models.conditional import StyleSpec
from .stylize import blend, stylization, stylize_tensor

__all__ = ["ImageLike", "Stylizer", "blend"]

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)


class Stylizer(nn.Module):
    """A trained style network, ready for images of any kind and size (what :func:`load` returns).

    Calling it (``forward``) is the raw network: N×3×H×W float in [0, 255] → the same shape, with
    gradients, for use inside other PyTorch code (a multi-style network also takes ``style``).
    :meth:`stylize` is the convenient, no-gradient entry; :attr:`styles` lists a multi-style network's styles.
    """

    def __init__(self, net: TransformerNetwork, source: str = "", card: dict | None = None):
        super().__init__()
        self.net = net
        #: where the weights came from (a file path), for display
        self.source = source
        #: the model card (:mod:`stylekit.card`): style images with sha256 and license, training, final metrics,
        #: versions, the recipe; ``{}`` for a checkpoint written before stylekit recorded cards
        self.card = dict(card or {})
        self.eval()

    @classmethod
    def from_file(cls, file: Path, device: str | torch.device = "cpu") -> Stylizer:
        """The network in a ``model.safetensors`` (validated before anything is allocated), with its model card, in
        eval mode on ``device`` (``"auto"``: CUDA, else MPS, else the CPU)."""
        return cls(load_model(file), source=str(file), card=read_card(file)).to(pick_device(str(device)))

    def forward(self, images: torch.Tensor, style: StyleSpec | None = None) -> torch.Tensor:
        return self.net(images, style) if self.styles else self.net(images)

    @property
    def styles(self) -> list[str]:
        """The styles of a multi-style network, in order (``stylize(image, style=NAME)``); [] for a single style."""
        return list(self.net.styles)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def stylize(self, image: ImageLike, *, style: StyleSpec | None = None, strength: float = 1.0,
                preserve_color: bool = False, precision: str = "auto", tile: int | None = None,
                overlap: int = 64) -> ImageLike:
        """Stylize a PIL image, a numpy H×W×3 uint8 array or a float tensor (3×H×W or N×3×H×W, 0–255).

        Returns the same kind: PIL RGB, numpy H×W×3 uint8, or a tensor of the input's shape, dtype and device.
        ``style`` (multi-style networks, see :attr:`styles`): a name (``"udnie"``), an index, or a blend
        (``{"wave": 0.6, "udnie": 0.4}`` or ``"wave=0.6,udnie=0.4"``; weights are rescaled to sum to 1).
        ``strength`` blends with the content (0: the photo, 1: fully stylized); ``preserve_color`` keeps the
        photo's colors (the stylized brightness with the photo's YCbCr chroma). ``precision``: ``"auto"``
        (fp16 on CUDA, bf16 on CPUs with bf16 units, else fp32), ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        ``tile``: None tiles above ~4 megapixels (512 px tiles), 0 never; see ``stylekit stylize --tile``.
        """
        if not 0.0 <= strength <= 1.0:
            raise ImageInputError(f"strength={strength}: give a value from 0 (the photo) to 1 (fully stylized)")
        check_precision(precision, "precision=", ImageInputError)
        net = stylization(self.net, style, strength=strength, preserve_color=preserve_color)
        batch, restore = _as_batch(image)
        dtype = pick_precision(precision, self.device, inference=True)
        styled = torch.cat([stylize_tensor(net, item[None], dtype=dtype, tile=tile, overlap=overlap)
                            for item in batch])
        return restore(styled.clamp(0, 255))


def _as_batch(image):
    """``image`` → (N×3×H×W float32 CPU tensor in [0, 255], a function turning such a result back into its kind)."""
    from .data import to_rgb

    if isinstance(image, Image.Image):
        array = np.asarray(to_rgb(image), dtype=np.uint8)
        return _from_hwc(array), lambda out: Image.fromarray(_to_hwc(out))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ImageInputError(f"numpy images must be uint8 H×W×3 with values 0–255; got dtype {image.dtype} "
                                  "(for floats in [0, 1]: `(array * 255).round().astype(np.uint8)`)")
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ImageInputError(f"numpy images must be H×W×3 (or H×W, H×W×1, H×W×4); got shape {image.shape}")
        if image.shape[2] != 3:
            image = np.asarray(to_rgb(Image.fromarray(image.squeeze(2) if image.shape[2] == 1 else image)))
        return _from_hwc(image), _to_hwc
    if isinstance(image, torch.Tensor):
        return _tensor_batch(image)
    raise ImageInputError(f"cannot stylize a {type(image).__module__}.{type(image).__name__}: give a PIL image, "
                          "a numpy H×W×3 uint8 array or a torch tensor (3×H×W or N×3×H×W, values 0–255)")


def _from_hwc(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1).float()[None]  # a writable copy


def _to_hwc(batch: torch.Tensor) -> np.ndarray:
    return batch[0].round().byte().permute(1, 2, 0).contiguous().numpy()


def _tensor_batch(image: torch.Tensor):
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ImageInputError(f"tensors must be 3×H×W or N×3×H×W (RGB, values 0–255); got shape {tuple(image.shape)}")
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise ImageInputError(f"tensors must be float (0–255) or uint8; got {image.dtype}")
    if image.is_floating_point() and image.numel() and 0 < float(image.max()) <= 1.0:
        warnings.warn("the image tensor's values are all ≤ 1: stylekit expects 0–255 (multiply by 255), "
                      "e.g. after torchvision's ToTensor()", stacklevel=3)
    device, dtype, single = image.device, image.dtype, image.ndim == 3
    batch = image.detach().to("cpu", torch.float32)
    batch = batch[None] if single else batch

    def restore(out: torch.Tensor) -> torch.Tensor:
        out = out.round() if dtype == torch.uint8 else out
        out = out.to(device=device, dtype=dtype)
        return out[0] if single else out

    return batch, restore
