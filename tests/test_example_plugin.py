"""The example third-party plugin examples/plugins/swerl-filter-length, as a user meets it.

Its README's install steps, run verbatim in a fresh environment, install it and its own tests
pass; `swerl plugins` lists it. With the workspace's packages, a real config selecting
`filters: [length]` validates and `swerl check` / `swerl plan` accept it, and in a training step
(the local engine's Trainer.train on records from a real rollout through the gateway) it drops
the over-long trajectories and its metrics appear. It is not a workspace member.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from swerl.testing import need

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugins" / "swerl-filter-length"
MODEL = ROOT / "models" / "tiny-qwen2"
SWERL = str(Path(sys.executable).parent / "swerl")
pytestmark = pytest.mark.slow


def documented_steps() -> str:
    """The bash block of the README's "Install and test" section, verbatim."""
    readme = (EXAMPLE / "README.md").read_text()
    section = readme.split("## Install and test", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the README lost its install steps"
    return match.group(1)


def uv_env(tmp_path: Path, uv: str) -> dict[str, str]:
    """The user's shell: uv on PATH, and `python3.12` the interpreter behind this venv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (bin_dir / version).symlink_to(Path(sys.base_prefix) / "bin" / version)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    path = os.pathsep.join([str(bin_dir), str(Path(uv).parent), env.get("PATH", "")])
    return env | {"PATH": path, "UV_PYTHON_DOWNLOADS": "never"}


def test_it_is_not_a_workspace_member() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = root["tool"]["uv"]["workspace"]["members"]
    assert all(not m.startswith("examples") for m in members), members
    assert "swerl-filter-length" not in (ROOT / "uv.lock").read_text()
    assert "swerl-filter-length" not in json.dumps(root)


def test_the_documented_steps_install_it_and_its_tests_pass(tmp_path: Path, uv: str) -> None:
    steps = documented_steps()
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert f"```bash\n{steps}```" in docs, "docs/plugins.md shows other steps than the README"
    venv = tmp_path / "venv"
    env = uv_env(tmp_path, uv) | {"VENV": str(venv), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", steps],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "length  swerl-filter-length 0.1.0  loaded" in done.stdout  # `swerl plugins`
    assert re.search(r"\d+ passed", done.stdout) and "failed" not in done.stdout, output[-3000:]

    listed = subprocess.run(
        [str(venv / "bin" / "swerl"), "plugins", "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    infos = {p["name"]: p for p in json.loads(listed.stdout)}
    assert set(infos) == {"core", "length"}  # swerl-core and the example, nothing else
    length = infos["length"]
    assert (length["dist"], length["version"], length["status"]) == (
        "swerl-filter-length",
        "0.1.0",
        "loaded",
    )
    assert length["hooks"] == ["swerl_preflight_checks", "swerl_register_filters"]
    assert length["components"] == ["filter:length"]
    assert length["entry_point"] == "length = swerl_filter_length.plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, uv: str) -> Path:
    """The example installed into a folder of its own: on PYTHONPATH, it joins the workspace's
    packages (what `pip install` into the training environment would do, without changing it)."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [uv, "pip", "install", "-q", "--python", sys.executable, "--no-deps",
         "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def swerl(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run(
        [SWERL, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_config_selecting_it_passes_check_and_plan(site: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "smoke_cpu.yaml").read_text())
    config["filters"] = [*config["filters"], {"name": "length", "options": {"max_tokens": 256}}]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))

    shown = swerl(site, "config", "show", "--config", str(path), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["filters"][-1] == {
        "name": "length",
        "options": {"max_tokens": 256, "action": "drop"},  # validated, defaults filled in
    }

    checked = swerl(site, "check", "--config", str(path), "--json")
    assert checked.returncode in (0, 1), checked.stderr  # 1: this machine's state (ports, ...)
    report = json.loads(checked.stdout)
    assert report["plugins"]["length"] == "0.1.0"
    rows = [c for c in report["checks"] if c["source"] == "length"]
    assert [(c["name"], c["status"]) for c in rows] == [("length filter", "pass")]
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert not [c for c in failed if "filter" in c["name"] or "config" in c["name"]], failed

    planned = swerl(site, "plan", "--config", str(path), "--json")
    assert planned.returncode == 0, planned.stderr
    notes = json.loads(planned.stdout)["notes"]
    assert any("filter 'length' adds nothing to the plan yet" in n for n in notes), notes

    bad = path.read_text().replace("max_tokens: 256", "max_tokens: -1")
    path.write_text(bad)
    rejected = swerl(site, "check", "--config", str(path))
    assert rejected.returncode == 2
    index = len(config["filters"]) - 1
    assert f"filters.{index}.options.max_tokens" in rejected.stderr


def test_a_training_step_drops_the_over_long_trajectories(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records from a real rollout (swerl.testing: the real rollout and gateway, a fake policy
    scripted to sample two long and two short replies), then the local engine's Trainer.train
    with `filters: [length]` on the tiny model."""
    need((MODEL / "config.json").is_file(), "models/tiny-qwen2 is missing: run `make setup`")
    pytest.importorskip("torch")
    from swerl.plugins import PluginManager
    from swerl.testing import fake_policy, plugin_manager, reply_ids, run_rollout

    monkeypatch.syspath_prepend(str(site))
    policy = fake_policy()
    for text in ("x" * 40, "short", "y" * 40, "fine"):
        policy.push(reply_ids(text))
    rollout = run_rollout(plugin_manager("length"), tmp_path / "rollout", n=4, policy=policy)
    records = rollout.records
    long_ids = {r.trial_id for r in records if r.trained_tokens > 16}
    assert len(long_ids) == 2 and all(r.exactness == 1.0 for r in records)

    from swerl.config.load import parse_config
    from swerl_engine_local.loop import Trainer
    from swerl_engine_local.policy import Policy

    pm = PluginManager(env={}).load()
    assert pm.get("filter", "length").dist == "swerl-filter-length"
    config: dict[str, Any] = {
        "run": {"output_dir": str(tmp_path / "runs")},
        "model": {"path": str(MODEL), "dtype": "float32"},
        "algorithm": {"train_batch_size": 1, "n_resp": 4, "lr": 1e-2},
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(ROOT / "tasks")},
        "scaffold": {"name": "claude-code"},
        "sandbox": {"name": "docker"},
        "engine": {"name": "local"},
        "filters": [{"name": "length", "options": {"max_tokens": 16}}],
    }
    loaded = parse_config(yaml.safe_dump(config), env={}, pm=pm)
    monkeypatch.setenv(loaded.config.proxy.master_key_env, "sk-test")
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    trainer = Trainer(loaded, pm, run_dir)
    metrics = trainer.train(Policy(MODEL, lr=1e-2), records)

    assert metrics["length_filter/over_limit"] == 2.0
    assert metrics["length_filter/over_limit_ratio"] == 0.5
    assert metrics["length_filter/max_sampled_tokens"] == 41.0
    assert metrics["train/samples"] == 2.0  # the two short ones trained; the long ones dropped
    assert "actor/loss" in metrics
