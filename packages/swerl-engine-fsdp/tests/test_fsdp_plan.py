"""The fsdp engine's plan: SwerlConfig → verl overrides, env, files. Composition against verl's
own Hydra config is in tests/test_verl_compose.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from swerl.config.schema import SwerlConfig
from swerl.errors import UserError
from swerl.plan import PlanContext, ProcessSpec
from swerl_engine_fsdp import overrides as ov
from swerl_engine_fsdp.component import FsdpEngine, FsdpEngineOptions
from swerl_engine_fsdp.launch import FULLY_ASYNC_MAIN, MAIN_PPO


def config(**extra: Any) -> SwerlConfig:
    base: dict[str, Any] = {"model": {"path": "models/m"}, "tasks": {"path": "tasks"}}
    return SwerlConfig.model_validate(base | extra)


def plan(
    cfg: SwerlConfig, tmp_path: Path, env: dict[str, str] | None = None, **options: Any
) -> ProcessSpec:
    ctx = PlanContext("r-1", tmp_path / "runs/r-1", tmp_path, env or {})
    (process,) = FsdpEngine(FsdpEngineOptions(**options)).plan(cfg, ctx)
    return process


def overrides(p: ProcessSpec) -> dict[str, str]:
    """key -> value of the Hydra overrides (each key must appear once)."""
    pairs = [a.split("=", 1) for a in p.argv[3:]]
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return dict(pairs)


def test_sync_runs_main_ppo_with_the_configs_numbers(tmp_path: Path) -> None:
    cfg = config(
        rollout={
            "tensor_parallel_size": 2,
            "max_prompt_length": 100,
            "max_response_length": 20,
            "gpu_memory_utilization": 0.5,
            "temperature": 0.7,
        },
        algorithm={"train_batch_size": 6, "n_resp": 3, "ppo_mini_batch_size": 2, "lr": 3e-6},
        trainer={"n_gpus_per_node": 4, "sequence_parallel_size": 2},
    )
    p = plan(cfg, tmp_path)
    assert p.argv[:3] == [str(tmp_path / ".venv/bin/python"), "-m", MAIN_PPO]
    o = overrides(p)
    run = tmp_path / "runs/r-1"
    assert o["data.train_batch_size"] == "6"
    assert o["data.train_files"] == str(run / "data/train.parquet")
    assert o["actor_rollout_ref.model.path"] == str(tmp_path / "models/m")
    assert o["actor_rollout_ref.actor.ppo_mini_batch_size"] == "2"
    assert o["actor_rollout_ref.actor.optim.lr"] == "3e-06"
    assert o["actor_rollout_ref.rollout.tensor_model_parallel_size"] == "2"
    assert o["actor_rollout_ref.rollout.n"] == "3"
    assert o["actor_rollout_ref.rollout.max_model_len"] == "120"
    assert o["actor_rollout_ref.rollout.temperature"] == "0.7"
    assert o["actor_rollout_ref.rollout.calculate_log_probs"] == "True"
    assert o["actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size"] == "2"
    assert o["actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size"] == "2"
    assert "actor_rollout_ref.actor.ulysses_sequence_parallel_size" not in o  # deprecated key
    assert o["trainer.n_gpus_per_node"] == "4"
    assert o["trainer.default_local_dir"] == str(run / "checkpoints")
    assert o["trainer.v1.trainer_mode"] == "sync"
    assert o["trainer.test_freq"] == "-1"
    assert o["trainer.logger"] == "[console,file]"
    metrics = Path(p.env["VERL_FILE_LOGGER_PATH"])
    assert metrics.parent == run / "logs" and metrics.name.startswith("verl_metrics_")


def test_agent_loop_is_registered_through_a_file(tmp_path: Path) -> None:
    p = plan(config(), tmp_path)
    o = overrides(p)
    path = str(tmp_path / "runs/r-1/agent_loop.yaml")
    assert o["actor_rollout_ref.rollout.agent.agent_loop_config_path"] == path
    assert o["actor_rollout_ref.rollout.agent.default_agent_loop"] == "swerl_agent"
    assert p.files[path] == (
        "- name: swerl_agent\n  _target_: swerl_engine_fsdp.agent_loop.SwerlAgentLoop\n"
    )
    assert "hosts a swerl gateway from :8003" in p.note


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "grpo",
            {"algorithm.adv_estimator": "grpo", "actor_rollout_ref.actor.clip_ratio_high": "0.2"},
        ),
        (
            "gspo",
            {
                "algorithm.adv_estimator": "grpo",
                "actor_rollout_ref.actor.policy_loss.loss_mode": "gspo",
                "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-mean",
                "actor_rollout_ref.actor.clip_ratio_low": "0.0003",
                "actor_rollout_ref.actor.clip_ratio_high": "0.0004",
            },
        ),
        (
            "ppo",
            {
                "algorithm.adv_estimator": "gae",
                "critic.model.use_remove_padding": "True",
                "critic.fsdp.ulysses_sequence_parallel_size": "1",
            },
        ),
    ],
)
def test_algorithm_mapping(tmp_path: Path, name: str, expected: dict[str, str]) -> None:
    o = overrides(plan(config(algorithm={"name": name}), tmp_path))
    assert {k: o.get(k) for k in expected} == expected
    if name != "ppo":
        assert not any(k.startswith("critic.") for k in o)


def test_configured_clip_and_kl_win_over_defaults(tmp_path: Path) -> None:
    cfg = config(algorithm={"name": "gspo", "clip_ratio_low": 1e-3, "kl_coef": 0.01})
    o = overrides(plan(cfg, tmp_path))
    assert o["actor_rollout_ref.actor.clip_ratio_low"] == "0.001"
    assert o["actor_rollout_ref.actor.clip_ratio_high"] == "0.0004"
    assert o["actor_rollout_ref.actor.use_kl_loss"] == "True"
    assert o["actor_rollout_ref.actor.kl_loss_coef"] == "0.01"


def test_fully_async_uses_its_own_entry_point_and_pools(tmp_path: Path) -> None:
    cfg = config(
        mode="fully_async",
        algorithm={"train_batch_size": 16, "ppo_mini_batch_size": 4, "total_steps": 10},
        fully_async={
            "rollout_nnodes": 2,
            "rollout_n_gpus_per_node": 4,
            "require_batches": 3,
            "staleness_threshold": 0.25,
        },
        trainer={"nnodes": 1, "n_gpus_per_node": 8},
    )
    p = plan(cfg, tmp_path)
    assert p.argv[2] == FULLY_ASYNC_MAIN
    o = overrides(p)
    assert o["data.train_batch_size"] == "0"  # verl asserts it; set once, in place
    assert o["data.gen_batch_size"] == "1"
    assert o["actor_rollout_ref.hybrid_engine"] == "False"
    assert o["rollout.nnodes"] == "2" and o["rollout.n_gpus_per_node"] == "4"
    assert o["rollout.total_rollout_steps"] == str(10 * 4 * 3)  # steps × mini-batch × batches
    assert o["async_training.staleness_threshold"] == "0.25"
    assert o["async_training.require_batches"] == "3"
    assert "trainer.v1.trainer_mode" not in o
    assert "ray start --head" in p.note and "3 nodes" in p.note
    # verl fills the rollout pool (2 × 4 GPUs) with TP-1 replicas, whatever data_parallel_size says
    assert "starts vLLM (8 replica(s) of TP 1)" in p.note


def test_the_plan_names_the_replicas_verl_starts_in_sync_mode(tmp_path: Path) -> None:
    cfg = config(
        rollout={"tensor_parallel_size": 2, "data_parallel_size": 1},
        trainer={"nnodes": 1, "n_gpus_per_node": 8},
    )
    assert "starts vLLM (4 replica(s) of TP 2)" in plan(cfg, tmp_path).note


def test_options_map_and_user_overrides_win(tmp_path: Path) -> None:
    p = plan(
        config(),
        tmp_path,
        strategy="fsdp2",
        param_offload=True,
        overrides=["trainer.save_freq=7", "+trainer.new_key=1"],
    )
    o = overrides(p)
    assert o["actor_rollout_ref.actor.strategy"] == "fsdp2"
    assert o["actor_rollout_ref.actor.fsdp_config.param_offload"] == "True"
    assert o["trainer.save_freq"] == "7"
    assert p.argv[-1] == "+trainer.new_key=1"


def test_options_reject_unknown_keys_and_non_overrides() -> None:
    with pytest.raises(ValidationError, match="extra"):
        FsdpEngineOptions.model_validate({"stratgy": "fsdp"})
    with pytest.raises(ValidationError, match="key=value"):
        FsdpEngineOptions.model_validate({"overrides": ["trainer.save_freq"]})


def test_merge_keeps_the_first_position_and_the_last_value() -> None:
    merged = ov.merge(["a=1", "b=2"], ["+c=3", "a=9"], ["c=4"])
    assert merged == ["a=9", "b=2", "c=4"]


def test_bypass_mode_follows_the_mode_then_the_overrides() -> None:
    key = "algorithm.rollout_correction.bypass_mode"
    assert ov.bypass_mode(config(mode="fully_async"), []) is True
    assert ov.bypass_mode(config(), []) is False
    assert ov.bypass_mode(config(mode="fully_async"), [f"{key}=False"]) is False
    assert ov.bypass_mode(config(), [f"{key}=False", f"+{key}=true"]) is True


def test_wandb_key_by_reference_else_offline(tmp_path: Path) -> None:
    cfg = config(logging={"wandb": {"enabled": True, "entity": "team"}})
    online = plan(cfg, tmp_path, env={"WANDB_API_KEY": "real-secret"})
    assert online.env["WANDB_API_KEY"] == "${WANDB_API_KEY}"
    assert online.env["WANDB_ENTITY"] == "team"
    assert "real-secret" not in str(online)
    offline = plan(cfg, tmp_path)
    assert offline.env["WANDB_MODE"] == "offline" and "WANDB_API_KEY" not in offline.env
    assert overrides(offline)["trainer.logger"] == "[console,file,wandb]"
    assert "WANDB_MODE" not in plan(config(), tmp_path).env


def test_use_new_verl_puts_the_checkout_first_on_pythonpath(tmp_path: Path) -> None:
    checkout = tmp_path / "verl-src"
    (checkout / "verl").mkdir(parents=True)
    (checkout / "verl" / "__init__.py").write_text("")
    env = {"USE_NEW_VERL": "1", "SWERL_VERL_PATH": str(checkout), "PYTHONPATH": "/x"}
    p = plan(config(), tmp_path, env=env)
    assert p.env["PYTHONPATH"] == f"{checkout}:/x"
    assert str(checkout) in p.note
    assert "PYTHONPATH" not in plan(config(), tmp_path, env={"PYTHONPATH": "/x"}).env


def test_use_new_verl_default_checkout_is_under_repos(tmp_path: Path) -> None:
    checkout = tmp_path / "repos/checkouts/verl"
    (checkout / "verl").mkdir(parents=True)
    (checkout / "verl" / "__init__.py").write_text("")
    p = plan(config(), tmp_path, env={"USE_NEW_VERL": "1"})
    assert p.env["PYTHONPATH"] == str(checkout)


@pytest.mark.parametrize("layout", ["missing", "not-verl"])
def test_use_new_verl_without_a_checkout_is_a_clear_error(tmp_path: Path, layout: str) -> None:
    checkout = tmp_path / "nowhere"
    if layout == "not-verl":
        checkout.mkdir()
    env = {"USE_NEW_VERL": "1", "SWERL_VERL_PATH": str(checkout)}
    with pytest.raises(UserError) as exc:
        plan(config(), tmp_path, env=env)
    message = str(exc.value)
    assert str(checkout) in message
    assert "git clone" in message and "unset USE_NEW_VERL" in message
