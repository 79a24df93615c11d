"""claude-code options and preflight checks, through the real plugin manager and preflight."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from swerl.config.load import ConfigError
from swerl.preflight import Status
from swerl_scaffold_claude_code import checks
from swerl_scaffold_claude_code.scaffold import PINNED_VERSION, ClaudeCodeOptions


def tool(bin_dir: Path, name: str, body: str) -> None:
    """A fake executable on the test PATH."""
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PATH: each test puts the executables it wants there."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


def rows(report, name):
    return [(c.status, c.detail, c.fix) for c in report.checks if c.name == name]


def cc(**options):
    return {"name": "claude-code", "options": options}


# --- options ------------------------------------------------------------------------------------


def test_bad_options_name_their_key_path(load, cfg):
    text = cfg(scaffold=cc(version="latest", max_output_tokens=0, tool=["Bash"]))
    with pytest.raises(ConfigError) as info:
        load(text)
    issues = {i.path: i for i in info.value.issues}
    assert set(issues) == {
        "scaffold.options.version",
        "scaffold.options.max_output_tokens",
        "scaffold.options.tool",
    }
    assert "not an exact semver" in issues["scaffold.options.version"].message
    assert "Did you mean 'tools'?" in issues["scaffold.options.tool"].message
    assert issues["scaffold.options.version"].line is not None
    assert "run.yaml:" in str(info.value)


@pytest.mark.parametrize("version", ["2.1.197", "10.0.0", "2.2.0-beta.1", "1.0.0+build.5"])
def test_exact_semver_versions_are_accepted(version):
    assert ClaudeCodeOptions(version=version).version == version


@pytest.mark.parametrize("version", ["latest", "2.1", "v2.1.197", "02.1.0", "^2.1.197", ""])
def test_ranges_tags_and_partial_versions_are_refused(version):
    with pytest.raises(ValueError, match="not an exact semver"):
        ClaudeCodeOptions(version=version)


def test_defaults_resolve_through_the_loaded_config(load, cfg):
    loaded = load(cfg(scaffold=cc()))
    opts = loaded.options["scaffold"]
    assert isinstance(opts, ClaudeCodeOptions)
    assert opts.version == PINNED_VERSION
    assert loaded.resolved()["scaffold"]["options"]["tools"] == ["Bash", "Read", "Edit", "Write"]


def test_agent_spec_points_claude_code_at_the_proxy_for_one_trial(pm, load, cfg):
    from swerl.components import TrialInfo

    config = load(
        cfg(scaffold={"name": "claude-code", "options": {"tools": ["Bash"], "bare": True}})
    )
    cls = pm.get("scaffold", "claude-code").cls
    scaffold = cls(config.options["scaffold"])
    trial = TrialInfo("run1", "t-7", "http://127.0.0.1:8002", "k-run", "policy", max_turns=6)
    spec = scaffold.agent(config.config, trial)
    assert spec.import_path == "swerl_scaffold_claude_code.harbor_agent:SwerlClaudeCode"
    assert spec.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:8002"
    assert spec.env["ANTHROPIC_CUSTOM_HEADERS"] == "X-Swerl-Trial: t-7"
    assert spec.env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "8192"
    assert spec.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert {spec.env[f"ANTHROPIC_DEFAULT_{m}_MODEL"] for m in ("OPUS", "SONNET", "HAIKU")} == {
        "policy"
    }
    args = spec.kwargs["claude_args"]
    assert args[args.index("--tools") + 1] == "Bash"
    assert args[args.index("--max-turns") + 1] == "6"
    assert "--bare" in args
    # One session id per trial, stable for the same trial.
    again = scaffold.agent(config.config, trial).kwargs["claude_args"]
    assert again[again.index("--session-id") + 1] == args[args.index("--session-id") + 1]
    other = scaffold.agent(config.config, TrialInfo("run1", "t-8", "u", "k", "policy", 6))
    other_args = other.kwargs["claude_args"]
    assert other_args[other_args.index("--session-id") + 1] != args[args.index("--session-id") + 1]
    assert "k-run" not in repr(spec)  # the key stays out of reprs and logs


def test_summarize_reads_the_final_result_event(tmp_path):
    from swerl_scaffold_claude_code.harbor_agent import summarize

    out = tmp_path / "claude-code.jsonl"
    out.write_text(
        '{"type":"system","subtype":"init"}\n'
        "not json\n"
        '{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":6,'
        '"usage":{"input_tokens":900,"output_tokens":40}}\n'
    )
    summary = summarize(out)
    assert summary["events"] == 2
    assert summary["result"]["subtype"] == "error_max_turns"
    assert summary["result"]["num_turns"] == 6
    assert summary["usage"]["output_tokens"] == 40
    assert summarize(tmp_path / "missing.jsonl") == {"events": 0, "result": None}


# --- preflight ----------------------------------------------------------------------------------


def test_checks_only_run_when_claude_code_is_selected(check, cfg, bin_dir):
    report = check(cfg())
    assert [c for c in report.checks if c.source == "claude-code"] == []


def test_all_good(check, cfg, bin_dir):
    tool(bin_dir, "node", "echo v20.20.2")
    tool(bin_dir, "npm", "echo 10.8.2")
    tool(bin_dir, "claude", f"echo '{PINNED_VERSION} (Claude Code)'")
    report = check(cfg(scaffold=cc(tools=["Bash", "Grep"], max_output_tokens=512)))
    mine = [c for c in report.checks if c.source == "claude-code"]
    assert mine, "the plugin's checks did not run"
    assert {c.status for c in mine} == {Status.PASS}, [(c.name, c.detail) for c in mine]
    assert rows(report, "node")[0][1].startswith("node v20.20.2")
    assert "matches the pin" in rows(report, "claude on PATH")[0][1]


def test_missing_node_and_npm_warn_with_the_install_line(check, cfg, bin_dir):
    report = check(cfg(scaffold=cc()))
    ((status, detail, fix),) = rows(report, "node")
    assert status is Status.WARN
    assert "not on PATH" in detail and f"@anthropic-ai/claude-code@{PINNED_VERSION}" in detail
    assert "apt-get install nodejs npm" in fix
    assert rows(report, "npm")[0][0] is Status.WARN
    # No claude on PATH is fine: the sandbox image carries it.
    assert rows(report, "claude on PATH")[0][0] is Status.SKIP
    assert not report.failed


def test_old_node_warns(check, cfg, bin_dir):
    tool(bin_dir, "node", "echo v16.20.0")
    tool(bin_dir, "npm", "echo 8.0.0")
    ((status, detail, fix),) = rows(check(cfg(scaffold=cc())), "node")
    assert status is Status.WARN
    assert "v16.20.0 is older than 18" in detail
    assert "Node.js ≥ 18" in fix


def test_installed_claude_of_another_version_warns(check, cfg, bin_dir):
    tool(bin_dir, "claude", "echo '2.1.100 (Claude Code)'")
    ((status, detail, fix),) = rows(check(cfg(scaffold=cc())), "claude on PATH")
    assert status is Status.WARN
    assert "claude 2.1.100" in detail and f"the pin is {PINNED_VERSION}" in detail
    assert fix == f"npm install -g @anthropic-ai/claude-code@{PINNED_VERSION}"


def test_a_hanging_claude_times_out_instead_of_blocking(check, cfg, bin_dir, monkeypatch):
    monkeypatch.setattr(checks, "TIMEOUT_S", 0.3)
    # The child keeps the pipes open: the whole process group must be ended.
    tool(bin_dir, "claude", "/bin/sleep 30 & wait")
    ((status, detail, _),) = rows(check(cfg(scaffold=cc())), "claude on PATH")
    assert status is Status.WARN
    assert "timed out after 0.3 s" in detail


def test_max_output_tokens_above_the_response_length_warns(check, cfg, bin_dir):
    text = cfg(scaffold=cc(max_output_tokens=8192), rollout={"max_response_length": 4096})
    ((status, detail, fix),) = rows(check(text), "claude-code max_output_tokens")
    assert status is Status.WARN
    assert "8192" in detail and "4096" in detail
    assert fix == "set scaffold.options.max_output_tokens to at most 4096"
    text = cfg(scaffold=cc(max_output_tokens=4096), rollout={"max_response_length": 4096})
    assert rows(check(text), "claude-code max_output_tokens")[0][0] is Status.PASS


def test_unknown_tool_names_warn_with_did_you_mean(check, cfg, bin_dir):
    report = check(cfg(scaffold=cc(tools=["Bash", "Raed", "WebFetch", "mcp__repo__search"])))
    found = rows(report, "claude-code tools")
    assert [s for s, _, _ in found] == [Status.WARN, Status.WARN]
    assert "'Raed' is not a claude-code tool" in found[0][1]
    assert "Did you mean 'Read'?" in found[0][1]
    assert "WebFetch need the internet" in found[1][1]


def test_no_tools_warns(check, cfg, bin_dir):
    ((status, detail, _),) = rows(check(cfg(scaffold=cc(tools=[]))), "claude-code tools")
    assert status is Status.WARN
    assert "neither run commands nor edit files" in detail


def test_another_pin_than_the_tested_one_warns(check, cfg, bin_dir):
    ((status, detail, fix),) = rows(
        check(cfg(scaffold=cc(version="2.1.300"))), "claude-code version"
    )
    assert status is Status.WARN
    assert "2.1.300 is not the tested pin" in detail
    assert PINNED_VERSION in fix


def test_a_claude_that_prints_no_version_warns(check, cfg, bin_dir):
    tool(bin_dir, "claude", "true")
    ((status, detail, _),) = rows(check(cfg(scaffold=cc())), "claude on PATH")
    assert status is Status.WARN
    assert "printed no version" in detail
