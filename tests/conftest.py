"""Test-wide guards: no network, no entry points from the developer's environment, offline weights."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_WEIGHTS = SHARED / "weights"
SHARED_DATA = SHARED / "data"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs ../shared/ beside the repo ({SHARED}); "
                                  "present in CI, absent on a fresh clone")


def _is_loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) and address else None
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except (TypeError, ValueError):
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch, request):
    """Any attempt to open a network connection fails the test; a test marked ``loopback`` (a server it
    starts itself, e.g. the demo) may connect to 127.0.0.1/::1 and nowhere else."""
    loopback = request.node.get_closest_marker("loopback") is not None
    real_connect, real_create_connection = socket.socket.connect, socket.create_connection

    def connect(sock, address):
        if loopback and _is_loopback(address):
            return real_connect(sock, address)
        raise RuntimeError(f"tests must not touch the network (connect to {address!r})")

    def create_connection(address, *args, **kwargs):
        if loopback and _is_loopback(address):
            return real_create_connection(address, *args, **kwargs)
        raise RuntimeError(f"tests must not touch the network (connect to {address!r})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
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
