"""``stylekit stylize --backend onnxruntime``: the network exported to ONNX once (cached) and run by ONNX Runtime.

On a CPU, ONNX Runtime runs these small-channel convolutions faster than PyTorch's oneDNN path in fp32 (see
benchmarks/peer_speed.py). The export is :func:`stylekit.export.export_onnx`'s, checked against PyTorch when
written; the file is kept in the cache folder (``STYLEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/stylekit``,
else ``~/.cache/stylekit``) under a key of the model file's contents and the versions that made it, so a model
is exported once. ONNX Runtime computes in float32 on the CPU; a multi-style network's style is an input of
the graph (``style_weights``), so every style and blend runs the same file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .card import sha256_file
from .errors import StylekitError
from .export import ONNX_HINT, export_onnx, require_onnx
from .models.base import TransformerNetwork
from .models.conditional import StyledNetwork, StyleSpec
from .version import __version__

#: the opset the cached files are written with
OPSET = 17


def cache_folder() -> Path:
    """Where stylekit keeps files it can always make again (here: ONNX exports)."""
    if os.environ.get("STYLEKIT_CACHE_DIR"):
        return Path(os.environ["STYLEKIT_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "stylekit"


def onnx_file(net: TransformerNetwork, model_file: Path) -> Path:
    """The cached ONNX export of ``net`` (loaded from ``model_file``), written (and checked) when missing."""
    import onnxruntime

    key = hashlib.sha256(" ".join([sha256_file(model_file), __version__, torch.__version__,
                                   onnxruntime.__version__, str(OPSET)]).encode()).hexdigest()[:20]
    folder = cache_folder() / "onnx"
    path = folder / f"{model_file.stem}-{key}.onnx"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".export-", suffix=".onnx")
        os.close(handle)
        try:
            export_onnx(net, temporary, opset=OPSET, verify_size=64)
            os.replace(temporary, path)  # whole or not at all, also with two exports at once
        finally:
            Path(temporary).unlink(missing_ok=True)
    return path


class OnnxRuntimeNetwork(nn.Module):
    """A transformer network run by ONNX Runtime on the CPU: ``forward(images[, style_weights])`` as the network's
    own (a multi-style network's weights: one row for the whole batch)."""

    def __init__(self, net: TransformerNetwork, model_file: str | os.PathLike, threads: int | None = None):
        super().__init__()
        try:
            require_onnx()
        except StylekitError:
            raise StylekitError(f"--backend onnxruntime needs onnx and onnxruntime: {ONNX_HINT}") from None
        import onnxruntime as ort

        self.__dict__["network"] = net  # not a submodule: its weights live in the ONNX file
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_file(net, Path(model_file))), options,
                                            providers=["CPUExecutionProvider"])

    @property
    def styles(self) -> list[str]:
        return self.network.styles

    def styled(self, style: StyleSpec) -> StyledNetwork:
        return StyledNetwork(self, self.network.weights(style))

    def forward(self, images: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        feeds = {"image": np.ascontiguousarray(images.detach().float().cpu().numpy())}
        if self.styles:
            feeds["style_weights"] = style_weights.detach().float().cpu().reshape(-1).numpy()
        return torch.from_numpy(self.session.run(None, feeds)[0])
