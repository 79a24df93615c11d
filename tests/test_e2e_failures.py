"""Failures on the real stack (issue #3 item 8): the policy server dies in the middle of a rollout.

Every trial must still be recorded with its cause, the trials after the kill must end quickly as
policy errors (claude-code's retries are bounded), no container may be left, and ``swerl
rollout`` must say with its exit status that a process of the stack died.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from swerl.testing import docker_ready, free_ports, need

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-e2e-failures-key-not-secret"
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow]


def lines(path: Path) -> list[str]:
    """The complete lines of a file being written (none if it does not exist yet)."""
    try:
        return path.read_text().split("\n")[:-1]
    except OSError:
        return []


def test_policy_server_killed_mid_rollout(tmp_path: Path, runs_dir: Path) -> None:
    need(not docker_ready(), docker_ready())
    need((ROOT / ".venv-policy/bin/python").exists(), "no .venv-policy (run `make setup`)")
    need((ROOT / "models/tiny-qwen2-sft/config.json").exists(), "no SFT model (`make setup`)")
    proxy, gateway, policy = free_ports(3)
    config = {
        "run": {"name": "e2e-fail", "output_dir": str(runs_dir)},
        "model": {"path": str(ROOT / "models/tiny-qwen2-sft"), "dtype": "float32"},
        "rollout": {
            "max_prompt_length": 3072,
            "max_response_length": 512,
            "max_concurrent_samples": 1,
            "max_turns": 6,
        },
        "algorithm": {"train_batch_size": 2, "n_resp": 3},
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(ROOT / "tasks"), "include": ["fix-add", "fix-clamp"]},
        "scaffold": {
            "name": "claude-code",
            "options": {
                "max_output_tokens": 512,
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
    swerl = Path(sys.executable).parent / "swerl"
    proc = subprocess.Popen(
        [str(swerl), "rollout", "--config", str(path)],
        cwd=ROOT,
        env={**os.environ, "LITELLM_MASTER_KEY": KEY, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Once the first trial is written, SIGKILL the policy server's process group.
        deadline = time.monotonic() + 900
        finished: list[str] = []
        while not finished:
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no trial was written in 15 min"
            time.sleep(0.2)
            done = list(runs_dir.glob("*/trajectories/rollout.jsonl"))
            finished = lines(done[0]) if done else []
        run_dir = done[0].parents[1]
        procs = json.loads((run_dir / "processes.json").read_text())
        (server,) = [p for p in procs if p["name"] == "policy-server"]
        os.killpg(server["pgid"], signal.SIGKILL)
        killed = time.monotonic()
        before_kill = {json.loads(x)["trial_id"] for x in finished}
        output, _ = proc.communicate(timeout=900)
        print(f"{time.monotonic() - killed:.0f} s from the kill to the end of the rollout")
    finally:
        if proc.poll() is None:  # Ctrl-C: the launcher stops its stack and removes containers
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    assert proc.returncode == 1, output[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["died"] == ["policy-server"], summary
    assert summary["trials"] == 6

    records = [json.loads(x) for x in lines(run_dir / "trajectories/rollout.jsonl")]
    assert len({r["trial_id"] for r in records}) == 6  # nothing lost
    assert {r["task"] for r in records} == {"fix-add", "fix-clamp"}
    before = [r for r in records if r["trial_id"] in before_kill]
    after = [r for r in records if r["trial_id"] not in before_kill]
    assert before and after
    for rec in before:
        assert rec["failure_cause"] is None, rec["failure_detail"]
    for rec in after:
        assert rec["failure_cause"] == "policy_error", (rec["failure_cause"], rec["failure_detail"])
        assert rec["failure_detail"].startswith("gateway: policy server at"), rec["failure_detail"]
        assert "unreachable" in rec["failure_detail"]
        # claude-code gives up after its bounded retries (~15 s), not its default ~4 min.
        assert rec["timings"]["agent_run"] < 90, rec["timings"]

    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=swerl.run={run_dir.name}"],
        capture_output=True,
        text=True,
    )
    assert left.stdout.strip() == ""
    # The master key never reaches the run's files.
    for f in run_dir.rglob("*"):
        if f.is_file() and f.stat().st_size < 5_000_000:
            assert KEY not in f.read_text(errors="replace"), f
