"""`swerl plugins` as a user runs it: where each plugin comes from, its hooks, and for a plugin
that fails to load, the exception and how to fix it (fake installed distributions on
PYTHONPATH, the real console script in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SWERL = str(Path(sys.executable).parent / "swerl")

GOOD = """
from swerl import hookimpl
from swerl.components import RewardFilter

class Good(RewardFilter):
    name = "good"
    summary = "a filter that does nothing"

@hookimpl
def swerl_register_filters(register):
    register(Good)
"""


def fake_dist(root: Path, dist: str, entry_point: str, module: str, code: str | None) -> None:
    """An installed distribution (dist-info on sys.path) with one `swerl` entry point."""
    info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[swerl]\n{entry_point} = {module}\n")
    if code is not None:
        (root / f"{module.split(':')[0]}.py").write_text(textwrap.dedent(code))


def swerl_plugins(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}
    env["SWERL_LOAD_PLUGINS"] = "core,good,ghost,typo,nomod,noattr,twin"
    return subprocess.run(
        [SWERL, "plugins", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    fake_dist(tmp_path, "swerl-filter-good", "good", "good_plugin", GOOD)
    fake_dist(tmp_path, "swerl-filter-ghost", "ghost", "ghost_plugin", "import no_such_dep\n")
    typo = "from swerl import hookimpl\n@hookimpl\ndef swerl_register_filter(register): pass\n"
    fake_dist(tmp_path, "swerl-filter-typo", "typo", "typo_plugin", typo)
    fake_dist(tmp_path, "swerl-filter-nomod", "nomod", "nomod_plugin", None)
    fake_dist(tmp_path, "swerl-filter-noattr", "noattr", "noattr_plugin:plugin", "x = 1\n")
    fake_dist(tmp_path, "swerl-filter-twin", "good", "twin_plugin", GOOD)
    return tmp_path


def by_name(out: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """Plugins by entry-point name (a second entry point of a taken name: ``name (dist)``)."""
    infos: dict[str, dict[str, Any]] = {}
    for p in json.loads(out.stdout):
        infos[p["name"] if p["name"] not in infos else f"{p['name']} ({p['dist']})"] = p
    return infos


def test_a_loaded_plugin_says_where_it_comes_from_and_its_hooks(site: Path) -> None:
    out = swerl_plugins(site, "--json")
    good = by_name(out)["good"]
    assert good["status"] == "loaded"
    assert (good["dist"], good["version"]) == ("swerl-filter-good", "0.3")
    assert good["entry_point"] == "good = good_plugin"
    assert good["location"] == str(site / "good_plugin.py")
    assert good["hooks"] == ["swerl_register_filters"]
    assert good["components"] == ["filter:good"]
    core = by_name(out)["core"]
    assert core["origin"].startswith(("editable from", "installed from", "site-packages"))


def test_failed_plugins_say_why_and_how_to_fix_it(site: Path) -> None:
    out = swerl_plugins(site, "--json")
    assert out.returncode == 1, "a plugin failed to load: the command says so by its exit code"
    infos = by_name(out)

    ghost = infos["ghost"]  # a missing dependency
    assert ghost["status"] == "failed"
    assert "ModuleNotFoundError" in ghost["error"] and "no_such_dep" in ghost["error"]
    assert "pip install no_such_dep" in ghost["hint"]
    assert "pip install --force-reinstall swerl-filter-ghost" in ghost["hint"]

    nomod = infos["nomod"]  # the entry point names a module that is not there
    assert "nomod_plugin" in nomod["error"]
    assert "entry point `nomod = nomod_plugin`" in nomod["hint"]
    assert "[project.entry-points.swerl]" in nomod["hint"]

    noattr = infos["noattr"]  # module:attr with no such attribute
    assert "AttributeError" in noattr["error"]
    assert "noattr_plugin has no attribute 'plugin'" in noattr["hint"]

    typo = infos["typo"]  # a misspelled hook
    assert "swerl_register_filter" in typo["error"]
    assert "rename swerl_register_filter to swerl_register_filters" in typo["hint"]

    twin = infos["good (swerl-filter-twin)"]  # a second entry point of the same name
    assert twin["status"] == "failed" and "swerl-filter-good" in twin["error"]
    assert "uninstall one of swerl-filter-good and swerl-filter-twin" in twin["hint"]
    assert infos["good"]["dist"] == "swerl-filter-good"  # the first keeps the name


def test_the_table_shows_origin_hooks_errors_and_fixes(site: Path) -> None:
    out = swerl_plugins(site)
    assert out.returncode == 1
    text = out.stdout
    assert "good  swerl-filter-good 0.3  loaded" in text
    assert "entry point good = good_plugin" in text
    assert f"location    {site / 'good_plugin.py'}" in text
    assert "hooks       register_filters" in text
    assert "ghost  swerl-filter-ghost 0.3  failed" in text
    assert "error       failed to import ghost_plugin: ModuleNotFoundError" in text
    assert "fix         swerl-filter-ghost needs the module 'no_such_dep'" in text
    # The warning on stderr names the package and the fix as well.
    assert "swerl-filter-ghost" in out.stderr and "Fix:" in out.stderr


def test_disabled_plugins_say_how_to_enable_them(site: Path) -> None:
    shutil.rmtree(site / "swerl_filter_twin-0.3.dist-info")  # a taken name fails even disabled
    env = {**os.environ, "PYTHONPATH": str(site), "SWERL_DISABLE_PLUGINS": "good,ghost,typo"}
    env["SWERL_LOAD_PLUGINS"] = "core,good,ghost,typo"
    out = subprocess.run(
        [SWERL, "plugins", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr  # nothing failed: disabled is a choice
    good = by_name(out)["good"]
    assert good["status"] == "disabled"
    assert "remove 'good' from it" in good["hint"]
    nomod = by_name(out)["nomod"]
    assert nomod["hint"] == "not in SWERL_LOAD_PLUGINS; add 'nomod' to it to load it"


def test_selecting_a_broken_plugins_component_gives_the_fix(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from swerl.config.load import ConfigError, parse_config
    from swerl.plugins import PluginManager

    monkeypatch.syspath_prepend(str(site))
    pm = PluginManager(env={"SWERL_LOAD_PLUGINS": "ghost"}).load()
    text = "model: {path: m}\ntasks: {path: t}\nscaffold: {name: x}\nengine: {name: y}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text + "filters: [ghost]\n", pm=pm, env={})
    message = str(err.value)
    assert "Plugin 'ghost' (swerl-filter-ghost) was not loaded" in message
    assert "Fix: swerl-filter-ghost needs the module 'no_such_dep'" in message
