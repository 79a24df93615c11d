"""Config loading: every error collected, with file, line, key path and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from swerl.config.load import ConfigError, load_config, parse_config
from swerl.plugins import PluginManager

BASE = """\
model:
  path: models/m
tasks:
  path: tasks
engine:
  name: local
"""


def _issues(text: str, pm: PluginManager, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="cfg.yaml", pm=pm, env=env or {})
    return err.value


def test_minimal_config_gets_defaults(pm: PluginManager) -> None:
    loaded = parse_config(BASE, pm=pm, env={})
    cfg = loaded.config
    assert cfg.scaffold.name == "claude-code" and cfg.sandbox.name == "docker"
    assert cfg.ports.proxy == 8002
    assert cfg.rollout.model_len == cfg.rollout.max_prompt_length + cfg.rollout.max_response_length
    # Component options are validated with their own models, defaults filled in.
    resolved = loaded.resolved()
    assert resolved["scaffold"]["options"]["version"] == "2.1.197"


def test_all_problems_reported_at_once_with_lines_and_hints(pm: PluginManager) -> None:
    text = BASE + (
        "rollout:\n"
        "  tensor_paralel_size: 2\n"  # line 8
        "  max_turns: zero\n"  # line 9
        "scaffold:\n"
        "  name: claud-code\n"  # line 11
        "filters: [trajectori]\n"  # line 12
    )
    err = _issues(text, pm)
    by_path = {i.path: i for i in err.issues}
    assert by_path["rollout.tensor_paralel_size"].line == 8
    assert "Did you mean 'tensor_parallel_size'" in by_path["rollout.tensor_paralel_size"].message
    assert by_path["rollout.max_turns"].line == 9
    assert "'zero'" in by_path["rollout.max_turns"].message
    assert "Did you mean 'claude-code'" in by_path["scaffold.name"].message
    assert by_path["scaffold.name"].line == 11
    assert "Did you mean 'trajectory'" in by_path["filters.0.name"].message
    rendered = str(err)
    assert "cfg.yaml:8: rollout.tensor_paralel_size: unknown key" in rendered
    assert "4 problem(s)" in rendered


def test_component_options_live_in_their_own_namespace(pm: PluginManager) -> None:
    text = BASE + "scaffold:\n  name: claude-code\n  options:\n    max_output_tokens: lots\n"
    err = _issues(text, pm)
    assert [i.path for i in err.issues] == ["scaffold.options.max_output_tokens"]
    assert err.issues[0].line == 10
    # The same key at the top level is unknown: namespaces do not merge.
    err = _issues(BASE + "max_output_tokens: 3\n", pm)
    assert err.issues[0].path == "max_output_tokens" and "unknown key" in err.issues[0].message


def test_required_sections(pm: PluginManager) -> None:
    err = _issues("engine: {name: local}\n", pm)
    assert {i.path for i in err.issues} == {"model", "tasks"}
    assert all("required" in i.message for i in err.issues)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_malformed_yaml(pm: PluginManager, text: str, message: str) -> None:
    err = _issues(text, pm)
    assert message in err.issues[0].message
    assert err.issues[0].line is not None


def test_env_overrides_batch_knobs(pm: PluginManager) -> None:
    loaded = parse_config(BASE, pm=pm, env={"TRAIN_BSZ": "16", "N_RESP": "8"})
    assert loaded.config.algorithm.train_batch_size == 16
    assert loaded.config.algorithm.n_resp == 8
    err = _issues(BASE, pm, env={"TRAIN_BSZ": "eight"})
    assert "env TRAIN_BSZ='eight' is not an integer" in str(err)
    err = _issues(BASE, pm, env={"N_RESP": "0"})
    assert err.issues[0].path == "algorithm.n_resp"


def test_cross_field_rules(pm: PluginManager) -> None:
    err = _issues(
        BASE + "algorithm: {train_batch_size: 4, ppo_mini_batch_size: 8}\n"
        "ports: {proxy: 9000, gateway: 9000}\n",
        pm,
    )
    text = str(err)
    assert "algorithm: ppo_mini_batch_size (8) is larger than train_batch_size (4)" in text
    assert "ports: ports must differ" in text
    # Whole-config rules run once the sections are valid.
    err = _issues(BASE + "filters: [trajectory, trajectory]\n", pm)
    assert "filters listed more than once: trajectory" in str(err)


def test_filters_short_and_long_form(pm: PluginManager) -> None:
    loaded = parse_config(
        BASE + "filters:\n  - trajectory\n  - name: is-token\n    options: {}\n", pm=pm, env={}
    )
    assert [f.name for f in loaded.config.filters] == ["trajectory", "is-token"]
    assert set(loaded.options) == {"scaffold", "sandbox", "engine", "filters.0", "filters.1"}


def test_missing_file_and_folder(tmp_path: Path, pm: PluginManager) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", pm=pm)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path, pm=pm)
