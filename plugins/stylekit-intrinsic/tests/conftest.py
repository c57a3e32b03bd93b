"""Offline: these tests use stylekit.testing's tiny random networks, never downloaded weights."""

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
