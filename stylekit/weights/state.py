"""From a ``weights`` option to a loaded module: one parser, one reader, one strict loader.

Every pretrained component goes the same way: :func:`parse_weights_option` turns the recipe's
``'default' | 'random' | <name> | <path>`` into a :class:`WeightsChoice`; :func:`load_pretrained` resolves
it to a file (:func:`~stylekit.weights.files.resolve_weights`), reads it without running pickled code
(:func:`read_state_dict`), lets the component rename keys (``convert``) and loads it strictly
(:func:`load_state`): every key the module has must be in the file with its shape, and nothing else,
except keys the component names in ``ignore``. A file that does not fit raises
:class:`~stylekit.errors.WeightsMismatchError` naming the file, the first mismatching keys and the
shapes the module expects, never a raw ``RuntimeError`` from ``load_state_dict``.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError, UnsafeCheckpointError, WeightsMismatchError
from .files import WeightsFile, resolve_weights
from .unpickle import ModuleStub, PickledModules, as_tensor, module_state, read_torch_file

StateDict = dict[str, torch.Tensor]
#: how many mismatching keys an error lists per kind
SHOWN = 5


@dataclass(frozen=True)
class WeightsChoice:
    """A parsed ``weights`` option."""

    kind: Literal["default", "random", "named", "file"]
    #: the published set's name (``named``) or the path as given (``file``)
    value: str = ""

    @property
    def path(self) -> str | None:
        return self.value if self.kind == "file" else None


def parse_weights_option(value: str | os.PathLike | None, *, option: str = "weights", names: Iterable[str] = (),
                         component: str = "") -> WeightsChoice:
    """``'default'`` (the component's published weights), ``'random'`` (random init, for tests), one of
    ``names`` (a published set, e.g. torchvision's ``IMAGENET1K_V1``), or a file path.

    With ``names``, a bare word that is none of them is an error listing them, not a missing file.
    """
    text = "default" if value is None else str(value)
    if text in ("default", "random"):
        return WeightsChoice(text)  # type: ignore[arg-type]
    names = tuple(names)
    if text in names:
        return WeightsChoice("named", text)
    if names and not any(sep in text for sep in ("/", "\\", ".")):
        raise ConfigError(f"{component or 'component'}: option {option}={text!r} is neither a published weights "
                          f"name ({', '.join(names)}), 'default', 'random', nor a file path")
    return WeightsChoice("file", text)


def read_state_dict(path: str | Path, modules: PickledModules | None = None) -> StateDict:
    """The tensors of a weights file, read without running pickled code.

    ``.safetensors`` through safetensors; ``torch.save`` files through ``torch.load(weights_only=True)``,
    or, when ``modules`` allows whole pickled modules (old research code saved ``torch.save(model)``),
    through stylekit's restricted unpickler (zip and legacy formats). A container that is not a flat
    tensor dict (``{'model': …, 'optimizer': …}``, ``{'state_dict': …}``) comes back as read; the
    component's ``convert`` unwraps it.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError: header too large, truncated file…
            raise WeightsMismatchError(f"{path} could not be read as a .safetensors file: {exc}") from exc
    if modules is not None:
        obj = read_torch_file(path, modules)
        return module_state(obj) if isinstance(obj, ModuleStub) else _tensors(obj, path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).split("WeightsUnpickler error:")[-1].strip()
        if "Unsupported global" not in detail:  # not a pickle at all, or a damaged one
            raise WeightsMismatchError(f"{path} could not be read as a torch.save checkpoint: "
                                       f"{detail.splitlines()[0]}") from exc
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it is not a plain tensor checkpoint ({detail.split('. ')[0]}); loading it "
            "with torch.load could run code. Save the model's state_dict() instead.") from exc
    except Exception as exc:  # not a torch file at all: zip errors, EOFError, RuntimeError…
        raise WeightsMismatchError(f"{path} could not be read as a torch.save checkpoint: "
                                   f"{type(exc).__name__}: {exc}") from exc
    return _tensors(obj, path)


def _tensors(obj: Any, path: Path) -> Any:
    """A flat ``{name: tensor}`` dict (parameters as plain tensors); other containers as they are."""
    if isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) or _is_param(v) for v in obj.values()):
        return {str(k): as_tensor(v) for k, v in obj.items()}
    if isinstance(obj, Mapping):
        return dict(obj)
    raise WeightsMismatchError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")


def _is_param(value: Any) -> bool:
    try:
        as_tensor(value)
    except UnsafeCheckpointError:
        return False
    return True


def unwrap(state: Any, *keys: str, source: str | Path = "the checkpoint") -> StateDict:
    """The first of ``keys`` present in a container checkpoint (``'state_dict'``, ``'model'``…), or ``state``."""
    if isinstance(state, Mapping):
        for key in keys:
            if key in state and isinstance(state[key], Mapping):
                return _tensors(state[key], Path(str(source)))
        if all(isinstance(v, torch.Tensor) for v in state.values()):
            return dict(state)
    raise WeightsMismatchError(f"{source} is a container checkpoint without a state dict under "
                               f"{' or '.join(repr(k) for k in keys)}; its keys: {list(state)[:8]}")


def _fits(value: torch.Tensor, expected: torch.Tensor) -> bool:
    return tuple(value.shape) == tuple(expected.shape)


def _shape(t: torch.Tensor) -> str:
    return "×".join(str(s) for s in t.shape) or "scalar"


def _listed(items: list[str]) -> str:
    more = f", … ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def mismatch(module: nn.Module, state: Mapping[str, torch.Tensor], ignore: Sequence[str] = ()) -> str:
    """'' when ``state`` fits ``module`` exactly (up to ``ignore`` patterns), else what differs."""
    expected = module.state_dict()

    def ignored(key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in ignore)

    missing = [f"{k} [{_shape(v)}]" for k, v in expected.items() if k not in state and not ignored(k)]
    unexpected = [f"{k} [{_shape(v)}]" for k, v in state.items() if k not in expected and not ignored(k)]
    wrong = [f"{k}: file {_shape(v)}, expected {_shape(expected[k])}"
             for k, v in state.items() if k in expected and not _fits(v, expected[k]) and not ignored(k)]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s) the network needs (expected shape): {_listed(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} key(s) the network does not have: {_listed(unexpected)}")
    if wrong:
        parts.append(f"{len(wrong)} shape mismatch(es): {_listed(wrong)}")
    return "; ".join(parts)


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str | Path, what: str,
               ignore: Sequence[str] = ()) -> None:
    """Strict ``load_state_dict`` with explicit exceptions and stylekit's own error.

    ``ignore``: fnmatch patterns of keys that may be missing from the file (the module keeps its value),
    present without a counterpart, or of another shape (both dropped), e.g. ``'*.num_batches_tracked'``
    for torch ≤0.4 files.
    """
    problem = mismatch(module, state, ignore)
    if problem:
        raise WeightsMismatchError(f"{source} does not fit {what}: {problem}. Is it a checkpoint of {what}? "
                                   "See docs/weights.md for the expected files.")
    own = module.state_dict()
    module.load_state_dict({k: v for k, v in state.items() if k in own and _fits(v, own[k])}, strict=False)


def resolve_choice(choice: WeightsChoice, spec: WeightsFile | None, *, component: str) -> Path | None:
    """The file ``choice`` stands for (``spec`` for 'default' and named sets), or None for 'random'."""
    if choice.kind == "random":
        return None
    if choice.kind == "file":
        return resolve_weights(spec or WeightsFile(filename=Path(choice.value).name, sha256=None),
                               choice.value, component=component)
    if spec is None:
        raise ConfigError(f"{component}: no published weights; give a file as its `weights` option or 'random'")
    return resolve_weights(spec, component=component)


def load_pretrained(target: nn.Module, source: WeightsChoice | Path | None, spec: WeightsFile | None = None, *,
                    component: str, what: str | None = None, read: Callable[[Path], Any] = read_state_dict,
                    convert: Callable[[Any], Mapping[str, torch.Tensor]] | None = None,
                    ignore: Sequence[str] = ()) -> Path | None:
    """Resolve ``source`` (a choice, or a file already resolved with :func:`resolve_choice`), read it,
    ``convert`` it to ``target``'s names and load it strictly (:func:`load_state`).

    Returns the file used, or None for 'random' (``target`` keeps its initialization).
    """
    path = resolve_choice(source, spec, component=component) if isinstance(source, WeightsChoice) else source
    if path is None:
        return None
    try:
        state = read(path)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # a file of another kind (h5py, zip, pickle…)
        raise WeightsMismatchError(f"{path} could not be read as weights for {what or component}: "
                                   f"{type(exc).__name__}: {exc}") from exc
    if convert is not None:
        try:
            state = convert(state)
        except WeightsMismatchError as exc:  # a renaming that failed: say which file
            if str(path) in str(exc):
                raise
            raise WeightsMismatchError(f"{path}: {exc}") from exc
    load_state(target, state, source=path, what=what or component, ignore=ignore)
    return path
