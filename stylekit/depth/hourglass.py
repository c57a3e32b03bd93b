"""Chen et al. 2016, "Single-Image Depth Perception in the Wild" (NIPS): the hourglass depth network.

The architecture is the one of the public PyTorch port (yifjiang/relative-depth-using-pytorch,
``models/hourglass.py`` + ``models/layers/inception.py``), with the same module tree so that the
port's parameter names load one to one: a 7×7 conv + BN + ReLU stem (``blockH``), four nested
hourglass levels (``_4channels``: ``Channels4`` ⊃ ``Channels3`` ⊃ ``Channels2`` ⊃ ``Channels1``) built
from Inception-style modules (parallel 1×1 and 1×1→k×k conv branches, BatchNorm without affine
parameters, concatenated), and a final 3×3 conv to one channel. Input: RGB in [0, 1] at 240×320;
output: relative *depth* (larger = farther), trained with a ranking loss on ordinal point pairs.

The port's checkpoints pickle a whole ``nn.Module`` (``torch.save(model, ...)``), which an ordinary
``torch.load`` would rebuild by importing and running the port's code. :func:`read_port_checkpoint`
instead unpickles with an allow-list: tensor/storage rebuild functions, ``OrderedDict`` and inert
stand-ins for the port's and ``torch.nn``'s module classes; anything else is refused.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

from ..errors import StylekitError, WeightsNotFoundError
from ..weights import WeightsFile, resolve_weights
from .base import DepthNetwork, DepthOptions

HOURGLASS_WEIGHTS = WeightsFile(
    filename="Best_model_period1.pt",
    sha256=None,
    url=None,
    license="see yifjiang/relative-depth-using-pytorch and Chen et al. 2016 (research code)",
    how_to_get="No official download is reachable from stylekit. Train or obtain a checkpoint of the PyTorch port "
               "yifjiang/relative-depth-using-pytorch (a whole pickled `Model` from its models/hourglass.py, e.g. "
               "results/Best_model_period1.pt) and pass it as the network's `weights` option. stylekit reads it "
               "without running pickled code (zip or legacy torch.save format).",
)


class UnsafeCheckpointError(StylekitError):
    """A pickled checkpoint asked for something other than tensors and known module classes."""


# -- architecture ------------------------------------------------------------------------------

def _conv_bn_relu(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=(k - 1) // 2), nn.BatchNorm2d(cout, affine=False), nn.ReLU()]


class Inception(nn.Module):
    """Parallel branches concatenated on channels: ``config = [[c0], [k, c_mid, c_out], ...]``.

    Branch 0 is a 1×1 conv; the others are 1×1 (to ``c_mid``) then k×k (to ``c_out``). Every conv is
    followed by BatchNorm without affine parameters and ReLU, as in the Torch7 original.
    """

    def __init__(self, cin: int, config: list[list[int]]):
        super().__init__()
        self.config = config
        self.convs = nn.ModuleList([nn.Sequential(*_conv_bn_relu(cin, config[0][0], 1))])
        for k, mid, out in config[1:]:
            self.convs.append(nn.Sequential(*_conv_bn_relu(cin, mid, 1), *_conv_bn_relu(mid, out, k)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.convs], dim=1)


# The port's Inception configurations (our labels; its comments letter module kinds after the paper's figure).
_A = [[64], [3, 32, 64], [5, 32, 64], [7, 32, 64]]     # 256 → 256
_B = [[64], [3, 64, 64], [7, 64, 64], [11, 64, 64]]    # 256 → 256, wider receptive field
_C = [[32], [3, 32, 32], [5, 32, 32], [7, 32, 32]]     # → 128
_D = [[32], [3, 64, 32], [5, 64, 32], [7, 64, 32]]     # 128 → 128
_E = [[16], [3, 32, 16], [7, 32, 16], [11, 32, 16]]    # 128 → 64


class _Level(nn.Module):
    """One hourglass level: ``list[0](x) + list[1](x)`` (the port's attribute is called ``list``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.list[0](x) + self.list[1](x)


def _down_up(*modules: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(2), *modules, nn.Upsample(scale_factor=2, mode="nearest"))


class Channels1(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            nn.Sequential(Inception(256, _A), Inception(256, _A)),
            _down_up(Inception(256, _A), Inception(256, _A), Inception(256, _A)),
        ])


class Channels2(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            nn.Sequential(Inception(256, _A), Inception(256, _B)),
            _down_up(Inception(256, _A), Inception(256, _A), Channels1(), Inception(256, _A), Inception(256, _B)),
        ])


class Channels3(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            _down_up(Inception(128, _C), Inception(128, _A), Channels2(), Inception(256, _A), Inception(256, _C)),
            nn.Sequential(Inception(128, _C), Inception(128, _D)),
        ])


class Channels4(_Level):
    def __init__(self):
        super().__init__()
        self.list = nn.ModuleList([
            _down_up(Inception(128, _C), Inception(128, _C), Channels3(), Inception(128, _D), Inception(128, _E)),
            nn.Sequential(Inception(128, _E)),
        ])


class HourglassNet(nn.Module):
    """The port's ``Model``: ``final(_4channels(blockH(x)))``; parameter names match its state dict."""

    def __init__(self):
        super().__init__()
        self.blockH = nn.Sequential(nn.Conv2d(3, 128, 7, padding=3), nn.BatchNorm2d(128), nn.ReLU())
        self._4channels = Channels4()
        self.final = nn.Conv2d(64, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self._4channels(self.blockH(x)))


# -- restricted unpickling of the port's whole-module checkpoints --------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}
#: the port's own classes (its modules are imported as ``models.hourglass`` / ``layers.inception``
#: depending on sys.path, so any module path ending in these names is accepted)
_PORT_CLASSES = {"hourglass": {"Model", "Channels1", "Channels2", "Channels3", "Channels4"},
                 "inception": {"inception"}}
#: torch.nn containers and layers that can occur in the port's model
_NN_CLASSES = {"Conv2d", "BatchNorm2d", "ReLU", "Sequential", "ModuleList", "AvgPool2d", "UpsamplingNearest2d",
               "Upsample", "Identity"}


class _StorageType:
    """What a pickled ``torch.FloatStorage`` & co. stand for here: just an element type."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _ModuleStub:
    """Inert stand-in for a pickled nn.Module: it only keeps the pickled ``__dict__``."""

    qualified_name = "?"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise UnsafeCheckpointError(f"unexpected pickled state for {self.qualified_name}")
        self.__dict__["state"] = state


class _ParameterStub:
    """Stand-in for torch ≤0.3's ``Parameter(data)`` reduce (followed by a state tuple)."""

    def __init__(self, data: Any = None, requires_grad: Any = True, *_: Any):
        self.data = data

    def __setstate__(self, state: Any) -> None:
        pass


_stub_classes: dict[str, type] = {}


def _stub_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _stub_classes:
        _stub_classes[key] = type(name, (_ModuleStub,), {"qualified_name": key, "__module__": __name__})
    return _stub_classes[key]


def _as_tensor(obj: Any) -> torch.Tensor:
    if isinstance(obj, _ParameterStub):
        obj = obj.data
    if not isinstance(obj, torch.Tensor):
        raise UnsafeCheckpointError(f"expected a tensor in the checkpoint, found {type(obj).__name__}")
    return obj


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor(_v2)`` on our flat storages (extra args: requires_grad, hooks…)."""
    if not isinstance(storage, torch.Tensor):
        raise UnsafeCheckpointError("tensor rebuilt from something that is not a storage")
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: Any, *_: Any) -> torch.Tensor:
    return _as_tensor(data)


def _thnn_backend(*_: Any) -> None:  # torch ≤0.4 modules pickled their backend; irrelevant here
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only an allow-list of globals; storages come from ``load_storage(pid)``."""

    def __init__(self, file, load_storage):
        super().__init__(file, encoding="latin1")
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        leaf = module.rsplit(".", 1)[-1]
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset"):
            return {"set": set, "frozenset": frozenset}[name]
        if module == "torch" and name == "Size":
            return tuple
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch.nn.parameter" and name == "Parameter":
            return _ParameterStub
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch.nn.backends.thnn" and name == "_get_thnn_function_backend":
            return _thnn_backend
        if module.startswith("torch.nn.modules.") and name in _NN_CLASSES:
            return _stub_class(module, name)
        if name in _PORT_CLASSES.get(leaf, ()):
            return _stub_class(module, name)
        raise UnsafeCheckpointError(
            f"refusing to load the checkpoint: it asks for {module}.{name}, which is neither a tensor nor a "
            "module class of the hourglass port. The file may run code when loaded with torch.load; "
            "stylekit reads only plain tensors and the port's modules."
        )

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise UnsafeCheckpointError(f"unexpected persistent id in checkpoint: {pid!r}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":  # legacy format: ('module', class, source_file, source)
            return pid[1]
        if kind == "storage":
            return self._load_storage(pid[1:])
        raise UnsafeCheckpointError(f"unexpected persistent id kind {kind!r} in checkpoint")


def _storage_dtype(storage_type: Any) -> torch.dtype:
    if not isinstance(storage_type, _StorageType):
        raise UnsafeCheckpointError(f"unknown storage type in checkpoint: {storage_type!r}")
    return storage_type.dtype


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not pickles:
            raise UnsafeCheckpointError(f"{path} is a zip file without data.pkl: not a torch.save checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        cache: dict[str, torch.Tensor] = {}

        def load_storage(data: tuple) -> torch.Tensor:
            storage_type, key, _location, numel = data[:4]
            dtype = _storage_dtype(storage_type)
            if key not in cache:
                raw = bytearray(archive.read(f"{prefix}data/{key}"))
                flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
                cache[key] = flat.view(dtype) if dtype != torch.uint8 else flat
                if cache[key].numel() < int(numel) and dtype != torch.uint8:
                    raise UnsafeCheckpointError(f"storage {key} in {path} is truncated")
            return cache[key]

        with archive.open(pickles[0]) as fh:
            return _RestrictedUnpickler(io.BytesIO(fh.read()), load_storage).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _load_legacy(path: Path) -> Any:
    """The pre-1.6 ``torch.save`` format: 3 header pickles, the object, storage keys, raw storages."""
    file_size = path.stat().st_size
    with open(path, "rb") as fh:
        header = _RestrictedUnpickler(fh, lambda _: None)
        if header.load() != _LEGACY_MAGIC:
            raise UnsafeCheckpointError(f"{path} is not a torch.save checkpoint")
        _RestrictedUnpickler(fh, lambda _: None).load()  # protocol version
        sys_info = _RestrictedUnpickler(fh, lambda _: None).load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise UnsafeCheckpointError(f"{path} was saved on a big-endian machine; not supported")
        roots: dict[str, tuple[torch.dtype, torch.Tensor]] = {}

        def load_storage(data: tuple) -> torch.Tensor:
            storage_type, root_key, _location, numel = data[:4]
            view = data[4] if len(data) > 4 else None
            dtype = _storage_dtype(storage_type)
            if root_key not in roots:  # filled in place once the raw bytes are read
                if not 0 <= int(numel) * dtype.itemsize <= file_size:  # no huge allocation for a bogus size
                    raise UnsafeCheckpointError(f"storage {root_key} in {path} claims more data than the file holds")
                roots[root_key] = (dtype, torch.empty(int(numel), dtype=dtype))
            root = roots[root_key][1]
            if view is not None:
                _view_key, offset, size = view
                return root[int(offset): int(offset) + int(size)]
            return root

        obj = _RestrictedUnpickler(fh, load_storage).load()
        keys = _RestrictedUnpickler(fh, lambda _: None).load()
        for key in keys:
            dtype, root = roots[key]
            count = int.from_bytes(fh.read(8), "little", signed=True)
            nbytes = count * root.element_size()
            raw = fh.read(nbytes)
            if count != root.numel() or len(raw) != nbytes:
                raise UnsafeCheckpointError(f"storage {key} in {path} is truncated or inconsistent")
            if nbytes:
                root.view(torch.uint8).view(-1).copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    return obj


def _collect_state(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if not isinstance(obj, _ModuleStub):
        raise UnsafeCheckpointError(f"expected a module at {prefix or 'the top level'}, found {type(obj).__name__}")
    state = obj.state
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None:
                out[prefix + name] = _as_tensor(value).detach().clone()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _collect_state(child, f"{prefix}{name}.", out)


def read_port_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """State dict of a checkpoint of the port, read without executing pickled code.

    Accepts a pickled whole ``Model`` (zip or legacy ``torch.save`` format), or a plain state dict.
    """
    path = Path(path)
    loader = _load_zip if zipfile.is_zipfile(path) else _load_legacy
    try:
        obj = loader(path)
    except StylekitError:
        raise
    except Exception as exc:  # malformed pickle/zip: UnpicklingError, EOFError, KeyError, RuntimeError…
        raise WeightsNotFoundError(f"{path} could not be read as an hourglass checkpoint: "
                                   f"{type(exc).__name__}: {exc}") from exc
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if isinstance(obj, dict):
        return {str(k): _as_tensor(v).detach().clone() for k, v in obj.items()}
    state: dict[str, torch.Tensor] = {}
    _collect_state(obj, "", state)
    return state


def load_hourglass_state(net: HourglassNet, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load, except BatchNorm's ``num_batches_tracked`` (absent from torch ≤0.4 checkpoints)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}  # nn.DataParallel wrapping
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise WeightsNotFoundError(
            f"{source} does not match the hourglass architecture: missing {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
            f"{'…' if len(result.unexpected_keys) > 5 else ''}"
        )


# -- the registered component ------------------------------------------------------------------

class HourglassOptions(DepthOptions):
    weights: str = Field("default", description="A checkpoint of the PyTorch port "
                         "yifjiang/relative-depth-using-pytorch (pickled Model or state dict; read without running "
                         "pickled code), 'random' (for tests), or 'default' (looked up as Best_model_period1.pt "
                         "in the weights directory / cache; there is no download).")
    input_size: int | None = Field(None, ge=16, description="Shorter side the network runs at (default 240, "
                                                           "as the port's 240×320 input).")


class HourglassDepth(DepthNetwork):
    """Chen et al. 2016 (NIPS) hourglass network, relative depth (port's checkpoints, safe loader)."""

    name = "hourglass"
    Options = HourglassOptions
    output_kind = "depth"
    weights_file = HOURGLASS_WEIGHTS
    license = HOURGLASS_WEIGHTS.license
    default_input_size = 240
    size_multiple = 16  # four 2× average-pooling levels

    def __init__(self, options=None):
        super().__init__(options)
        choice = self.options.weights
        state = None
        if choice != "random":
            path = resolve_weights(HOURGLASS_WEIGHTS, None if choice == "default" else choice, component=self.name)
            state = (read_port_checkpoint(path), str(path))
        self.net = HourglassNet()
        if state is not None:
            load_hourglass_state(self.net, *state)
        self.freeze()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images / 255.0)
