"""Test-wide guards: no network, no entry points from the developer's environment, offline weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_WEIGHTS = SHARED / "weights"
SHARED_DATA = SHARED / "data"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs ../shared/ beside the repo ({SHARED}); "
                                  "present in CI, absent on a fresh clone")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def guard(*args, **kwargs):
        raise RuntimeError("tests must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """An empty torch hub cache, so tests see exactly the weights they set up."""
    import torch.hub

    hub = tmp_path_factory.mktemp("torch_hub")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.delenv("STYLEKIT_WEIGHTS_DIR", raising=False)


# Installed plugin packages (e.g. plugins/stylekit-intrinsic) must not change what the tests see;
# tests that exercise entry points pass entry_points=True explicitly.
os.environ["STYLEKIT_DISABLE_ENTRY_POINTS"] = "1"
