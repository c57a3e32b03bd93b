"""Checkpoints: transformer weights in safetensors, plus what resuming needs.

Layout of ``RUN/checkpoints/step_0000500/``::

    model.safetensors   weights; metadata holds the format version, the network's registered name
                        (``model_name``) and options, so this one file is enough to stylize
    meta.json           step, recipe (resolved), the metrics at that step and the model card
                        (stylekit.card; also in the safetensors metadata, so the model file carries it)
    train_state.pt      optimizer, RNG and loop state; loaded with ``weights_only=True``

Each checkpoint is written to a temporary folder and renamed into place, and
``RUN/checkpoints/latest`` is replaced atomically afterwards, so an interruption
never leaves a half-written checkpoint behind. Nothing here unpickles code. Where
checkpoints live in a run folder (and which is the latest) is :class:`~stylekit.runs.RunDir`'s.


Files are checked before anything is allocated from them: the safetensors header
(length, JSON, dtypes, shapes, offsets within the file) and every tensor's name and
shape against the network that ``model_name`` and ``model_options`` describe (built on the ``meta``
device, which allocates nothing), with bounds on those options. A malformed or crafted
file is a :class:`CheckpointError` that names it, never a traceback or a huge allocation.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from .card import METADATA_KEY, card_metadata, parse_card, upgrade_card
from .components import ComponentOptions
from .errors import CheckpointError, StylekitError
from .models.base import TransformerNetwork
from .models.transformer import TransformerNet
from .runs.folder import META_FILE, MODEL_FILE, STATE_FILE, RunDir, atomic_write_text  # noqa: F401 (re-exported)

#: 2: ``model_name`` names the network (files without it, format 1, hold Johnson's); Johnson's networks are still
#: written as format 1, which older stylekits read
FORMAT_VERSION = 2
#: the network of a model file without ``model_name``
DEFAULT_MODEL = "johnson"
#: safetensors' own limit on the JSON header
MAX_HEADER_BYTES = 100_000_000
#: safetensors dtype → (bytes per element, torch dtype)
DTYPES = {"F64": (8, torch.float64), "F32": (4, torch.float32), "F16": (2, torch.float16),
          "BF16": (2, torch.bfloat16), "I64": (8, torch.int64), "I32": (4, torch.int32), "I16": (2, torch.int16),
          "I8": (1, torch.int8), "U8": (1, torch.uint8), "BOOL": (1, torch.bool)}


def save_model(model: TransformerNetwork, path: Path, extra_metadata: dict[str, str] | None = None) -> None:
    version = 1 if model.name == DEFAULT_MODEL else FORMAT_VERSION  # Johnson's: readable by older stylekits
    metadata = {"format": "stylekit.transformer", "format_version": str(version), "model_name": model.name,
                "model_options": model.options.model_dump_json(), **(extra_metadata or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def save_checkpoint(run_dir: Path, step: int, model: TransformerNetwork, train_state: dict[str, Any],
                    meta: dict[str, Any], keep: int = 3) -> Path:
    run = RunDir(run_dir)
    final = run.checkpoint_dir(step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}."))
    try:
        save_model(model, tmp / MODEL_FILE, {"step": str(step), **card_metadata(meta.get("card"))})
        (tmp / META_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION, "step": step, **meta}, indent=2))
        torch.save(train_state, tmp / STATE_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    run.set_latest(final)
    run.prune_checkpoints(keep)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest complete checkpoint folder (see :meth:`RunDir.latest_checkpoint`)."""
    return RunDir(run_dir).latest_checkpoint()


def find_model_file(path: str | Path) -> Path:
    """A run folder, a checkpoint folder or a ``.safetensors`` file → the model file."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if (path / MODEL_FILE).is_file():
        return path / MODEL_FILE
    if path.is_dir():
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            return ckpt / MODEL_FILE
    raise CheckpointError(f"no checkpoint at {path}: give a run folder, a checkpoint folder or a {MODEL_FILE} file")


def model_file_for(path_or_name: str | os.PathLike) -> Path:
    """The ``model.safetensors`` a path or a name stands for: a run's latest checkpoint, a checkpoint folder's
    model, a file as given, or a shipped model's file (``stylekit models`` lists them)."""
    from .models import zoo

    text = os.fspath(path_or_name)
    path = Path(text).expanduser()
    if path.exists():
        return find_model_file(path)
    if os.sep in text or "/" in text or text.endswith(zoo.SUFFIX):
        raise StylekitError(f"{text}: no such file or folder; give a run folder (e.g. runs/quickstart), a checkpoint "
                            "folder or a model.safetensors file")
    return zoo.shipped_model_file(text)


def model_label(path: str | Path) -> str:
    """A short name for the model at ``path``, for output file names: the run's name where there is one."""
    file = find_model_file(path).resolve()
    run = RunDir.containing(file, with_records=False)
    if run is not None:
        name = run.name
    else:
        name = file.parent.name if file.stem == "model" else file.stem
    return re.sub(r"[^\w.+-]", "_", name).strip("._")[:60] or "stylized"


def read_safetensors_header(file: Path) -> tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...]]]]:
    """(metadata, {name: (dtype, shape)}) of a safetensors file, checked against the file's size.

    Format (https://github.com/huggingface/safetensors, README "Format"): an 8-byte little-endian header
    length N, N bytes of JSON ``{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}``,
    then the tensor bytes; offsets are relative to the end of the header and must tile that buffer.
    """
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{file} is not a valid safetensors file: {what}. It may be truncated, corrupt or "
                               "not a checkpoint; use another checkpoint, or retrain.")

    try:
        size = file.stat().st_size
        with file.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise bad(f"{size} bytes, too short for a header")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise bad(f"the header claims {length:,} bytes but the file has {size - 8:,} after the length field")
            text = fh.read(length)
    except OSError as exc:
        raise CheckpointError(f"{file} cannot be read: {exc.strerror or exc}") from None
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map names to strings")
    data_size = size - 8 - length
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r} needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise bad(f"tensor {name!r} has unknown dtype {dtype!r}")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)):
            raise bad(f"tensor {name!r} has an invalid shape {shape!r:.80}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise bad(f"tensor {name!r} has data offsets {offsets!r:.80} outside the {data_size:,} data bytes")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPES[dtype][0]:
            raise bad(f"tensor {name!r}: shape {shape} in {dtype} needs {math.prod(shape) * DTYPES[dtype][0]:,} "
                      f"bytes, its offsets give {offsets[1] - offsets[0]:,}")
        tensors[name] = (dtype, tuple(shape))
        spans.append((offsets[0], offsets[1], name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise bad(f"tensor {name!r} starts at byte {begin:,}, expected {position:,} (overlapping or gapped data)")
        position = end
    if position != data_size:
        raise bad(f"the tensors cover {position:,} of the {data_size:,} data bytes")
    return metadata, tensors


def read_card(model_file: str | Path) -> dict[str, Any]:
    """The card of a ``model.safetensors`` (from its metadata, else its checkpoint's meta.json); {} without one."""
    model_file = Path(model_file)
    try:
        card = parse_card(read_safetensors_header(model_file)[0].get(METADATA_KEY))  # upgraded by parse_card
    except StylekitError:  # not a valid safetensors file: load_model says so
        card = {}
    if card:
        return card
    try:
        card = json.loads((model_file.parent / META_FILE).read_text()).get("card") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return upgrade_card(card) if isinstance(card, dict) else {}


def _model_options(file: Path, metadata: dict[str, str]) -> tuple[type[TransformerNetwork], ComponentOptions]:
    """(network class, its validated options) from a model file's metadata; a file without ``model_name``
    (written before networks were plugins) holds Johnson's network."""
    if metadata.get("format") != "stylekit.transformer":
        raise CheckpointError(f"{file} is not a stylekit transformer checkpoint (its metadata has format="
                              f"{metadata.get('format')!r:.60}); give a model.safetensors written by stylekit")
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError:
        raise CheckpointError(f"{file}: format_version {metadata.get('format_version')!r:.40} is not a number; "
                              "the file is corrupt") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{file} has checkpoint format {version}; this stylekit reads up to {FORMAT_VERSION}. "
                              "Upgrade stylekit.")
    if "model_options" not in metadata:
        raise CheckpointError(f"{file}: its metadata has no model_options; the file is corrupt")
    cls = model_class(metadata.get("model_name", DEFAULT_MODEL), file)
    try:
        options = cls.Options.model_validate_json(metadata["model_options"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'model_options'}: {e['msg']}" for e in exc.errors())
        raise CheckpointError(f"{file}: invalid model_options in its metadata ({problems[:300]})") from None
    if problem := model_size_problem(options, cls):
        raise CheckpointError(f"{file}: model_options {problem}; the file is corrupt or crafted")
    return cls, options


def model_class(name: str, file: Path | None = None) -> type[TransformerNetwork]:
    """The registered network class ``name`` (the built-ins and installed plugins)."""
    from .plugins import get_registry

    registry = get_registry()
    if name not in registry.names("model"):
        where = f"{file} holds" if file is not None else "the recipe names"
        raise CheckpointError(f"{where} a {name!r} network, which no installed plugin registers (known networks: "
                              f"{', '.join(registry.names('model'))}); install the package that provides it")
    return registry.get("model", name)


def model_size_problem(options: ComponentOptions, cls: type[TransformerNetwork] = TransformerNet) -> str | None:
    """Why ``options`` describe an absurdly large ``cls`` network (checked before anything is built), or None."""
    return cls.size_problem(options)


def expected_tensors(options: ComponentOptions, cls: type[TransformerNetwork] = TransformerNet
                     ) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{name: (shape, is floating point)} of the ``cls`` network ``options`` describe, built without allocating."""
    with torch.device("meta"):
        net = cls(options)
    return _tensors_of(net)


def _tensors_of(net: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], bool]]:
    return {k: (tuple(v.shape), v.is_floating_point()) for k, v in net.state_dict().items()}


def check_model_file(file: Path, network: TransformerNetwork | None = None
                     ) -> tuple[type[TransformerNetwork], ComponentOptions]:
    """Validate ``file`` (header, then names and shapes against ``network`` or its own ``model_name`` and
    ``model_options``); returns (network class, options) as the file describes them."""
    metadata, tensors = read_safetensors_header(file)
    cls, options = _model_options(file, metadata)
    if network is not None and type(network).name != cls.name:
        raise CheckpointError(f"{file} holds a {cls.name!r} network, not the {type(network).name!r} one expected; "
                              "use the checkpoint that belongs to this recipe")
    expected = _tensors_of(network) if network is not None else expected_tensors(options, cls)
    described = network.options if network is not None else options
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = [f"{k} is {list(tensors[k][1])}, expected {list(expected[k][0])}" for k in sorted(expected)
             if k in tensors and tensors[k][1] != expected[k][0]]
    kinds = [f"{k} is {tensors[k][0]}" for k in sorted(expected)
             if k in tensors and DTYPES[tensors[k][0]][1].is_floating_point != expected[k][1]]
    problems = ([f"missing {', '.join(missing[:3])}" + (" …" if len(missing) > 3 else "")] if missing else []) + \
               ([f"unexpected {', '.join(extra[:3])}" + (" …" if len(extra) > 3 else "")] if extra else []) + \
               wrong[:3] + kinds[:3]
    if problems:
        raise CheckpointError(f"{file} does not hold the network its options describe ({described.model_dump()}): "
                              f"{'; '.join(problems)}. Use the checkpoint that belongs to these options.")
    return cls, options


def read_model_state(file: Path, network: TransformerNetwork | None = None,
                     device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The validated state dict of ``file`` (for ``network`` when given: resuming checks against the recipe's)."""
    check_model_file(file, network)
    try:
        state = load_file(str(file), device=str(device))
    except Exception as exc:  # safetensors' own checks, I/O errors while reading the data
        raise CheckpointError(f"{file} cannot be loaded: {exc}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{file} has NaN or infinite values in {', '.join(bad[:3])}; it is corrupt. Use an "
                              "earlier checkpoint.")
    return state


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> TransformerNetwork:
    """Load a transformer network (any registered kind) from safetensors (no pickle), validated before anything
    is allocated."""
    file = find_model_file(path)
    cls, options = check_model_file(file)
    state = read_model_state(file, None, map_location)
    model = cls(options)
    # Format migrations go here (version < FORMAT_VERSION), e.g. dropping legacy norm statistics.
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_train_state(checkpoint_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``train_state.pt`` (tensors and plain data only: ``weights_only``) and ``meta.json``, checked."""
    checkpoint_dir = Path(checkpoint_dir)
    advice = (f"Delete {checkpoint_dir} to resume from the checkpoint before it (`latest` falls back to the newest "
              "complete one).")
    state_file, meta_file = checkpoint_dir / STATE_FILE, checkpoint_dir / META_FILE
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{state_file} is missing, so training cannot resume from it. {advice}") from None
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{state_file} was refused: it holds objects other than tensors and plain data "
                              f"({' '.join(str(exc).split())[:160]}), and stylekit never unpickles code from a "
                              f"file. {advice}") from None
    except Exception as exc:  # a truncated zip, a non-torch file…
        raise CheckpointError(f"{state_file} is corrupt ({type(exc).__name__}: {str(exc)[:120]}). {advice}") from None
    needed = {"step": int, "optimizer": dict, "scaler": dict, "torch_rng": torch.Tensor, "elapsed": (int, float),
              "skipped": list}
    problems = [key for key, kind in needed.items() if not isinstance(state, dict) or not isinstance(state.get(key), kind)]
    if problems:
        raise CheckpointError(f"{state_file} lacks valid {', '.join(problems)}; it was not written by this stylekit "
                              f"or is damaged. {advice}")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{meta_file} is missing. {advice}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{meta_file} is not valid JSON ({' '.join(str(exc).split())[:120]}); it is "
                              f"damaged. {advice}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_file} must hold a JSON object. {advice}")
    return state, meta
