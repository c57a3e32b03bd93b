"""Checkpoints: transformer weights in safetensors, plus what resuming needs.

Layout of ``RUN/checkpoints/step_0000500/``::

    model.safetensors   weights; metadata holds the format version and model options,
                        so this one file is enough to stylise
    meta.json           step, recipe (resolved), the metrics at that step and the model card
                        (stylekit.card; also in the safetensors metadata, so the model file carries it)
    train_state.pt      optimizer, RNG and loop state; loaded with ``weights_only=True``

Each checkpoint is written to a temporary folder and renamed into place, and
``RUN/checkpoints/latest`` is replaced atomically afterwards, so an interruption
never leaves a half-written checkpoint behind. Nothing here unpickles code. Where
checkpoints live in a run folder (and which is the latest) is :class:`~stylekit.runs.RunDir`'s.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from .card import card_metadata
from .errors import StylekitError
from .models.transformer import TransformerNet, TransformerOptions
from .runs import META_FILE, MODEL_FILE, STATE_FILE, RunDir, atomic_write_text  # noqa: F401 (re-exported)

FORMAT_VERSION = 1


def save_model(model: TransformerNet, path: Path, extra_metadata: dict[str, str] | None = None) -> None:
    metadata = {"format": "stylekit.transformer", "format_version": str(FORMAT_VERSION),
                "model_options": model.options.model_dump_json(), **(extra_metadata or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def save_checkpoint(run_dir: Path, step: int, model: TransformerNet, train_state: dict[str, Any],
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
    raise StylekitError(f"no checkpoint at {path}: give a run folder, a checkpoint folder or a {MODEL_FILE} file")


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> TransformerNet:
    """Load a transformer from safetensors (no pickle), migrating older format versions."""
    file = find_model_file(path)
    with safe_open(str(file), framework="pt") as fh:
        metadata = fh.metadata() or {}
    if metadata.get("format") != "stylekit.transformer":
        raise StylekitError(f"{file} is not a stylekit transformer checkpoint (metadata: {metadata})")
    version = int(metadata.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise StylekitError(f"{file} has checkpoint format {version}; this stylekit reads up to {FORMAT_VERSION}. "
                            "Upgrade stylekit.")
    options = TransformerOptions.model_validate_json(metadata["model_options"])
    model = TransformerNet(options)
    state = load_file(str(file), device=str(map_location))
    # Format migrations go here (version < FORMAT_VERSION), e.g. dropping legacy norm statistics.
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_train_state(checkpoint_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    state = torch.load(Path(checkpoint_dir) / STATE_FILE, map_location="cpu", weights_only=True)
    meta = json.loads((Path(checkpoint_dir) / META_FILE).read_text())
    return state, meta
