"""The veomni engine: its verl block, router replay, and its preflight checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from swerl.config.schema import SwerlConfig
from swerl.plan import PlanContext, ProcessSpec
from swerl.preflight.report import Report, Status
from swerl_engine_fsdp import checks as verl_checks
from swerl_engine_veomni import plugin
from swerl_engine_veomni.component import VeomniEngine, VeomniEngineOptions


def config(**extra: Any) -> SwerlConfig:
    base: dict[str, Any] = {
        "model": {"path": "m"},
        "tasks": {"path": "t"},
        "engine": {"name": "veomni"},
    }
    return SwerlConfig.model_validate(base | extra)


def plan(cfg: SwerlConfig, tmp_path: Path, **options: Any) -> ProcessSpec:
    ctx = PlanContext("r", tmp_path / "runs/r", tmp_path, {})
    (process,) = VeomniEngine(VeomniEngineOptions(**options)).plan(cfg, ctx)
    return process


def overrides(p: ProcessSpec) -> dict[str, str]:
    return dict(a.split("=", 1) for a in p.argv[3:])


def test_selects_the_veomni_engine_with_its_own_sp_key(tmp_path: Path) -> None:
    o = overrides(
        plan(config(trainer={"sequence_parallel_size": 4}), tmp_path, expert_parallel_size=2)
    )
    assert o["model_engine"] == "veomni"
    assert o["actor_rollout_ref.actor.veomni.ulysses_parallel_size"] == "4"
    assert o["actor_rollout_ref.actor.veomni.expert_parallel_size"] == "2"
    assert o["actor_rollout_ref.model.use_remove_padding"] == "True"  # router replay needs it
    assert not any(k.startswith("actor_rollout_ref.actor.fsdp_config") for k in o)
    # Shared keys come from the fsdp package's builder.
    assert o["actor_rollout_ref.rollout.agent.default_agent_loop"] == "swerl_agent"


@pytest.mark.parametrize(
    ("mode", "routing"), [("R3", "True"), ("R2", "False"), ("disabled", "False")]
)
def test_router_replay_mode(tmp_path: Path, mode: str, routing: str) -> None:
    o = overrides(plan(config(), tmp_path, router_replay=mode))
    assert o["actor_rollout_ref.actor.veomni.router_replay.mode"] == mode
    assert o["actor_rollout_ref.rollout.enable_rollout_routing_replay"] == routing


def test_moe_kernels_default_to_veomnis_triton_not_verls_quack(tmp_path: Path) -> None:
    """verl's default "fused" resolves to veomni's quack kernels on SM90+ (a package swerl does
    not install); the actor and the reference get the same kernels."""
    o = overrides(plan(config(), tmp_path))
    keys = ("actor_rollout_ref.actor.veomni", "actor_rollout_ref.ref.veomni")
    assert [o[f"{k}.moe_implementation"] for k in keys] == ["fused_triton"] * 2
    o = overrides(plan(config(), tmp_path, moe_implementation="eager"))
    assert [o[f"{k}.moe_implementation"] for k in keys] == ["eager"] * 2
    with pytest.raises(ValidationError):
        VeomniEngineOptions.model_validate({"moe_implementation": "fused"})


def test_ppo_gives_the_critic_the_same_parallelism(tmp_path: Path) -> None:
    cfg = config(algorithm={"name": "ppo"}, trainer={"sequence_parallel_size": 2})
    o = overrides(plan(cfg, tmp_path, expert_parallel_size=4))
    assert o["critic.veomni.ulysses_parallel_size"] == "2"
    assert o["critic.veomni.expert_parallel_size"] == "4"


def test_options_are_validated() -> None:
    with pytest.raises(ValidationError):
        VeomniEngineOptions.model_validate({"router_replay": "R4"})
    with pytest.raises(ValidationError, match="extra"):
        VeomniEngineOptions.model_validate({"ulysses": 2})


def run_checks(
    monkeypatch: pytest.MonkeyPatch, cfg: SwerlConfig, *, veomni: bool, vllm: str | None = "0.24.0"
) -> Report:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            (object() if veomni else None) if name == "veomni" else real_find_spec(name, *a)
        ),
    )
    versions = {"verl": "0.9.1", "vllm": vllm, "veomni": "0.1.12" if veomni else None}
    monkeypatch.setattr(verl_checks, "installed", lambda dist: versions.get(dist))
    report = Report()
    plugin.swerl_preflight_checks(cfg, report)
    return report


def test_missing_veomni_fails_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_checks(monkeypatch, config(), veomni=False)
    (check,) = report.by_name("veomni")
    assert check.status is Status.FAIL and report.failed
    assert "pip install --no-deps veomni==0.1.12" in check.fix
    assert run_checks(monkeypatch, config(), veomni=True).by_name("veomni")[0].status is Status.PASS


def r2(**extra: Any) -> SwerlConfig:
    options = {"router_replay": "R2", **extra.pop("options", {})}
    return config(engine={"name": "veomni", "options": options}, **extra)


def test_r2_fails_where_verl_bypasses_the_recompute(monkeypatch: pytest.MonkeyPatch) -> None:
    (check,) = run_checks(monkeypatch, r2(mode="fully_async"), veomni=True).by_name(
        "veomni router replay"
    )
    assert check.status is Status.FAIL and "R3" in check.fix
    (check,) = run_checks(monkeypatch, r2(), veomni=True).by_name("veomni router replay")
    assert check.status is Status.PASS


def test_r2_with_fully_async_passes_once_bypass_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # The is-token filter recomputes old logprobs (bypass_mode=False) ...
    with_filter = r2(mode="fully_async", filters=["is-token"])
    (check,) = run_checks(monkeypatch, with_filter, veomni=True).by_name("veomni router replay")
    assert check.status is Status.PASS
    # ... and so does an explicit override.
    override = r2(
        mode="fully_async",
        options={"overrides": ["algorithm.rollout_correction.bypass_mode=False"]},
    )
    (check,) = run_checks(monkeypatch, override, veomni=True).by_name("veomni router replay")
    assert check.status is Status.PASS


def test_r3_needs_vllm_022(monkeypatch: pytest.MonkeyPatch) -> None:
    (check,) = run_checks(monkeypatch, config(), veomni=True, vllm="0.21.0").by_name(
        "veomni router replay"
    )
    assert check.status is Status.FAIL and "0.22" in check.detail
    (check,) = run_checks(monkeypatch, config(), veomni=True).by_name("veomni router replay")
    assert check.status is Status.PASS


def test_checks_only_run_for_this_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_checks(monkeypatch, config(engine={"name": "fsdp"}), veomni=False)
    assert report.checks == []


def moe_model(tmp_path: Path, **keys: int) -> str:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_moe", **keys}))
    return str(tmp_path)


@pytest.mark.parametrize(
    ("keys", "options", "gpus", "status"),
    [
        ({"num_experts": 8}, {}, 1, Status.FAIL),  # what stopped the first H100 MoE launch
        ({"num_local_experts": 8}, {}, 1, Status.FAIL),
        ({"num_experts": 8}, {"moe_implementation": "eager"}, 1, Status.PASS),
        ({"num_experts": 8}, {}, 2, Status.PASS),  # FSDP on: bf16 compute
        (  # measured on an H100: 3 GRPO steps with the triton experts in bf16
            {"num_experts": 8},
            {"overrides": ["actor_rollout_ref.actor.veomni.mixed_precision=false"]},
            1,
            Status.PASS,
        ),
        ({}, {}, 1, Status.SKIP),  # dense
    ],
)
def test_one_gpu_fp32_actor_cannot_use_the_triton_experts(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    keys: dict[str, int],
    options: dict[str, Any],
    gpus: int,
    status: Status,
) -> None:
    cfg = config(
        model={"path": moe_model(tmp_path, **keys)},
        engine={"name": "veomni", "options": options},
        trainer={"n_gpus_per_node": gpus},
    )
    (check,) = run_checks(monkeypatch, cfg, veomni=True).by_name("veomni MoE kernels")
    assert check.status is status, check.detail
    if status is Status.FAIL:
        assert "moe_implementation: eager" in check.fix and "fp32" in check.detail


def test_a_kl_loss_needs_the_reference_in_bf16_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    actor_bf16 = ["actor_rollout_ref.actor.veomni.mixed_precision=False"]
    ref_bf16 = ["actor_rollout_ref.ref.veomni.mixed_precision=False"]

    def status(overrides: list[str]) -> Status:
        cfg = config(
            model={"path": moe_model(tmp_path, num_experts=8)},
            engine={"name": "veomni", "options": {"overrides": overrides}},
            trainer={"n_gpus_per_node": 1},
            algorithm={"kl_coef": 0.1},
        )
        (check,) = run_checks(monkeypatch, cfg, veomni=True).by_name("veomni MoE kernels")
        if check.status is Status.FAIL:
            assert "ref" in check.detail and ref_bf16[0] in check.fix
        return check.status

    assert status(actor_bf16) is Status.FAIL
    assert status(actor_bf16 + ref_bf16) is Status.PASS


def test_the_checked_in_one_gpu_moe_config_passes_the_kernel_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import yaml

    root = Path(__file__).resolve().parents[3]
    raw = yaml.safe_load((root / "configs/gpu_1gpu_veomni_moe.yaml").read_text())
    raw["model"]["path"] = moe_model(tmp_path, num_experts=8)
    cfg = SwerlConfig.model_validate(raw)
    (check,) = run_checks(monkeypatch, cfg, veomni=True).by_name("veomni MoE kernels")
    assert check.status is Status.PASS
