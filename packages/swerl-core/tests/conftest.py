from __future__ import annotations

import pytest

from swerl.plugins import PluginManager


@pytest.fixture
def pm() -> PluginManager:
    """A fresh plugin manager over the installed entry points (no process-wide state)."""
    return PluginManager(env={}).load()
