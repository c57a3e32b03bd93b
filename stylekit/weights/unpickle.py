"""Reading ``torch.save`` files without running pickled code, including whole pickled modules.

Research code often saved the whole model (``torch.save(model, path)``); an ordinary ``torch.load``
rebuilds it by importing and running that project's code, and ``weights_only=True`` refuses it.
:func:`read_torch_file` instead unpickles with an allow-list: tensor and storage rebuild functions
(current and torch ≤0.4 signatures), ``OrderedDict``, and inert stand-ins for the ``torch.nn`` and
project module classes the caller names (:class:`PickledModules`); anything else is refused with
:class:`UnsafeCheckpointError`. Both file layouts are read: the zip format (torch ≥1.6) and the
legacy one (magic number, protocol, system info, the pickled object, storage keys, raw storages)
that 2017–2019 torch wrote, storage classes such as ``torch.FloatStorage`` included.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import UnsafeCheckpointError, WeightsMismatchError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "UntypedStorage": torch.uint8,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class PickledModules:
    """The module classes a whole-module pickle may name.

    ``nn``: ``torch.nn`` class names (any ``torch.nn.modules.*`` module); ``own``: a project's classes by
    the last component of their module path (its code was imported as ``models.hourglass``, ``hourglass``
    or ``src.models.hourglass`` depending on ``sys.path``); ``what``: the project, for messages.
    """

    what: str
    own: dict[str, frozenset[str]] = field(default_factory=dict)
    nn: frozenset[str] = frozenset()


class _StorageType:
    """What a pickled ``torch.FloatStorage`` & co. stand for here: just an element type."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class ModuleStub:
    """Inert stand-in for a pickled nn.Module: it only keeps the pickled ``__dict__``."""

    qualified_name = "?"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict):
            raise UnsafeCheckpointError(f"unexpected pickled state for {self.qualified_name}")
        self.__dict__["state"] = state


class _ParameterStub:
    """Stand-in for torch ≤0.4's ``Parameter(data[, requires_grad])`` reduce (0.3 adds a state tuple)."""

    def __init__(self, data: Any = None, requires_grad: Any = True, *_: Any):
        self.data = data

    def __setstate__(self, state: Any) -> None:
        pass


_stub_classes: dict[str, type] = {}


def _stub_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _stub_classes:
        _stub_classes[key] = type(name, (ModuleStub,), {"qualified_name": key, "__module__": __name__})
    return _stub_classes[key]


def as_tensor(obj: Any) -> torch.Tensor:
    if isinstance(obj, _ParameterStub):
        obj = obj.data
    if not isinstance(obj, torch.Tensor):
        raise UnsafeCheckpointError(f"expected a tensor in the checkpoint, found {type(obj).__name__}")
    return obj


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    """``torch._utils._rebuild_tensor`` (torch ≤0.3: 4 arguments) and ``_rebuild_tensor_v2`` (0.4+: plus
    requires_grad, hooks, metadata), on our flat storages."""
    if not isinstance(storage, torch.Tensor):
        raise UnsafeCheckpointError("tensor rebuilt from something that is not a storage")
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: Any, *_: Any) -> torch.Tensor:
    return as_tensor(data)


def _thnn_backend(*_: Any) -> None:  # torch ≤0.4 modules pickled their backend; irrelevant here
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only an allow-list of globals; storages come from ``load_storage(pid)``."""

    def __init__(self, file, load_storage: Callable[[tuple], torch.Tensor], modules: PickledModules | None):
        super().__init__(file, encoding="latin1")
        self._load_storage = load_storage
        self._modules = modules

    def find_class(self, module: str, name: str) -> Any:
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
        allowed = self._modules
        if allowed is not None:
            if module == "torch.nn.backends.thnn" and name == "_get_thnn_function_backend":
                return _thnn_backend
            if module.startswith("torch.nn.modules.") and name in allowed.nn:
                return _stub_class(module, name)
            if name in allowed.own.get(module.rsplit(".", 1)[-1], ()):
                return _stub_class(module, name)
        what = f"a module class of {allowed.what}" if allowed else "a tensor container"
        raise UnsafeCheckpointError(
            f"refusing to load the checkpoint: it asks for {module}.{name}, which is neither a tensor nor {what}. "
            "The file may run code when loaded with torch.load; stylekit reads only plain tensors"
            + (f" and the modules of {allowed.what}." if allowed else ".")
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


def _load_zip(path: Path, modules: PickledModules | None) -> Any:
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
            return _RestrictedUnpickler(io.BytesIO(fh.read()), load_storage, modules).load()


def _load_legacy(path: Path, modules: PickledModules | None) -> Any:
    """The pre-1.6 ``torch.save`` format: 3 header pickles, the object, storage keys, raw storages."""
    file_size = path.stat().st_size
    with open(path, "rb") as fh:
        def header() -> Any:
            return _RestrictedUnpickler(fh, lambda _: None, None).load()

        if header() != _LEGACY_MAGIC:
            raise UnsafeCheckpointError(f"{path} is not a torch.save checkpoint")
        header()  # protocol version
        sys_info = header()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise UnsafeCheckpointError(f"{path} was saved on a big-endian machine; not supported")
        roots: dict[str, torch.Tensor] = {}

        def load_storage(data: tuple) -> torch.Tensor:
            storage_type, root_key, _location, numel = data[:4]
            view = data[4] if len(data) > 4 else None
            dtype = _storage_dtype(storage_type)
            if root_key not in roots:  # filled in place once the raw bytes are read
                if not 0 <= int(numel) * dtype.itemsize <= file_size:  # no huge allocation for a bogus size
                    raise UnsafeCheckpointError(f"storage {root_key} in {path} claims more data than the file holds")
                roots[root_key] = torch.empty(int(numel), dtype=dtype)
            root = roots[root_key]
            if view is not None:  # torch ≤0.3 storage views: (view key, offset, size)
                _view_key, offset, size = view
                return root[int(offset): int(offset) + int(size)]
            return root

        obj = _RestrictedUnpickler(fh, load_storage, modules).load()
        for key in header():
            root = roots[key]
            count = int.from_bytes(fh.read(8), "little", signed=True)
            nbytes = count * root.element_size()
            raw = fh.read(nbytes)
            if count != root.numel() or len(raw) != nbytes:
                raise UnsafeCheckpointError(f"storage {key} in {path} is truncated or inconsistent")
            if nbytes:
                root.view(torch.uint8).view(-1).copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    return obj


def read_torch_file(path: str | Path, modules: PickledModules | None = None) -> Any:
    """Unpickle a ``torch.save`` file (zip or legacy format) without running pickled code.

    Tensors come back as CPU tensors; pickled modules (only those ``modules`` allows) as
    :class:`ModuleStub` objects, turned into a state dict by :func:`module_state`.
    """
    path = Path(path)
    loader = _load_zip if zipfile.is_zipfile(path) else _load_legacy
    try:
        return loader(path, modules)
    except UnsafeCheckpointError:
        raise
    except Exception as exc:  # malformed pickle/zip: UnpicklingError, EOFError, KeyError, RuntimeError…
        raise WeightsMismatchError(f"{path} could not be read as a torch.save checkpoint: "
                                   f"{type(exc).__name__}: {exc}") from exc


def module_state(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """A pickled module's parameters and buffers under ``state_dict`` names (``None`` entries skipped)."""
    if not isinstance(obj, ModuleStub):
        raise UnsafeCheckpointError(f"expected a module at {prefix or 'the top level'}, found {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    state = obj.state
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None:
                out[prefix + name] = as_tensor(value).detach().clone()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            out.update(module_state(child, f"{prefix}{name}."))
    return out
