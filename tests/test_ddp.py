"""Data-parallel training (torch.distributed, gloo, 2 CPU processes) equals one process with the combined batch."""

import json
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from stylekit.checkpoint import latest_checkpoint, load_train_state
from stylekit.config import validate_recipe
from stylekit.testing import tiny_recipe
from stylekit.trainer import Trainer


def _distributed_worker(rank: int, world_size: int, init_file: str, raw: dict, run_dir: str, resume: bool) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        Trainer(validate_recipe(raw), Path(run_dir), show_progress=False, resume=resume).fit()
    finally:
        dist.destroy_process_group()


def train_distributed(raw: dict, run_dir, world_size: int = 2, resume: bool = False) -> None:
    """Train ``raw`` with ``world_size`` CPU processes (gloo), as torchrun would."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_distributed_worker, args=(world_size, str(Path(tmp) / "init"), raw, str(run_dir), resume),
                 nprocs=world_size, join=True)


def _weights(run):
    return load_file(str(latest_checkpoint(run) / "model.safetensors"))


def _assert_close(a, b):
    """Weights equal within float tolerance, and so do the outputs.

    Conv biases directly followed by instance norm have an exactly-zero true gradient (the norm removes
    them), so Adam turns float noise in theirs into ±lr steps; they cannot change any output, so they are
    compared through the outputs only.
    """
    assert a.keys() == b.keys()
    for key in a:
        if key.endswith("weight"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=2e-4, msg=key)  # Adam: lr 1e-3 per step
    from stylekit.models.transformer import TransformerNet

    nets = []
    for state in (a, b):
        net = TransformerNet({"channels": 8, "residual_blocks": 1})
        net.load_state_dict(state)
        nets.append(net.eval())
    x = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        torch.testing.assert_close(nets[0](x), nets[1](x), rtol=0, atol=0.1)  # 0–255 scale


def test_two_processes_equal_one_with_double_batch_and_resume_changes_world_size(tmp_path):
    # instance norm (per image) and fp32: 2 × batch 2 must equal 1 × batch 4
    common = {"log": {"every": 2, "sample_every": 100, "checkpoint_every": 2}, "model": {"norm": "instance"}}
    single = tiny_recipe(tmp_path, schedule={"iterations": 4, "batch_size": 4}, **common)
    Trainer(validate_recipe(single), tmp_path / "single", show_progress=False).fit()

    # two processes for 2 steps, then resumed by one process (batch 4) for the last 2 steps
    train_distributed(tiny_recipe(tmp_path, schedule={"iterations": 2, "batch_size": 2}, **common),
                      tmp_path / "ddp", world_size=2)
    state, _ = load_train_state(latest_checkpoint(tmp_path / "ddp"))
    assert state["samples"] == 2 * 2 * 2 and state["world_size"] == 2
    single_2 = load_file(str(tmp_path / "single" / "checkpoints" / "step_0000002" / "model.safetensors"))
    _assert_close(_weights(tmp_path / "ddp"), single_2)
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2]  # rank 0 alone writes

    Trainer(validate_recipe(single), tmp_path / "ddp", resume=True, show_progress=False).fit()
    state, _ = load_train_state(latest_checkpoint(tmp_path / "ddp"))
    assert state["samples"] == 16 and state["step"] == 4
    _assert_close(_weights(tmp_path / "ddp"), _weights(tmp_path / "single"))
