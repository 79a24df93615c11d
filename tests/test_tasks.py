"""The example tasks in tasks/: their layout, their tests and fixes on the host, and real trials.

For every task, through the swerl docker sandbox (real Docker, real Harbor), Harbor's ``oracle``
agent (which runs ``solution/solve.sh``) gets reward 1 and ``nop`` (which changes nothing) gets
reward 0. The trials run four at a time; ``-s`` shows the timings.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from swerl.testing import docker_ready, need

REPO = Path(__file__).resolve().parents[1]
TASKS = sorted(p for p in (REPO / "tasks").iterdir() if (p / "task.toml").is_file())
NAMES = [p.name for p in TASKS]
IMAGE = "swerl-base:latest"
CONCURRENCY = 4


def test_there_are_at_least_six_tasks_and_the_readme_lists_each():
    assert len(TASKS) >= 6
    readme = (REPO / "tasks" / "README.md").read_text()
    assert [n for n in NAMES if f"`{n}`" not in readme] == []


@pytest.mark.parametrize("task", TASKS, ids=NAMES)
def test_task_layout(task: Path):
    config = tomllib.loads((task / "task.toml").read_text())
    assert config["task"]["name"] == f"swerl/{task.name}"
    env = config["environment"]
    # The prebuilt image, started as is; Harbor copies environment/ into the workdir.
    assert (env["docker_image"], env["workdir"]) == (IMAGE, "/app")
    assert config["verifier"]["environment_mode"] == "shared"
    files = sorted(p.name for p in (task / "environment").iterdir() if p.name != "__pycache__")
    assert "Dockerfile" not in files and "docker-compose.yaml" not in files
    assert any(f.startswith("test_") for f in files), "the repository ships its own tests"
    assert (task / "instruction.md").read_text().strip()
    test_sh = task / "tests" / "test.sh"
    assert "python3 -B" in test_sh.read_text()
    assert "/logs/verifier/reward.txt" in test_sh.read_text()
    for script in (test_sh, task / "solution" / "solve.sh"):
        assert os.access(script, os.X_OK), f"{script} is not executable"


def _hidden_tests_pass(task: Path, app: Path) -> bool:
    cmd = [
        "python3",
        "-B",
        "-m",
        "unittest",
        "discover",
        "-s",
        str(task / "tests"),
        "-p",
        "test_*.py",
    ]
    env = {**os.environ, "PYTHONPATH": str(app)}
    return subprocess.run(cmd, cwd=app, env=env, capture_output=True).returncode == 0


@pytest.mark.parametrize("task", TASKS, ids=NAMES)
def test_hidden_tests_reject_the_bug_and_accept_the_reference_fix(task: Path, tmp_path: Path):
    """On the host, without Docker: the same check as the trials below, in a second."""
    app = tmp_path / "app"
    shutil.copytree(task / "environment", app, ignore=shutil.ignore_patterns("__pycache__"))
    assert not _hidden_tests_pass(task, app)
    solve = (task / "solution" / "solve.sh").read_text().replace("/app/", f"{app}/")
    subprocess.run(["bash", "-c", solve], check=True)
    assert _hidden_tests_pass(task, app)
    # The repository's own tests pass too once the bug is fixed.
    visible = subprocess.run(["python3", "-B", "-m", "unittest"], cwd=app, capture_output=True)
    assert visible.returncode == 0, visible.stderr.decode()


# --- real trials ---------------------------------------------------------------------------------


def require_docker() -> None:
    """Skip without an engine and the base image; under SWERL_REQUIRE_SETUP=1 (CI) fail."""
    reason = docker_ready(IMAGE)
    need(not reason, reason)


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory):
    """Every task with oracle and with nop, CONCURRENCY trials at a time."""
    require_docker()
    from swerl_sandbox_docker.containers import find_containers
    from swerl_sandbox_docker.runner import DockerTrialRunner

    run_id = f"test-tasks-{uuid.uuid4().hex[:8]}"
    runner = DockerTrialRunner(run_id=run_id, run_dir=tmp_path_factory.mktemp("tasks-run"))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(task: Path, agent: str):
        async with gate:
            return await runner.run_trial(task, {"name": agent})

    async def main():
        jobs = [(t.name, a) for t in TASKS for a in ("oracle", "nop")]
        outs = await asyncio.gather(*(one(REPO / "tasks" / t, a) for t, a in jobs))
        return dict(zip(jobs, outs, strict=True))

    start = time.monotonic()
    try:
        outcomes = asyncio.run(main())
    finally:
        left = find_containers(run_id=run_id)
        runner.cleanup()
    wall = time.monotonic() - start
    totals = [o.timings["total"] for o in outcomes.values()]
    print(
        f"\n{len(outcomes)} trials, {CONCURRENCY} at a time: {wall:.1f} s wall, per trial median "
        f"{statistics.median(totals):.1f} s (min {min(totals):.1f}, max {max(totals):.1f})"
    )
    return outcomes, left


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("task", NAMES)
def test_oracle_gets_reward_1_and_nop_reward_0(trials, task: str):
    outcomes, _ = trials
    oracle, nop = outcomes[(task, "oracle")], outcomes[(task, "nop")]
    assert (oracle.failure_cause, oracle.reward) == (None, 1.0), oracle.failure_detail
    assert (nop.failure_cause, nop.reward) == (None, 0.0), nop.failure_detail
    log = (oracle.trial_dir / "verifier" / "test-stdout.txt").read_text()
    assert "OK" in log and "FAILED" not in log


@pytest.mark.docker
@pytest.mark.slow
def test_no_trial_container_is_left_behind(trials):
    _, left = trials
    assert left == []
