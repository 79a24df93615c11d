"""A real plugin manager that loads only this package's entry point, plus stand-ins for the
other component kinds, so that a config can select the k8s sandbox and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from swerl import hookimpl
from swerl.components import Engine, Register, Sandbox, Scaffold
from swerl.config.load import LoadedConfig, parse_config
from swerl.plugins import PluginManager
from swerl.preflight import Report, run_preflight

PLUGIN = "k8s"


class StubScaffold(Scaffold):
    name = "stub"


class StubSandbox(Sandbox):
    name = "stub"


class StubEngine(Engine):
    name = "stub"
    uses_gpus = False


class Stubs:
    @hookimpl
    def swerl_register_scaffolds(self, register: Register) -> None:
        register(StubScaffold)

    @hookimpl
    def swerl_register_sandboxes(self, register: Register) -> None:
        register(StubSandbox)

    @hookimpl
    def swerl_register_engines(self, register: Register) -> None:
        register(StubEngine)


def config_yaml(**sections: Any) -> str:
    """A minimal run config with stand-in components; keyword arguments replace sections."""
    data: dict[str, Any] = {
        "model": {"path": "models/tiny"},
        "tasks": {"path": "tasks"},
        "scaffold": {"name": "stub"},
        "sandbox": {"name": "stub"},
        "engine": {"name": "stub"},
    }
    data.update(sections)
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def pm() -> PluginManager:
    manager = PluginManager(env={"SWERL_LOAD_PLUGINS": PLUGIN})
    manager.register_plugin(Stubs(), "stubs")
    return manager


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
