"""The plugin manager: discovery, allow/deny lists, broken plugins, duplicates, isolation."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from swerl import hookimpl
from swerl.components import Engine, Scaffold
from swerl.config.load import ConfigError, parse_config
from swerl.errors import NotYetAvailable, UserError
from swerl.plugins import PluginManager
from swerl.preflight import run_preflight

BUILTIN = {
    "scaffold": {"claude-code", "ohsdk"},
    "sandbox": {"docker", "k8s"},
    "engine": {"fsdp", "veomni", "local"},
    "filter": {"trajectory", "is-token"},
}

MINIMAL = """
model: {path: m}
tasks: {path: t}
scaffold: {name: SCAFFOLD}
engine: {name: local}
"""


def test_every_builtin_component_loads_through_entry_points(pm: PluginManager) -> None:
    for kind, names in BUILTIN.items():
        assert names <= set(pm.registry(kind)), kind
    infos = {i.name: i for i in pm.infos()}
    assert infos["docker"].dist == "swerl-sandbox-docker"
    assert infos["docker"].version == "0.1.0"
    assert "swerl_register_sandboxes" in infos["docker"].hooks
    assert infos["core"].hooks == ["swerl_preflight_checks"]
    assert infos["claude-code"].components == ["scaffold:claude-code"]
    assert all(i.status == "loaded" for i in infos.values())


def test_load_allowlist_and_denylist() -> None:
    only = PluginManager(env={"SWERL_LOAD_PLUGINS": "core, docker"}).load()
    statuses = {i.name: i.status for i in only.infos()}
    assert statuses["docker"] == "loaded" and statuses["core"] == "loaded"
    assert statuses["fsdp"] == "disabled"
    assert set(only.registry("engine")) == set()

    deny = PluginManager(env={"SWERL_DISABLE_PLUGINS": "ohsdk"}).load()
    assert "ohsdk" not in deny.registry("scaffold")
    assert "claude-code" in deny.registry("scaffold")
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL.replace("SCAFFOLD", "ohsdk"), pm=deny, env={})
    assert "swerl-scaffold-ohsdk" in str(err.value)
    assert "disabled" in str(err.value)


def _fake_dist(root: Path, dist: str, ep_name: str, module: str, code: str) -> None:
    """A tiny installed distribution on sys.path with one `swerl` entry point."""
    info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[swerl]\n{ep_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(code))


def test_plugin_that_fails_to_import_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_dist(tmp_path, "swerl-scaffold-ghost", "ghost", "ghost_plugin", "import no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="swerl.plugins"):
        pm = PluginManager(env={}).load()
    ghost = {i.name: i for i in pm.infos()}["ghost"]
    assert ghost.status == "failed"
    assert "no_such_module" in ghost.error
    assert "swerl-scaffold-ghost" in caplog.text and "skipped" in caplog.text
    # Everyone else still works.
    assert "claude-code" in pm.registry("scaffold")
    # Selecting its component is a hard error that says why.
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL.replace("SCAFFOLD", "ghost"), pm=pm, env={})
    text = str(err.value)
    assert "scaffold.name" in text and "ghost" in text and "no_such_module" in text


def test_misspelled_hook_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dist(
        tmp_path,
        "swerl-typo",
        "typo",
        "typo_plugin",
        """
        from swerl import hookimpl

        @hookimpl
        def swerl_register_scafolds(register):
            pass
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = PluginManager(env={}).load()
    typo = {i.name: i for i in pm.infos()}["typo"]
    assert typo.status == "failed"
    assert "swerl_register_scafolds" in typo.error


class _Dup(Scaffold):
    name = "claude-code"
    summary = "a second claude-code"


class _DupPlugin:
    @hookimpl
    def swerl_register_scaffolds(self, register):
        register(_Dup)


def test_duplicate_names_are_rejected_naming_both_distributions(pm: PluginManager) -> None:
    pm.register_plugin(_DupPlugin(), name="dup", dist="my-dup-dist")
    with pytest.raises(UserError) as err:
        pm.registry("scaffold")
    assert "swerl-scaffold-claude-code" in str(err.value)
    assert "my-dup-dist" in str(err.value)


class _WrongKind:
    @hookimpl
    def swerl_register_engines(self, register):
        register(_Dup)  # a Scaffold registered as an engine


def test_registering_the_wrong_kind_is_an_error(pm: PluginManager) -> None:
    pm.register_plugin(_WrongKind(), name="wrong")
    with pytest.raises(UserError, match="must subclass Engine"):
        pm.registry("engine")


class _Fine(Engine):
    name = "fine"


class _Buggy:
    @hookimpl
    def swerl_register_engines(self, register):
        register(_Fine)
        raise RuntimeError("boom")


def test_a_buggy_register_hook_loses_only_its_own_components(pm: PluginManager) -> None:
    pm.register_plugin(_Buggy(), name="buggy")
    engines = pm.registry("engine")
    assert "fine" not in engines
    assert {"fsdp", "local", "veomni"} <= set(engines)
    buggy = {i.name: i for i in pm.infos()}["buggy"]
    assert buggy.status == "failed" and "boom" in buggy.error


class _CrashingChecks:
    @hookimpl
    def swerl_preflight_checks(self, config, report):
        raise KeyError("oops")


def test_crashing_checks_become_a_failed_row(pm: PluginManager, tmp_path: Path) -> None:
    pm.register_plugin(_CrashingChecks(), name="crashy")
    loaded = parse_config(MINIMAL.replace("SCAFFOLD", "claude-code"), pm=pm, env={})
    report = run_preflight(loaded, pm)
    rows = report.by_name("crashy checks")
    assert len(rows) == 1 and rows[0].status == "fail" and "oops" in rows[0].detail
    assert report.failed
    # Other plugins' checks still ran.
    assert any(c.source == "core" for c in report.checks)


class _Inline:
    @hookimpl
    def swerl_register_engines(self, register):
        register(_Fine)


def test_inline_plugin_register_and_unregister(pm: PluginManager) -> None:
    pm.register_plugin(_Inline(), name="inline")
    assert pm.registry("engine")["fine"].dist == "<inline>"
    pm.unregister_plugin("inline")
    assert "fine" not in pm.registry("engine")


def test_not_yet_available_component_says_what_is_missing(pm: PluginManager) -> None:
    pm.get("scaffold", "claude-code").cls.require("run")  # runs today
    pm.get("filter", "trajectory").cls.require("apply")  # applies today
    pm.get("engine", "fsdp").cls.require("train")  # trained on an H100 (#6)
    pm.get("engine", "veomni").cls.require("train")  # trained on an H100 too
    sandbox = pm.get("sandbox", "k8s").cls
    with pytest.raises(NotYetAvailable) as err:
        sandbox.require("run")
    assert "k8s" in str(err.value) and "Kubernetes is not built yet" in str(err.value)


def test_unknown_name_suggests_the_closest(pm: PluginManager) -> None:
    with pytest.raises(UserError, match="Did you mean 'docker'"):
        pm.get("sandbox", "dokcer")


def test_plugin_modules_from_the_environment_load_module_or_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SWERL_PLUGIN_MODULES: a module whose hooks are module-level, and module:attr (called
    when callable), loaded after the entry points; a bad entry fails with a fix, the rest load."""
    (tmp_path / "extra_engine.py").write_text(
        "from swerl import hookimpl\n"
        "from swerl.components import Engine\n"
        "class Extra(Engine):\n"
        "    name = 'extra'\n"
        "    summary = 'from SWERL_PLUGIN_MODULES'\n"
        "@hookimpl\n"
        "def swerl_register_engines(register):\n"
        "    register(Extra)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    env = {
        "SWERL_LOAD_PLUGINS": "core",
        "SWERL_PLUGIN_MODULES": "extra_engine, swerl.testing.fakes:Fakes, no_such_module_x",
    }
    pm = PluginManager(env=env).load()
    assert pm.registry("engine")["extra"].dist == "<SWERL_PLUGIN_MODULES>"
    assert pm.registry("sandbox")["fake"].plugin == "swerl.testing.fakes:Fakes"
    infos = {i.name: i for i in pm.infos()}
    bad = infos["no_such_module_x"]
    assert bad.status == "failed" and "No module named 'no_such_module_x'" in bad.error
    assert "SWERL_PLUGIN_MODULES" in bad.hint
    assert "fake" not in PluginManager(env={"SWERL_LOAD_PLUGINS": "core"}).registry("sandbox")
