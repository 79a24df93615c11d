"""Reward filters on the real CPU stack (Docker, Harbor, claude-code, LiteLLM, the gateway, vLLM
CPU, the local engine): one sandbox is killed on purpose mid-trial. The trial is recorded as a
sandbox error, the trajectory filter counts it as an infra failure (left out of its group, never a
reward of 0), the step trains on the other trials, and metrics.jsonl reports
``trajectory_filter/infra_failed_rate`` > 0 next to is-token's ``rollout_corr/*`` metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from swerl.testing import docker_ready, free_ports, need

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models/tiny-qwen2-sft"
KEY = "sk-e2e-filters-key-not-secret"
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow]


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


class SandboxKiller(threading.Thread):
    """Kills one sandbox container of the run once it has run for ``after_s`` seconds (in the
    middle of its agent's run): the first one found whose kill succeeds, then stops."""

    def __init__(self, runs: Path, after_s: float = 8.0) -> None:
        super().__init__(daemon=True)
        self.runs, self.after_s = runs, after_s
        self.killed: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        seen: dict[str, float] = {}
        while not self.stop.is_set() and self.killed is None:
            run_ids = [p.name for p in self.runs.glob("*")] if self.runs.exists() else []
            for run_id in run_ids:
                out = docker("ps", "-q", "--filter", f"label=swerl.run={run_id}").stdout.split()
                for cid in out:
                    seen.setdefault(cid, time.monotonic())
            for cid, first in seen.items():
                if time.monotonic() - first >= self.after_s and docker("kill", cid).returncode == 0:
                    self.killed = cid
                    return
            self.stop.wait(0.5)


def test_killed_sandbox_is_an_infra_failure(tmp_path: Path, runs_dir: Path) -> None:
    need(not docker_ready(), docker_ready())
    need((ROOT / ".venv-policy/bin/python").exists(), "no .venv-policy (run `make setup`)")
    need((MODEL / "config.json").exists(), "no models/tiny-qwen2-sft (run `make setup`)")
    ports = free_ports(3)
    runs = runs_dir
    config = {
        "run": {"name": "f", "output_dir": str(runs)},
        "model": {"path": str(MODEL), "dtype": "float32"},
        "rollout": {
            "max_prompt_length": 3072,
            "max_response_length": 512,
            "max_concurrent_samples": 2,
            "max_turns": 6,
        },
        "algorithm": {"train_batch_size": 2, "n_resp": 3, "lr": 1e-3, "total_steps": 1},
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
        "engine": {"name": "local"},
        "filters": ["trajectory", "is-token"],
        "ports": dict(zip(["proxy", "gateway", "policy"], ports, strict=True)),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    swerl = str(Path(sys.executable).parent / "swerl")
    killer = SandboxKiller(runs)
    killer.start()
    started = time.monotonic()
    try:
        out = subprocess.run(
            [swerl, "run", "--config", str(path)],
            cwd=ROOT,
            env={**os.environ, "LITELLM_MASTER_KEY": KEY, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=1500,
        )
    finally:
        killer.stop.set()
        killer.join(timeout=60)
    print(f"wall time of the run: {time.monotonic() - started:.0f} s")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert killer.killed is not None, "no sandbox was killed"
    (run_dir,) = runs.glob("*/metrics.jsonl")
    run_dir = run_dir.parent
    (row,) = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    print({k: v for k, v in row.items() if k.startswith(("trajectory_filter/", "failures/"))})

    records = [json.loads(x) for x in (run_dir / "trajectories/step_000000.jsonl").read_text()
               .splitlines()]  # fmt: skip
    trials = {r["trial_id"]: r for r in records}
    assert len(trials) == 6
    killed = [r for r in trials.values() if r["failure_cause"] == "sandbox_error"]
    assert killed, [(r["failure_cause"], r["failure_detail"]) for r in trials.values()]
    assert all(r["reward"] is None for r in killed)  # never a reward of 0

    assert row["failures/sandbox_error"] >= 1
    assert row["trajectory_filter/infra_failure"] >= len(killed)
    assert row["trajectory_filter/infra_failed_rate"] == row["trajectory_filter/infra_failure"] / 6
    assert row["trajectory_filter/infra_failed_rate"] > 0
    # trained on the rest
    assert "train/skipped" not in row, row
    assert row["actor/updates"] >= 1 and row["train/samples"] >= 1
    # is-token ran too: weights of 1 on an exact sync
    assert row["rollout_corr/rollout_is_mean"] == pytest.approx(1.0, abs=1e-4)
    assert abs(row["rollout_corr/kl"]) < 1e-6 and row["is_token/kl_alarm"] == 0.0
    assert json.loads((run_dir / "status.json").read_text())["phase"] == "done"
    left = docker("ps", "-aq", "--filter", f"label=swerl.run={run_dir.name}")
    assert left.stdout.strip() == ""
