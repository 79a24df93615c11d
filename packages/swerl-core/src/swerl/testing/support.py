"""Stand-ins named ``stub`` for every component kind, a minimal config, and small test helpers
(``need``, ``docker_ready``, ``free_ports``). Import them from :mod:`swerl.testing`."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from swerl import hookimpl
from swerl.components import Component, Engine, Register, RewardFilter, Sandbox, Scaffold
from swerl.plugins import PluginManager
from swerl.preflight.checks.host import free_ports  # noqa: F401 (tests import it from here)


class StubScaffold(Scaffold):
    name = "stub"
    summary = "stand-in scaffold for tests"


class StubSandbox(Sandbox):
    name = "stub"
    summary = "stand-in sandbox for tests"


class StubEngine(Engine):
    name = "stub"
    summary = "stand-in engine for tests"
    uses_gpus = False


class StubFilter(RewardFilter):
    name = "stub"
    summary = "stand-in reward filter for tests"


def Stubs() -> Any:
    """A plugin that registers one stand-in of each kind, all named ``stub``."""
    return as_plugin(StubScaffold, StubSandbox, StubEngine, StubFilter)


def config_yaml(**sections: Any) -> str:
    """A minimal run config selecting the stand-ins; keyword arguments replace sections."""
    data: dict[str, Any] = {
        "model": {"path": "models/tiny"},
        "tasks": {"path": "tasks"},
        "scaffold": {"name": "stub"},
        "sandbox": {"name": "stub"},
        "engine": {"name": "stub"},
    }
    data.update(sections)
    return yaml.safe_dump(data, sort_keys=False)


def plugin_manager(plugin: str) -> PluginManager:
    """A plugin manager with only entry point ``plugin`` loaded, plus the stand-ins (``stub``)
    and the fakes (``fake``) of every component kind."""
    from swerl.testing.fakes import Fakes

    manager = PluginManager(env={"SWERL_LOAD_PLUGINS": plugin})
    manager.register_plugin(Stubs(), "stubs")
    manager.register_plugin(Fakes(), "fakes")
    return manager


def as_plugin(*components: type[Component]) -> Any:
    """A plugin object whose registration hooks register ``components`` (inline plugins)."""
    from types import SimpleNamespace

    from swerl.plugins import REGISTER_HOOKS

    plugin = SimpleNamespace()
    for kind, hook in REGISTER_HOOKS.items():
        classes = tuple(c for c in components if c.kind == kind)
        if not classes:
            continue

        def impl(register: Register, classes: tuple[type[Component], ...] = classes) -> None:
            for cls in classes:
                register(cls)

        impl.__name__ = hook
        setattr(plugin, hook, hookimpl(impl))
    unknown = [c for c in components if c.kind not in REGISTER_HOOKS]
    if unknown:
        raise TypeError(f"not components of a known kind: {unknown}")
    return plugin


def need(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``ok``; under ``SWERL_REQUIRE_SETUP=1`` (CI, after a full
    `make setup`) fail instead, so that a broken setup cannot pass as skipped tests."""
    import os

    if ok:
        return
    if os.environ.get("SWERL_REQUIRE_SETUP") == "1":
        pytest.fail(f"{reason} (SWERL_REQUIRE_SETUP=1: setup must be complete here)")
    pytest.skip(reason)


def docker_ready(image: str = "swerl-base:latest") -> str:
    """Empty when a Docker engine answers and has ``image``, else why not."""
    import shutil
    import subprocess

    if shutil.which("docker") is None:
        return "no docker CLI"
    try:
        res = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "docker did not answer in 10 s"
    return "" if res.returncode == 0 else f"no docker engine with {image} (run `make setup`)"
