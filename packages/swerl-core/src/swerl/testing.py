"""Test helpers for plugin authors: test one plugin with stand-ins for every other component.

In a plugin package's ``tests/conftest.py``::

    import pytest
    from swerl.testing import check, cfg, load, pm  # noqa: F401  (fixtures)

    @pytest.fixture
    def plugin_under_test() -> str:
        return "my-plugin"  # the entry-point name in the `swerl` group

Then ``pm`` is a real plugin manager that loads only that entry point plus stand-ins named
``stub`` for each component kind, ``cfg(**sections)`` writes a minimal config (stand-ins
selected; keyword arguments replace whole sections), ``load(text)`` validates it, and
``check(text)`` runs ``swerl check`` on it and returns the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from swerl import hookimpl
from swerl.components import Engine, Register, RewardFilter, Sandbox, Scaffold
from swerl.config.load import LoadedConfig, parse_config
from swerl.plugins import PluginManager
from swerl.preflight import Report, run_preflight
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


class Stubs:
    """Registers one stand-in of each kind, all named ``stub``."""

    @hookimpl
    def swerl_register_scaffolds(self, register: Register) -> None:
        register(StubScaffold)

    @hookimpl
    def swerl_register_sandboxes(self, register: Register) -> None:
        register(StubSandbox)

    @hookimpl
    def swerl_register_engines(self, register: Register) -> None:
        register(StubEngine)

    @hookimpl
    def swerl_register_filters(self, register: Register) -> None:
        register(StubFilter)


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
    """A plugin manager with only entry point ``plugin`` loaded, plus the stand-ins."""
    manager = PluginManager(env={"SWERL_LOAD_PLUGINS": plugin})
    manager.register_plugin(Stubs(), "stubs")
    return manager


@pytest.fixture
def plugin_under_test() -> str:
    """Override in your conftest: the entry-point name of the plugin the tests are about."""
    raise pytest.UsageError("define a `plugin_under_test` fixture returning your entry point")


@pytest.fixture
def pm(plugin_under_test: str) -> PluginManager:
    return plugin_manager(plugin_under_test)


@pytest.fixture
def load(pm: PluginManager) -> Callable[[str], LoadedConfig]:
    return lambda text: parse_config(text, source="run.yaml", env={}, pm=pm)


@pytest.fixture
def check(pm: PluginManager, load: Callable[[str], LoadedConfig]) -> Callable[[str], Report]:
    return lambda text: run_preflight(load(text), pm)


@pytest.fixture
def cfg() -> Callable[..., str]:
    """``cfg(scaffold={...})``: config text with the given sections replaced."""
    return config_yaml


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
