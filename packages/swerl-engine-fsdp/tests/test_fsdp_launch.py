"""What the launcher does for a verl run before any process starts (``swerl.launch.prepare_run``):
the proxy routes every agent-loop worker's model name to that worker's gateway, and verl's task
parquet is built from the config's task folder. Nothing here needs a GPU."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from swerl.config.load import parse_config
from swerl.launch import prepare_run
from swerl.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pm() -> PluginManager:
    return PluginManager(env={}).load()


@pytest.mark.parametrize("engine", ["fsdp", "veomni"])
def test_prepare_run_writes_worker_routes_and_task_parquet(pm, tmp_path, engine) -> None:
    tasks = sorted(p.name for p in (ROOT / "tasks").iterdir() if (p / "task.toml").is_file())
    config = {
        "run": {"output_dir": str(tmp_path / "runs"), "name": "t"},
        "model": {"path": "models/m"},
        "tasks": {"path": str(ROOT / "tasks"), "exclude": [tasks[0]]},
        "ports": {"proxy": 18002, "gateway": 18010},
        "engine": {"name": engine, "options": {"agent_num_workers": 3}},
    }
    loaded = parse_config(yaml.safe_dump(config), env={}, pm=pm)
    plan, _ = prepare_run(loaded, pm)
    run_dir = Path(plan.run_dir)

    (path,) = [p for p in plan.files if p.endswith("litellm.yaml")]
    routes = {
        m["model_name"]: m["litellm_params"]["api_base"]
        for m in yaml.safe_load(plan.files[path])["model_list"]
    }
    assert routes == {
        "policy": "http://127.0.0.1:18010/v1",
        "claude-*": "http://127.0.0.1:18010/v1",
        "policy-w1": "http://127.0.0.1:18011/v1",
        "policy-w2": "http://127.0.0.1:18012/v1",
    }

    for split in ("train", "val"):
        table = pq.read_table(run_dir / "data" / f"{split}.parquet").to_pylist()
        assert sorted(row["extra_info"]["task"] for row in table) == tasks[1:]
        assert {row["agent_name"] for row in table} == {"swerl_agent"}
    assert (run_dir / "config.yaml").is_file()


def test_the_local_engine_adds_no_routes_and_no_files(pm, tmp_path) -> None:
    config = {
        "run": {"output_dir": str(tmp_path / "runs")},
        "model": {"path": "models/m"},
        "tasks": {"path": str(ROOT / "tasks")},
        "trainer": {"n_gpus_per_node": 0},
        "engine": {"name": "local"},
    }
    loaded = parse_config(yaml.safe_dump(config), env={}, pm=pm)
    plan, _ = prepare_run(loaded, pm)
    (path,) = [p for p in plan.files if p.endswith("litellm.yaml")]
    names = [m["model_name"] for m in yaml.safe_load(plan.files[path])["model_list"]]
    assert names == ["policy", "claude-*"]
    assert sorted(p.name for p in Path(plan.run_dir).iterdir()) == ["config.yaml"]
