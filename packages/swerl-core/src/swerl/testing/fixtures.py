"""The pytest fixtures of swerl's plugin author's kit.

This module is a pytest plugin: swerl-core registers it under the ``pytest11`` entry point, so
its fixtures exist in every pytest run where swerl-core is installed. A plugin package's tests
only define which entry point they are about::

    @pytest.fixture
    def plugin_under_test() -> str:
        return "length"  # the entry-point name in the `swerl` group

Fixtures: ``pm`` (that plugin plus the ``stub`` and ``fake`` stand-ins), ``cfg`` (a minimal
config's text), ``load`` (validate one), ``check`` (``swerl check`` on one), ``rollout`` (one
rollout and training step through the fakes, see :func:`swerl.testing.run_rollout`),
``register_plugin`` (an inline plugin for one test), ``swerl_cli`` (the CLI, in-process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from swerl.components import Component
from swerl.config.load import LoadedConfig, parse_config
from swerl.plugins import PluginManager
from swerl.preflight import Report, run_preflight
from swerl.testing.harness import RolloutResult, run_rollout
from swerl.testing.support import as_plugin, config_yaml, plugin_manager


@pytest.fixture
def plugin_under_test() -> str:
    """Override in your conftest: the entry-point name of the plugin the tests are about."""
    raise pytest.UsageError("define a `plugin_under_test` fixture returning your entry point")


@pytest.fixture
def pm(plugin_under_test: str) -> PluginManager:
    """A plugin manager with only ``plugin_under_test`` loaded from its entry point, plus the
    stand-ins (``stub``) and fakes (``fake``) of every component kind."""
    return plugin_manager(plugin_under_test)


@pytest.fixture
def load(pm: PluginManager) -> Callable[[str], LoadedConfig]:
    """``load(text)``: validate config text with ``pm`` (raises ConfigError)."""
    return lambda text: parse_config(text, source="run.yaml", env={}, pm=pm)


@pytest.fixture
def check(pm: PluginManager, load: Callable[[str], LoadedConfig]) -> Callable[[str], Report]:
    """``check(text)``: ``swerl check`` on config text; returns the report."""
    return lambda text: run_preflight(load(text), pm)


@pytest.fixture
def cfg() -> Callable[..., str]:
    """``cfg(scaffold={...})``: config text with the given sections replaced."""
    return config_yaml


@pytest.fixture
def rollout(pm: PluginManager, tmp_path: Path) -> Callable[..., RolloutResult]:
    """``rollout(**kwargs)``: :func:`swerl.testing.run_rollout` with ``pm``, in a fresh folder
    under ``tmp_path`` each call (``pm=`` picks another manager)."""
    calls = 0

    def run(*, pm: PluginManager = pm, **kwargs: Any) -> RolloutResult:
        nonlocal calls
        calls += 1
        return run_rollout(pm, tmp_path / f"rollout-{calls}", **kwargs)

    return run


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., str]]:
    """``register_plugin(plugin_or_component_classes..., name=None, pm=None)``: register an
    inline plugin, for this test only (unregistered afterwards).

    Give an object or module with hook implementations, or component classes (a hook that
    registers each is made for them). The target is the process-wide plugin manager (what the
    CLI and ``swerl_cli`` use) unless ``pm`` is given. Returns the plugin's name.
    """
    from swerl.plugins import get_plugin_manager

    done: list[tuple[PluginManager, str]] = []

    def register(*plugin: Any, name: str | None = None, pm: PluginManager | None = None) -> str:
        if not plugin:
            raise TypeError("register_plugin needs a plugin object or component classes")
        components = all(isinstance(p, type) and issubclass(p, Component) for p in plugin)
        if len(plugin) > 1 and not components:
            raise TypeError("give one plugin object, or component classes only")
        obj = as_plugin(*plugin) if components else plugin[0]
        target = pm if pm is not None else get_plugin_manager()
        name = name or f"inline-{len(done)}-" + "-".join(
            getattr(p, "name", "") or getattr(p, "__name__", "plugin") for p in plugin
        )
        target.register_plugin(obj, name=name)
        done.append((target, name))
        return name

    yield register
    for target, name in reversed(done):
        target.unregister_plugin(name)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def swerl_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """``swerl_cli("check", "--config", path)``: the ``swerl`` command in this process (so an
    inline plugin is visible), with the exit code it would have; errors print as it prints
    them (exit 2)."""
    from typer.testing import CliRunner

    from swerl.cli import app
    from swerl.errors import UserError

    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str | Path, env: dict[str, str] | None = None) -> CliResult:
        result = CliRunner().invoke(app, [str(a) for a in args], env=env)
        stdout, stderr = result.stdout, result.stderr
        if isinstance(result.exception, UserError):
            return CliResult(2, stdout, stderr + f"error: {result.exception}\n")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(result.exit_code, stdout, stderr)

    return run
