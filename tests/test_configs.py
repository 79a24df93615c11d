"""Every checked-in config validates (schema and component options), as torchtune does."""

from __future__ import annotations

from pathlib import Path

import pytest

from swerl.config.load import load_config
from swerl.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
#: configs/gpu_1gpu_scripted.yaml runs swerl.testing's scripted agent, loaded as its header says.
PLUGIN_ENV = {"SWERL_PLUGIN_MODULES": "swerl.testing.fakes:Fakes"}


def test_the_three_documented_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {
        "smoke_cpu.yaml",
        "sync_1node_cc.yaml",
        "fully_async_3nodes_qwen35_ohsdk_veomni.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_checked_in_config_validates(path: Path) -> None:
    loaded = load_config(path, env={}, pm=PluginManager(env=PLUGIN_ENV).load())
    resolved = loaded.resolved()
    # Every selected component's options were validated by its own model.
    assert set(loaded.options) >= {"scaffold", "sandbox", "engine"}
    assert resolved["model"]["path"]


def test_smoke_config_is_the_cpu_engine() -> None:
    loaded = load_config(ROOT / "configs/smoke_cpu.yaml", env={}, pm=PluginManager(env={}).load())
    assert loaded.config.engine.name == "local"
    assert loaded.config.trainer.n_gpus_per_node == 0


def test_fully_async_config_uses_the_advanced_path() -> None:
    path = ROOT / "configs/fully_async_3nodes_qwen35_ohsdk_veomni.yaml"
    cfg = load_config(path, env={}, pm=PluginManager(env={}).load()).config
    assert cfg.mode == "fully_async"
    assert (cfg.engine.name, cfg.scaffold.name) == ("veomni", "ohsdk")
    assert cfg.fully_async.rollout_nnodes + cfg.trainer.nnodes == 3
