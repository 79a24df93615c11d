"""The verl command lines swerl plans compose against verl 0.9.1's own Hydra config.

``swerl plan`` writes Hydra overrides for ``verl.trainer.main_ppo`` (config ``ppo_trainer``) and
``verl.experimental.fully_async_policy.fully_async_main`` (``fully_async_ppo_trainer``). Hydra's
composition is strict: an override of a key verl renamed or removed fails here, on CPU, instead of
minutes into a GPU run. Only Hydra is used; verl's Python package is never imported (its config
folder is found with ``importlib.util.find_spec``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from swerl.config.load import LoadedConfig, load_config
from swerl.plan import LaunchPlan, ProcessSpec, build_plan
from swerl.plugins import PluginManager

pytestmark = pytest.mark.slow

hydra = pytest.importorskip("hydra")
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.errors import ConfigCompositionException  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.find_spec("verl")
if SPEC is None or not SPEC.submodule_search_locations:
    pytest.skip("verl is not installed", allow_module_level=True)
VERL = Path(next(iter(SPEC.submodule_search_locations)))
MAIN_PPO = ("verl.trainer.main_ppo", VERL / "trainer/config", "ppo_trainer")
FULLY_ASYNC = (
    "verl.experimental.fully_async_policy.fully_async_main",
    VERL / "experimental/fully_async_policy/config",
    "fully_async_ppo_trainer",
)
VERL_ENGINES = {"fsdp", "veomni"}


def pm() -> PluginManager:
    # configs/gpu_1gpu_scripted.yaml runs swerl.testing's scripted agent (see its header)
    return PluginManager(env={"SWERL_PLUGIN_MODULES": "swerl.testing.fakes:Fakes"}).load()


def load(path: Path) -> LoadedConfig:
    return load_config(path, env={}, pm=pm())


def verl_configs() -> list[Path]:
    """Every checked-in config whose engine runs verl."""
    return [
        p
        for p in sorted((ROOT / "configs").glob("*.yaml"))
        if load(p).config.engine.name in VERL_ENGINES
    ]


def plan_of(loaded: LoadedConfig, tmp_path: Path) -> LaunchPlan:
    return build_plan(loaded, pm(), run_id="compose-test", env={}, base_dir=tmp_path)


def verl_process(plan: LaunchPlan) -> ProcessSpec:
    (process,) = [p for p in plan.processes if p.argv[1:2] == ["-m"] and "verl" in p.argv[2]]
    return process


def compose_argv(argv: list[str]) -> DictConfig:
    """Compose as ``python -m <module> <overrides>`` would, minus running anything."""
    module, overrides = argv[2], argv[3:]
    entry = {MAIN_PPO[0]: MAIN_PPO, FULLY_ASYNC[0]: FULLY_ASYNC}[module]
    _, config_dir, name = entry
    extra = []
    if entry is FULLY_ASYNC:
        # Its yaml finds ppo_trainer through pkg://verl.trainer.config, which would import verl;
        # the same folder as a file search path composes identically.
        extra = [f"hydra.searchpath=[file://{VERL / 'trainer/config'}]"]
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose(config_name=name, overrides=[*overrides, *extra])
    OmegaConf.resolve(cfg)  # interpolations into keys we set must still resolve
    return cfg


def as_override(value: Any) -> str:
    from swerl_engine_fsdp.overrides import value as hydra_value

    return hydra_value(OmegaConf.to_container(value) if OmegaConf.is_config(value) else value)


def check_every_override_landed(argv: list[str], cfg: DictConfig) -> None:
    for override in argv[3:]:
        key, want = override.lstrip("+").split("=", 1)
        got = OmegaConf.select(cfg, key, throw_on_missing=True)
        assert as_override(got) == want, f"{override}: composed to {got!r}"


def test_the_checked_in_verl_configs_are_covered() -> None:
    names = {p.name for p in verl_configs()}
    assert {"sync_1node_cc.yaml", "fully_async_3nodes_qwen35_ohsdk_veomni.yaml"} <= names


@pytest.mark.parametrize("path", verl_configs(), ids=lambda p: p.name)
def test_checked_in_config_composes(path: Path, tmp_path: Path) -> None:
    loaded = load(path)
    c = loaded.config
    plan = plan_of(loaded, tmp_path)
    process = verl_process(plan)
    cfg = compose_argv(process.argv)
    check_every_override_landed(process.argv, cfg)

    rollout = cfg.actor_rollout_ref.rollout
    assert rollout.tensor_model_parallel_size == c.rollout.tensor_parallel_size
    assert rollout.n == c.algorithm.n_resp
    assert rollout.name == "vllm"
    assert rollout.calculate_log_probs is True
    assert rollout.agent.default_agent_loop == "swerl_agent"
    loop_file = str(tmp_path / "runs/compose-test/agent_loop.yaml")
    assert rollout.agent.agent_loop_config_path == loop_file
    assert yaml.safe_load(plan.files[loop_file]) == [
        {"name": "swerl_agent", "_target_": "swerl_engine_fsdp.agent_loop.SwerlAgentLoop"}
    ]
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == c.algorithm.mini_batch_size
    assert cfg.actor_rollout_ref.model.path == str(tmp_path / c.model.path)
    assert cfg.trainer.n_gpus_per_node == c.trainer.n_gpus_per_node
    assert cfg.trainer.nnodes == c.trainer.nnodes
    assert cfg.trainer.default_local_dir == str(tmp_path / "runs/compose-test/checkpoints")

    sp = c.trainer.sequence_parallel_size
    if c.engine.name == "veomni":
        actor = cfg.actor_rollout_ref.actor
        assert actor.strategy == "veomni"
        assert actor.veomni.ulysses_parallel_size == sp
        assert cfg.actor_rollout_ref.ref.veomni.ulysses_parallel_size == sp  # inherited
        if loaded.options["engine"].router_replay != "disabled":
            assert actor.use_remove_padding is True  # veomni router replay requires it
    else:
        assert cfg.actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size == sp
        assert cfg.actor_rollout_ref.ref.fsdp_config.ulysses_sequence_parallel_size == sp

    if c.mode == "fully_async":
        assert process.argv[2] == FULLY_ASYNC[0]
        assert cfg.data.train_batch_size == 0 and cfg.data.gen_batch_size == 1
        assert cfg.actor_rollout_ref.hybrid_engine is False
        assert cfg.async_training.staleness_threshold == c.fully_async.staleness_threshold
        assert cfg.rollout.nnodes == c.fully_async.rollout_nnodes
        assert cfg.rollout.n_gpus_per_node == c.fully_async.rollout_n_gpus_per_node
    else:
        assert process.argv[2] == MAIN_PPO[0]
        assert cfg.data.train_batch_size == c.algorithm.train_batch_size
        assert cfg.trainer.v1.trainer_mode == "sync"
        assert cfg.trainer.total_training_steps == c.algorithm.total_steps
        verl_validates(cfg)


def verl_validates(cfg: DictConfig) -> None:
    """main_ppo's own checks before it starts anything (micro-batch keys, batch divisibility,
    the actor's config): a plan that composes but fails them would die on the GPU host. The
    critic's checks are left out: they read the model's files, which these plans only name."""
    from verl.trainer.main_ppo import need_reference_policy
    from verl.utils.config import validate_config

    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=False)


def variant(tmp_path: Path, base: str, **changes: Any) -> LoadedConfig:
    data = yaml.safe_load((ROOT / "configs" / base).read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = tmp_path / f"variant-{base}"
    path.write_text(yaml.safe_dump(data))
    return load(path)


VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "fsdp-ppo-kl-options": (
        "sync_1node_cc.yaml",
        {
            "algorithm__name": "ppo",
            "algorithm__kl_coef": 0.01,
            "engine__options": {
                "strategy": "fsdp2",
                "param_offload": True,
                "optimizer_offload": True,
                "use_dynamic_bsz": True,
                "ppo_max_token_len_per_gpu": 32768,
                "agent_num_workers": 4,
            },
        },
    ),
    "fsdp-gspo-fully-async": (
        "fully_async_3nodes_qwen35_ohsdk_veomni.yaml",
        {"engine": {"name": "fsdp"}, "algorithm__clip_ratio_high": 5e-4},
    ),
    "veomni-ppo-sync-r2": (
        "sync_1node_cc.yaml",
        {
            "algorithm__name": "ppo",
            "engine": {
                "name": "veomni",
                "options": {"router_replay": "R2", "expert_parallel_size": 2, "fsdp_size": 4},
            },
        },
    ),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_option_and_algorithm_variants_compose(name: str, tmp_path: Path) -> None:
    base, changes = VARIANTS[name]
    loaded = variant(tmp_path, base, **changes)
    process = verl_process(plan_of(loaded, tmp_path))
    cfg = compose_argv(process.argv)
    check_every_override_landed(process.argv, cfg)
    if loaded.config.mode == "sync":
        verl_validates(cfg)
    if loaded.config.algorithm.name == "ppo":
        assert cfg.algorithm.adv_estimator == "gae"
        assert cfg.critic.model.path == str(tmp_path / loaded.config.model.path)
    if name == "veomni-ppo-sync-r2":
        assert cfg.critic.strategy == "veomni"
        assert cfg.critic.veomni.expert_parallel_size == 2
        assert cfg.actor_rollout_ref.rollout.enable_rollout_routing_replay is False
    if name == "fsdp-ppo-kl-options":
        assert cfg.critic.fsdp.ulysses_sequence_parallel_size == 2
        assert cfg.actor_rollout_ref.actor.use_kl_loss is True
    if name == "fsdp-gspo-fully-async":
        assert cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"
        assert cfg.actor_rollout_ref.actor.clip_ratio_high == 5e-4


def test_a_key_verl_does_not_have_fails_to_compose(tmp_path: Path) -> None:
    """The harness is strict: renaming one key the plan emits makes composition fail, and a
    key verl's yaml lacks composes only with ``+``."""
    process = verl_process(plan_of(load(ROOT / "configs/sync_1node_cc.yaml"), tmp_path))
    key = "actor_rollout_ref.rollout.tensor_model_parallel_size"
    renamed = [
        a.replace(key, "actor_rollout_ref.rollout.tensor_parallel_size") for a in process.argv
    ]
    assert renamed != process.argv
    with pytest.raises(ConfigCompositionException):
        compose_argv(renamed)
    cfg = compose_argv([*process.argv, "+trainer.swerl_probe=1"])
    assert cfg.trainer.swerl_probe == 1
    with pytest.raises(ConfigCompositionException):
        compose_argv([*process.argv, "trainer.swerl_probe=1"])


def test_composition_imports_no_verl_code(tmp_path: Path) -> None:
    import sys

    def verl_modules() -> set[str]:
        return {m for m in sys.modules if m == "verl" or m.startswith("verl.")}

    before = verl_modules()
    plan = plan_of(load(ROOT / "configs/fully_async_3nodes_qwen35_ohsdk_veomni.yaml"), tmp_path)
    compose_argv(verl_process(plan).argv)
    assert verl_modules() == before
