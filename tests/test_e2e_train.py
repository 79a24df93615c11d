"""Training on the real CPU stack: Docker, Harbor, claude-code, LiteLLM, the gateway, vLLM CPU and
the local engine. The trainer is SIGKILLed mid-run and ``swerl run --resume`` finishes the run:
every step is in metrics.jsonl exactly once, each step's rollout logprobs equal the trainer's
recomputation (fp32: the weight sync is exact, also after a resume), and nothing is left behind.
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

from swerl.manage import port_free
from swerl.testing import docker_ready, free_ports, need

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models/tiny-qwen2-sft"
KEY = "sk-e2e-train-key-not-secret"
STEPS = 3
pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.slow]


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_train_kill_resume_on_the_real_stack(tmp_path: Path, runs_dir: Path) -> None:
    need(not docker_ready(), docker_ready())
    need((ROOT / ".venv-policy/bin/python").exists(), "no .venv-policy (run `make setup`)")
    need((MODEL / "config.json").exists(), "no models/tiny-qwen2-sft (run `make setup`)")
    ports = free_ports(3)
    config = {
        "run": {"name": "t", "output_dir": str(runs_dir)},
        "model": {"path": str(MODEL), "dtype": "float32"},
        "rollout": {
            "max_prompt_length": 3072,
            "max_response_length": 512,
            "max_concurrent_samples": 2,
            "max_turns": 6,
        },
        "algorithm": {
            "train_batch_size": 1,
            "n_resp": 2,
            "lr": 1e-3,
            "total_steps": STEPS,
            "save_freq": 1,
        },
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(ROOT / "tasks"), "include": ["fix-add", "fix-clamp", "fix-evens"]},
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
        "filters": [],
        "ports": dict(zip(["proxy", "gateway", "policy"], ports, strict=True)),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "LITELLM_MASTER_KEY": KEY}
    swerl = str(Path(sys.executable).parent / "swerl")
    log = open(tmp_path / "first.log", "w")  # noqa: SIM115
    first = subprocess.Popen(
        [swerl, "run", "--config", str(path)], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    runs = runs_dir
    # Kill the trainer once step 1 (the second) is checkpointed and step 2 has begun.
    deadline = time.monotonic() + 1200
    run_dir = None
    while time.monotonic() < deadline and first.poll() is None:
        found = list(runs.glob("*/metrics.jsonl")) if runs.exists() else []
        if found and len(metrics(found[0].parent)) >= 2:
            run_dir = found[0].parent
            break
        time.sleep(1)
    assert run_dir is not None, (tmp_path / "first.log").read_text()[-3000:]
    procs = json.loads((run_dir / "processes.json").read_text())
    trainer = next(p for p in procs if p["name"] == "trainer")
    os.kill(trainer["pid"], signal.SIGKILL)
    assert first.wait(timeout=120) != 0
    status = json.loads((run_dir / "status.json").read_text())
    assert status["phase"] == "failed"
    assert (run_dir / "checkpoints/step_000001/state.json").is_file()
    for p in procs:  # the launcher stopped everything it started
        assert not Path(f"/proc/{p['pid']}").exists() or _zombie(p["pid"]), p

    out = subprocess.run(
        [swerl, "run", "--resume", str(run_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "(resumed)" in out.stdout
    rows = metrics(run_dir)
    assert [r["step"] for r in rows] == list(range(STEPS)), rows
    assert json.loads((run_dir / "status.json").read_text())["phase"] == "done"
    for r in rows:
        assert r["exactness"] == 1.0
        assert r["trials"] == 2
        # Same weights on both sides (also right after the resume's sync): same logprobs.
        assert abs(r["rollout_corr/kl"]) < 1e-6, r
        assert r["rollout_corr/max_abs_diff"] < 1e-4, r
        # GRPO: a gradient exactly when the group's rewards differ.
        assert (r["actor/grad_norm"] > 0) == (r["reward/std"] > 0), r
        assert r["sync/total_s"] < 30
    state = json.loads((run_dir / "checkpoints/step_000002/state.json").read_text())
    assert state["step"] == 2
    assert state["sampler"] == {"epoch": 1, "index": 0}  # 3 tasks, 1 per step: one epoch
    tasks = set()
    for step in range(STEPS):
        lines = (run_dir / f"trajectories/step_{step:06d}.jsonl").read_text().splitlines()
        recs = [json.loads(x) for x in lines]
        assert len({r["trial_id"] for r in recs}) == 2
        tasks |= {r["task"] for r in recs}
    assert tasks == {"fix-add", "fix-clamp", "fix-evens"}  # the resumed sampler went on
    # The served weights are the last step's.
    assert (run_dir / "weights/model.safetensors").is_file()
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=swerl.run={run_dir.name}"],
        capture_output=True,
        text=True,
    )
    assert left.stdout.strip() == ""
    assert all(port_free(p) for p in ports)
    for f in run_dir.rglob("*"):
        if f.is_file() and f.suffix != ".safetensors" and f.stat().st_size < 5_000_000:
            assert KEY not in f.read_text(errors="replace"), f


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
