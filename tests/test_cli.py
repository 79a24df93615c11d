"""The `swerl` command as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def swerl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("swerl", path=str(Path(sys.executable).parent)) or "swerl"
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_help_lists_the_commands() -> None:
    out = swerl("--help")
    assert out.returncode == 0
    for command in ("check", "plan", "config", "plugins"):
        assert command in out.stdout


def test_plugins_json_lists_every_plugin_with_hooks() -> None:
    out = swerl("plugins", "--json")
    assert out.returncode == 0, out.stderr
    infos = {p["name"]: p for p in json.loads(out.stdout)}
    assert {
        "core",
        "claude-code",
        "ohsdk",
        "docker",
        "k8s",
        "fsdp",
        "veomni",
        "local",
        "trajectory",
        "is-token",
    } <= set(infos)
    assert infos["fsdp"]["dist"] == "swerl-engine-fsdp"
    assert "swerl_register_engines" in infos["fsdp"]["hooks"]
    assert infos["is-token"]["components"] == ["filter:is-token"]


def test_plugins_respects_the_denylist() -> None:
    out = swerl("plugins", "--json", env={"SWERL_DISABLE_PLUGINS": "k8s"})
    infos = {p["name"]: p for p in json.loads(out.stdout)}
    assert infos["k8s"]["status"] == "disabled"
    assert infos["docker"]["status"] == "loaded"


def test_config_show_prints_the_resolved_config() -> None:
    out = swerl(
        "config", "show", "--config", "configs/smoke_cpu.yaml", "--json", env={"TRAIN_BSZ": "3"}
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["algorithm"]["train_batch_size"] == 3  # env override applied
    assert data["scaffold"]["options"]["max_output_tokens"] == 512
    assert data["ports"]["proxy"] == 8002  # default filled in


@pytest.mark.parametrize("command", ["check", "plan", "config show"])
def test_bad_config_is_a_clear_error_without_traceback(tmp_path: Path, command: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {path: m}\ntasks: {path: t}\nrollout:\n  tensor_parallel: 2\n")
    out = swerl(*command.split(), "--config", str(bad))
    assert out.returncode == 2
    assert f"{bad}:4: rollout.tensor_parallel: unknown key" in out.stderr
    assert "Did you mean 'tensor_parallel_size'" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_check_flags_a_kv_head_mismatch_and_strict_exits_1(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps(
            {
                "num_attention_heads": 16,
                "num_key_value_heads": 2,
                "max_position_embeddings": 32768,
                "hidden_size": 1024,
            }
        )
    )
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"model: {{path: {model}}}\ntasks: {{path: {ROOT / 'tasks'}}}\n"
        "rollout: {tensor_parallel_size: 4, max_prompt_length: 1024, max_response_length: 512}\n"
        "engine: {name: local}\ntrainer: {n_gpus_per_node: 0}\n"
    )
    out = swerl("check", "--config", str(cfg), "--json")
    data = json.loads(out.stdout)
    rows = [c for c in data["checks"] if c["name"] == "tensor parallel"]
    assert rows and rows[0]["status"] in ("warn", "fail")
    assert "num_key_value_heads=2" in rows[0]["detail"]
    assert "rollout.tensor_parallel_size=4" in rows[0]["detail"]
    strict = swerl("check", "--config", str(cfg), "--json", "--strict")
    assert strict.returncode == 1


@pytest.mark.parametrize(("died", "code"), [([], 0), (["policy-server"], 1)])
def test_rollout_exits_1_after_its_summary_when_a_process_died(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, died: list[str], code: int
) -> None:
    from typer.testing import CliRunner

    import swerl.launch
    from swerl import cli

    summary = {
        "trials": 2,
        "samples": 2,
        "reward_mean": 0.5,
        "failures": {"policy_error": 1} if died else {},
        "multi_turn_trials": 1,
        "tokens": {},
        "exactness": 1.0,
        "stitch_breaks": 0,
        "seconds_per_phase": {},
        "died": died,
    }
    run = swerl.launch.RolloutRun("r", tmp_path, [], summary, died)
    monkeypatch.setattr(cli, "_load", lambda config: (None, None))
    monkeypatch.setattr(swerl.launch, "run_rollout", lambda *a, **k: run)
    out = CliRunner().invoke(cli.app, ["rollout", "--config", str(tmp_path / "c.yaml")])
    assert out.exit_code == code, out.output
    assert "trajectories:" in out.output  # the summary is printed either way
    assert ("policy-server died during the run" in out.output) == bool(died)
