"""The whole rollout path on real parts: Docker, Harbor, claude-code, LiteLLM, the gateway and
vLLM CPU. Every trained id must be the sampled one (exactness 1.0), each recorded logprob must
equal the policy server's recomputation (fp32, |Δ| < 1e-4), and no container may be left.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from swerl.testing import docker_ready, free_ports, need

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow]


def test_rollout_on_the_real_stack(tmp_path: Path, runs_dir: Path) -> None:
    need(not docker_ready(), docker_ready())
    need((ROOT / ".venv-policy/bin/python").exists(), "no .venv-policy (run `make setup`)")
    need((ROOT / "models/tiny-qwen2/config.json").exists(), "no tiny model (run `make setup`)")
    proxy, gateway, policy = free_ports(3)
    config = {
        "run": {"name": "e2e", "output_dir": str(runs_dir)},
        "model": {"path": str(ROOT / "models/tiny-qwen2"), "dtype": "float32"},
        "rollout": {
            "max_prompt_length": 3072,
            "max_response_length": 512,
            "max_concurrent_samples": 2,
            "max_turns": 4,
        },
        "algorithm": {"train_batch_size": 2, "n_resp": 2},
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(ROOT / "tasks"), "include": ["fix-add", "fix-clamp"]},
        "scaffold": {
            "name": "claude-code",
            "options": {
                "max_output_tokens": 128,
                "tools": ["Bash"],
                "bare": True,
                "system_prompt": "",
            },
        },
        "sandbox": {"name": "docker"},
        "engine": {"name": "local", "options": {"enforce_eager": True}},
        "ports": {"proxy": proxy, "gateway": gateway, "policy": policy},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "LITELLM_MASTER_KEY": "sk-e2e-test-key-not-secret"}
    swerl = Path(sys.executable).parent / "swerl"
    out = subprocess.run(
        [str(swerl), "rollout", "--config", str(path), "--verify-logprobs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (run_dir,) = runs_dir.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["trials"] == 4
    assert summary["failures"] == {}, summary
    assert summary["exactness"] == 1.0
    assert summary["multi_turn_trials"] >= 1
    check = summary["logprob_check"]
    assert check["tokens"] == summary["tokens"]["sampled"] > 0
    assert check["max_abs_diff"] < 1e-4, check

    records = [json.loads(x) for x in (run_dir / "trajectories/rollout.jsonl").read_text().split()]
    assert {r["task"] for r in records} == {"fix-add", "fix-clamp"}
    for rec in records:
        assert len(rec["response_ids"]) == len(rec["loss_mask"]) == len(rec["logprobs"])
        assert rec["reward"] in (0.0, 1.0)
        assert rec["agent"]["result"] is not None  # claude-code reached its final event
    # Harbor's trial folders are kept; the sandboxes are not.
    assert len(list((run_dir / "trials").iterdir())) == 4
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=swerl.run={run_dir.name}"],
        capture_output=True,
        text=True,
    )
    assert left.stdout.strip() == ""
    # The master key never reaches the run's files.
    for f in run_dir.rglob("*"):
        if f.is_file() and f.stat().st_size < 5_000_000:
            assert "sk-e2e-test-key-not-secret" not in f.read_text(errors="replace"), f


def test_check_live_round_trip(tmp_path: Path, runs_dir: Path) -> None:
    need(not docker_ready(), docker_ready())
    need((ROOT / ".venv-policy/bin/python").exists(), "no .venv-policy (run `make setup`)")
    proxy, gateway, policy = free_ports(3)
    config = {
        "run": {"name": "live", "output_dir": str(runs_dir)},
        "model": {"path": str(ROOT / "models/tiny-qwen2"), "dtype": "float32"},
        "rollout": {"max_prompt_length": 1024, "max_response_length": 256},
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(ROOT / "tasks")},
        "engine": {"name": "local", "options": {"enforce_eager": True}},
        "ports": {"proxy": proxy, "gateway": gateway, "policy": policy},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    swerl = Path(sys.executable).parent / "swerl"
    out = subprocess.run(
        [str(swerl), "check", "--config", str(path), "--live", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    data = json.loads(out.stdout)
    (row,) = [c for c in data["checks"] if c["name"] == "live round trip"]
    assert row["status"] == "pass", row
    assert "sampled ids with logprobs, exactness 1.0" in row["detail"]
    # Everything it started is stopped again: nothing listens on its ports.
    for port in (proxy, gateway, policy):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
