"""The core's preflight checks (`swerl check`), through the real loader and plugin manager.

Each test builds a config around a model folder and a task set under tmp_path, runs the whole
preflight, and reads the rows it cares about. GPU counts and free disk come from two small
functions that the tests replace; everything else is real.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from swerl import hookimpl
from swerl.components import Scaffold
from swerl.config.load import parse_config
from swerl.plugins import PluginManager
from swerl.preflight import Check, Report, Status, run_preflight
from swerl.preflight.checks import host, layout, run_all
from swerl.preflight.checks.host import ephemeral_range, free_ports

REPO = Path(__file__).resolve().parents[3]
#: The real probe, kept before the autouse fixture replaces it.
VISIBLE_GPU_COUNT = layout.visible_gpu_count

MODEL = {
    "model_type": "qwen2",
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "vocab_size": 100,
    "intermediate_size": 128,
}

TASK_TOML = """\
schema_version = "1.4"
[verifier]
environment_mode = "shared"
timeout_sec = 60.0
[environment]
network_mode = "public"
"""


def write_model(folder: Path, **fields: Any) -> Path:
    """A model folder whose config.json is MODEL with ``fields`` changed (None removes a key)."""
    config = {**MODEL, **fields}
    config = {k: v for k, v in config.items() if v is not None}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def write_task(
    root: Path,
    name: str,
    *,
    instruction: str | None = "Fix the bug in /app/calc.py.",
    toml: str | None = TASK_TOML,
    test_sh: bool = True,
    env: str | None = "Dockerfile",
) -> Path:
    """A Harbor task folder; each argument set to None/False leaves that part out."""
    task = root / name
    task.mkdir(parents=True)
    if instruction is not None:
        (task / "instruction.md").write_text(instruction)
    if toml is not None:
        (task / "task.toml").write_text(toml)
    if test_sh:
        (task / "tests").mkdir()
        (task / "tests" / "test.sh").write_text("#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n")
    if env is not None:
        (task / "environment").mkdir()
        (task / "environment" / env).write_text("FROM swerl-base:latest\n")
    return task


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class Run:
    """Builds a config under tmp_path and runs preflight on it."""

    def __init__(self, tmp_path: Path, pm: PluginManager) -> None:
        self.tmp = tmp_path
        self.pm = pm
        self.model = write_model(tmp_path / "model")
        self.tasks = tmp_path / "tasks"
        write_task(self.tasks, "fix-one")
        proxy, gateway, policy = free_ports(3)
        self.base: dict[str, Any] = {
            "model": {"path": str(self.model)},
            "tasks": {"path": str(self.tasks)},
            "run": {"output_dir": str(tmp_path / "runs")},
            "engine": {"name": "local"},
            "trainer": {"n_gpus_per_node": 0},
            "rollout": {"max_prompt_length": 1024, "max_response_length": 512},
            "algorithm": {"train_batch_size": 2, "n_resp": 2},
            "ports": {"proxy": proxy, "gateway": gateway, "policy": policy},
        }

    def __call__(self, **sections: Any) -> Report:
        data = merge(self.base, sections)
        loaded = parse_config(yaml.safe_dump(data), source="cfg.yaml", env={}, pm=self.pm)
        return run_preflight(loaded, self.pm)


def row(report: Report, name: str) -> Check:
    rows = report.by_name(name)
    assert len(rows) == 1, (
        f"expected one '{name}' row, got {[(c.name, c.detail) for c in report.checks]}"
    )
    return rows[0]


def gpu_engine(n_gpus: int = 8, **trainer: Any) -> dict[str, Any]:
    return {"engine": {"name": "fsdp"}, "trainer": {"n_gpus_per_node": n_gpus, **trainer}}


@pytest.fixture(autouse=True)
def _isolated_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No real GPUs, no real wandb credentials: each test states what it needs."""
    monkeypatch.setattr(layout, "visible_gpu_count", lambda: (0, "test: none"))
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    yield


@pytest.fixture
def run(tmp_path: Path, pm: PluginManager) -> Run:
    return Run(tmp_path, pm)


# --- the whole run ------------------------------------------------------------------------------


def test_valid_cpu_config_has_no_failures_and_writes_nothing(run: Run) -> None:
    before = sorted(p.relative_to(run.tmp) for p in run.tmp.rglob("*"))
    report = run()
    failed = [
        (c.name, c.detail) for c in report.checks if c.status is Status.FAIL and c.source == "core"
    ]
    assert failed == []
    core = {c.name for c in report.checks if c.source == "core"}
    for name in ("model", "tensor parallel", "sequence parallel", "lengths", "gpu layout",
                 "gpus visible", "batch sizes", "staleness", "port proxy", "port gateway",
                 "port policy", "disk", "wandb", "tasks", "engine local"):  # fmt: skip
        assert name in core
    assert sorted(p.relative_to(run.tmp) for p in run.tmp.rglob("*")) == before
    assert not (run.tmp / "runs").exists()


def test_every_warning_and_failure_carries_a_fix(run: Run) -> None:
    report = run(
        rollout={"tensor_parallel_size": 3},
        algorithm={"train_batch_size": 3, "ppo_mini_batch_size": 2},
        tasks={"path": str(run.tmp / "nowhere")},
        logging={"wandb": {"enabled": True}},
    )
    bad = [c for c in report.checks if c.status in (Status.WARN, Status.FAIL)]
    assert len(bad) >= 4
    assert all(c.fix and "\n" not in c.fix for c in bad)


def test_a_crashing_check_becomes_a_row_and_the_rest_still_run(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom() -> tuple[int, str]:
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(layout, "visible_gpu_count", boom)
    report = run(**gpu_engine())
    crashed = row(report, "gpus visible")
    assert crashed.status is Status.FAIL and "probe exploded" in crashed.detail
    assert row(report, "tasks").status is Status.PASS


# --- model --------------------------------------------------------------------------------------


def test_model_row_reports_heads_and_positions(run: Run) -> None:
    check = row(run(), "model")
    assert check.status is Status.PASS
    assert str(run.model) in check.detail
    assert "8 attention heads" in check.detail and "2 KV heads" in check.detail
    assert "4096" in check.detail


def test_missing_model_folder_fails_naming_the_path(run: Run) -> None:
    missing = run.tmp / "no-such-model"
    report = run(model={"path": str(missing)})
    check = row(report, "model")
    assert check.status is Status.FAIL
    assert str(missing) in check.detail and "does not exist" in check.detail
    assert "model.path" in check.fix
    # Checks that need the model skip instead of guessing.
    assert row(report, "tensor parallel").status is Status.SKIP
    assert row(report, "disk").status is Status.SKIP


def test_folder_without_config_json_fails(run: Run) -> None:
    empty = run.tmp / "empty-model"
    empty.mkdir()
    check = row(run(model={"path": str(empty)}), "model")
    assert check.status is Status.FAIL and "has no config.json" in check.detail
    assert str(empty) in check.detail


def test_config_json_that_is_not_json_fails_with_the_line(run: Run) -> None:
    (run.model / "config.json").write_text('{\n  "num_attention_heads": 8,\n  oops\n}')
    check = row(run(), "model")
    assert check.status is Status.FAIL
    assert "is not JSON" in check.detail and "line 3" in check.detail


def test_non_integer_head_count_fails_naming_the_key(run: Run) -> None:
    write_model(run.model, num_attention_heads="eight")
    check = row(run(), "model")
    assert check.status is Status.FAIL and "num_attention_heads" in check.detail
    assert "'eight'" in check.detail


def test_values_nested_under_text_config_are_found(run: Run) -> None:
    # Qwen3.5-style: the language model's numbers sit under text_config only.
    folder = run.tmp / "qwen35"
    folder.mkdir()
    text = {"num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 1000}
    (folder / "config.json").write_text(
        json.dumps({"model_type": "qwen3_5_moe", "text_config": {"model_type": "x", **text}})
    )
    report = run(model={"path": str(folder)}, trainer={"sequence_parallel_size": 1})
    model = row(report, "model")
    assert model.status is Status.PASS and "16 attention heads" in model.detail
    assert "text_config" in model.detail
    lengths = row(report, "lengths")  # 1024 + 512 > 1000, read from text_config
    assert lengths.status is Status.FAIL and "max_position_embeddings=1000" in lengths.detail


def test_kv_heads_default_to_attention_heads(run: Run) -> None:
    write_model(run.model, num_key_value_heads=None)
    report = run(rollout={"tensor_parallel_size": 4})
    assert "8 KV heads" in row(report, "model").detail
    check = row(report, "tensor parallel")
    assert check.status is Status.PASS and "8 KV heads" in check.detail


# --- tensor and sequence parallel ---------------------------------------------------------------


def test_two_kv_heads_with_tp4_is_flagged_with_both_numbers(run: Run) -> None:
    # vLLM runs this by replicating each KV head on 2 GPUs (QKVParallelLinear), so it is a
    # warning about wasted KV cache, not a failure.
    check = row(run(rollout={"tensor_parallel_size": 4}), "tensor parallel")
    assert check.status is Status.WARN
    assert (
        "num_key_value_heads=2 is not divisible by rollout.tensor_parallel_size=4" in check.detail
    )
    assert "replicates" in check.detail
    assert "tensor_parallel_size<=2" in check.fix


def test_kv_heads_neither_dividing_nor_divided_by_tp_fail(run: Run) -> None:
    write_model(run.model, num_attention_heads=12, num_key_value_heads=6)
    check = row(run(rollout={"tensor_parallel_size": 4}), "tensor parallel")
    assert check.status is Status.FAIL
    assert (
        "num_key_value_heads=6 is not divisible by rollout.tensor_parallel_size=4" in check.detail
    )
    # The fix lists the sizes that work for 12 heads / 6 KV heads.
    assert check.fix.endswith("one of 1, 2, 3, 6, 12")


def test_attention_heads_not_divisible_by_tp_fail(run: Run) -> None:
    write_model(run.model, num_attention_heads=12, num_key_value_heads=12)
    check = row(run(rollout={"tensor_parallel_size": 8}), "tensor parallel")
    assert check.status is Status.FAIL
    assert (
        "num_attention_heads=12 is not divisible by rollout.tensor_parallel_size=8" in check.detail
    )


def test_tp_that_divides_both_passes(run: Run) -> None:
    check = row(run(rollout={"tensor_parallel_size": 2}), "tensor parallel")
    assert check.status is Status.PASS and "tensor_parallel_size=2" in check.detail


def test_sp_larger_than_kv_heads_passes_because_verl_repeats_them(run: Run) -> None:
    check = row(run(**gpu_engine(sequence_parallel_size=4)), "sequence parallel")
    assert check.status is Status.PASS and "repeats the 2 KV heads 2x" in check.detail


def test_sp_not_dividing_attention_heads_fails(run: Run) -> None:
    check = row(run(**gpu_engine(sequence_parallel_size=16)), "sequence parallel")
    assert check.status is Status.FAIL
    assert (
        "num_attention_heads=8 is not divisible by trainer.sequence_parallel_size=16"
        in check.detail
    )


def test_sp_with_kv_heads_in_neither_direction_fails(run: Run) -> None:
    write_model(run.model, num_attention_heads=12, num_key_value_heads=4)
    check = row(run(**gpu_engine(n_gpus=6, sequence_parallel_size=3)), "sequence parallel")
    assert check.status is Status.FAIL
    assert (
        "num_key_value_heads=4 is not divisible by trainer.sequence_parallel_size=3" in check.detail
    )


# --- lengths ------------------------------------------------------------------------------------


def test_lengths_within_positions_pass(run: Run) -> None:
    check = row(run(), "lengths")
    assert check.status is Status.PASS and "1024 + 512 = 1536" in check.detail


def test_prompt_plus_response_beyond_positions_fails(run: Run) -> None:
    check = row(run(rollout={"max_prompt_length": 4000, "max_response_length": 512}), "lengths")
    assert check.status is Status.FAIL
    assert "4000 + 512 = 4512" in check.detail and "max_position_embeddings=4096" in check.detail


def test_prompt_plus_response_beyond_max_model_len_fails(run: Run) -> None:
    check = row(run(rollout={"max_model_len": 1200}), "lengths")
    assert check.status is Status.FAIL
    assert "1536 exceeds rollout.max_model_len=1200" in check.detail


def test_max_model_len_beyond_positions_fails(run: Run) -> None:
    check = row(run(rollout={"max_model_len": 8192}), "lengths")
    assert check.status is Status.FAIL and "rollout.max_model_len=8192" in check.detail


def test_rope_scaled_model_beyond_positions_warns(run: Run) -> None:
    write_model(run.model, rope_scaling={"rope_type": "yarn", "factor": 4.0})
    check = row(run(rollout={"max_prompt_length": 8000}), "lengths")
    assert check.status is Status.WARN and "RoPE scaling" in check.detail


# --- GPUs ---------------------------------------------------------------------------------------


def test_cpu_engine_skips_gpu_checks(run: Run) -> None:
    report = run()
    assert row(report, "gpu layout").status is Status.SKIP
    assert row(report, "gpus visible").status is Status.SKIP
    assert "engine 'local'" in row(report, "gpu layout").detail


def test_sync_rollout_larger_than_the_trainer_fails(run: Run) -> None:
    report = run(**gpu_engine(), rollout={"tensor_parallel_size": 4, "data_parallel_size": 4})
    check = row(report, "gpu layout")
    assert check.status is Status.FAIL
    assert "4 × 4 = 16 GPUs" in check.detail and "1 × 8 = 8" in check.detail
    assert "data_parallel_size to 2" in check.fix


def test_fewer_replicas_than_verl_starts_warns_with_verls_count(run: Run) -> None:
    check = row(
        run(**gpu_engine(), rollout={"tensor_parallel_size": 2, "data_parallel_size": 2}),
        "gpu layout",
    )
    assert check.status is Status.WARN
    assert "4 replica(s), not rollout.data_parallel_size=2" in check.detail
    assert "data_parallel_size to 4" in check.fix
    ok = row(
        run(**gpu_engine(), rollout={"tensor_parallel_size": 2, "data_parallel_size": 4}),
        "gpu layout",
    )
    assert ok.status is Status.PASS


def test_gpus_not_a_multiple_of_tp_fail(run: Run) -> None:
    report = run(
        **gpu_engine(),
        mode="fully_async",
        rollout={"tensor_parallel_size": 4, "data_parallel_size": 1},
        fully_async={"rollout_nnodes": 1, "rollout_n_gpus_per_node": 6},
    )
    check = row(report, "gpu layout")
    assert check.status is Status.FAIL and "leave 2 GPU(s) without one" in check.detail


def test_gpu_engine_with_zero_gpus_per_node_fails(run: Run) -> None:
    check = row(run(engine={"name": "fsdp"}), "gpu layout")
    assert check.status is Status.FAIL and "trainer.n_gpus_per_node=0" in check.detail


def test_fully_async_rollout_pool_too_small_fails(run: Run) -> None:
    report = run(
        **gpu_engine(),
        mode="fully_async",
        rollout={"tensor_parallel_size": 2, "data_parallel_size": 8},
        fully_async={"rollout_nnodes": 1, "rollout_n_gpus_per_node": 8},
    )
    check = row(report, "gpu layout")
    assert check.status is Status.FAIL
    assert "8 × 2 = 16 GPUs" in check.detail and "1 × 8 = 8" in check.detail


def test_fully_async_pools_that_fit_pass(run: Run) -> None:
    report = run(
        **gpu_engine(),
        mode="fully_async",
        rollout={"tensor_parallel_size": 2, "data_parallel_size": 8},
        fully_async={"rollout_nnodes": 2, "rollout_n_gpus_per_node": 8},
    )
    check = row(report, "gpu layout")
    assert check.status is Status.PASS and "rollout pool of 16" in check.detail


def test_fewer_visible_gpus_than_per_node_fails_with_both_numbers(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layout, "visible_gpu_count", lambda: (2, "nvidia-smi -L lists 2"))
    check = row(run(**gpu_engine()), "gpus visible")
    assert check.status is Status.FAIL
    assert "2 GPU(s) visible" in check.detail and "trainer.n_gpus_per_node=8" in check.detail


def test_enough_visible_gpus_pass(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "visible_gpu_count", lambda: (8, "nvidia-smi -L lists 8"))
    assert row(run(**gpu_engine()), "gpus visible").status is Status.PASS


def test_run_all_takes_an_injected_gpu_count(run: Run, pm: PluginManager) -> None:
    data = merge(run.base, gpu_engine(n_gpus=4))
    loaded = parse_config(yaml.safe_dump(data), env={}, pm=pm)
    report = Report(loaded)
    run_all(loaded.config, report, pm=pm, gpu_count=lambda: (4, "injected"))
    check = row(report, "gpus visible")
    assert check.status is Status.PASS and "injected" in check.detail


@pytest.mark.parametrize(
    ("cvd", "physical", "expected"),
    [(None, 8, 8), ("0,1", 8, 2), ("", 8, 0), ("0,-1,2", 8, 1), ("0,1,2,3", 2, 2)],
)
def test_cuda_visible_devices_narrows_the_count(
    cvd: str | None, physical: int, expected: int
) -> None:
    env = {} if cvd is None else {"CUDA_VISIBLE_DEVICES": cvd}
    count, how = VISIBLE_GPU_COUNT(env, physical=(physical, "fake"))
    assert count == expected
    assert (cvd is None) or "CUDA_VISIBLE_DEVICES" in how


def test_nvidia_smi_listing_is_counted_without_mig_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)'\n"
        "echo '  MIG 3g.40gb     Device  0: (UUID: MIG-bbbb)'\n"
        "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-cccc)'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert layout._nvidia_smi_count() == (2, "nvidia-smi -L lists 2")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert layout._nvidia_smi_count()[0] == 0


# --- batch sizes --------------------------------------------------------------------------------


def test_train_batch_not_divisible_by_mini_batch_fails(run: Run) -> None:
    check = row(run(algorithm={"train_batch_size": 6, "ppo_mini_batch_size": 4}), "batch sizes")
    assert check.status is Status.FAIL
    assert "train_batch_size=6 is not divisible by ppo_mini_batch_size=4" in check.detail


def test_mini_batch_samples_not_divisible_by_dp_fails(run: Run) -> None:
    # world 8 / sp 2 = 4 data-parallel ranks; 2 tasks × 3 samples = 6 samples.
    report = run(**gpu_engine(sequence_parallel_size=2), algorithm={"n_resp": 3})
    check = row(report, "batch sizes")
    assert check.status is Status.FAIL
    assert "2 × 3 = 6 samples is not divisible by the data-parallel size 4" in check.detail


def test_per_gpu_batch_not_divisible_by_micro_batch_fails(run: Run) -> None:
    report = run(
        **gpu_engine(n_gpus=2),
        algorithm={"train_batch_size": 3, "n_resp": 2, "micro_batch_size_per_gpu": 2},
    )
    check = row(report, "batch sizes")
    assert check.status is Status.FAIL
    assert "per-GPU mini-batch 3" in check.detail and "micro_batch_size_per_gpu=2" in check.detail


def test_world_not_divisible_by_sp_fails(run: Run) -> None:
    check = row(run(**gpu_engine(n_gpus=6, sequence_parallel_size=4)), "batch sizes")
    assert check.status is Status.FAIL
    assert "world size 6" in check.detail and "sequence_parallel_size=4" in check.detail


def test_cpu_engine_uses_world_size_one(run: Run) -> None:
    check = row(run(algorithm={"train_batch_size": 3, "n_resp": 3}), "batch sizes")
    assert check.status is Status.PASS and "over 1 data-parallel rank" in check.detail


# --- fully-async staleness ----------------------------------------------------------------------


def test_staleness_skips_in_sync_mode(run: Run) -> None:
    assert row(run(), "staleness").status is Status.SKIP


def test_threshold_that_allows_no_stale_sample_warns(run: Run) -> None:
    report = run(
        mode="fully_async",
        algorithm={"train_batch_size": 1, "n_resp": 2},
        fully_async={"staleness_threshold": 0.1, "trigger_parameter_sync_step": 4},
    )
    check = row(report, "staleness")
    # verl: int(1 × 1 × 1.1 × 4) = 4 prompts, all of them fresh.
    assert check.status is Status.WARN and "allows 0 stale samples" in check.detail
    assert "= 4 prompts" in check.detail
    assert "staleness_threshold to at least 0.25" in check.fix


def test_stale_allowance_is_computed_as_verl_does(run: Run) -> None:
    report = run(
        mode="fully_async",
        algorithm={"train_batch_size": 16, "ppo_mini_batch_size": 8, "n_resp": 4},
        rollout={"max_concurrent_samples": 16},
        fully_async={"staleness_threshold": 0.5, "trigger_parameter_sync_step": 4},
    )
    check = row(report, "staleness")
    assert check.status is Status.PASS
    assert "int(8 × 1 × (0.5 + 1) × 4) = 48 prompts, 32 of them fresh" in check.detail
    assert "up to 64 stale samples" in check.detail


def test_fewer_concurrent_samples_than_a_group_fails(run: Run) -> None:
    report = run(mode="fully_async", algorithm={"n_resp": 4}, rollout={"max_concurrent_samples": 2})
    check = row(report, "staleness")
    assert check.status is Status.FAIL
    assert "max_concurrent_samples=2" in check.detail and "n_resp=4" in check.detail


# --- ports --------------------------------------------------------------------------------------


def test_busy_port_fails_naming_port_role_and_how_to_look(run: Run) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        report = run(ports={"gateway": port})
    check = row(report, "port gateway")
    assert check.status is Status.FAIL
    assert f"ports.gateway={port}" in check.detail and "gateway" in check.detail
    assert f"ss -ltnp 'sport = :{port}'" in check.fix and "ports.gateway" in check.fix
    assert row(report, "port proxy").status is Status.PASS


def test_the_probe_leaves_the_port_free(run: Run) -> None:
    report = run()
    port = run.base["ports"]["proxy"]
    assert row(report, "port proxy").status is Status.PASS
    with socket.socket() as again:  # would raise EADDRINUSE if the check had kept it
        again.bind(("127.0.0.1", port))


def test_policy_port_is_not_checked_on_gpu(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    assert row(run(**gpu_engine()), "port policy").status is Status.SKIP


# --- disk ---------------------------------------------------------------------------------------


def write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    """A valid safetensors file of zeros (F32), built by hand."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


@pytest.fixture
def sized_model(run: Run) -> Run:
    # 10×20 + 50 = 250 parameters -> 3000 bytes per checkpoint, 6000 for two.
    write_safetensors(run.model / "model.safetensors", {"w": [10, 20], "b": [50]})
    return run


@pytest.mark.parametrize(
    ("free", "status", "words"),
    [
        (10**12, Status.PASS, "250 params"),
        (4000, Status.WARN, "disk is low"),
        (2000, Status.FAIL, "not enough disk for one checkpoint"),
    ],
)
def test_disk_against_checkpoint_size(
    sized_model: Run, monkeypatch: pytest.MonkeyPatch, free: int, status: Status, words: str
) -> None:
    seen: list[Path] = []

    def fake_free(path: Path) -> int:
        seen.append(path)
        return free

    monkeypatch.setattr(host, "free_bytes", fake_free)
    out = sized_model.tmp / "runs" / "deep" / "er"
    check = row(sized_model(run={"output_dir": str(out)}), "disk")
    assert check.status is status and words in check.detail
    assert "1 safetensors file" in check.detail and "GB" in check.detail
    assert seen == [sized_model.tmp]  # the nearest existing parent; nothing was created
    assert not (sized_model.tmp / "runs").exists()


def test_disk_estimate_falls_back_to_config_json(run: Run) -> None:
    check = row(run(), "disk")
    assert check.status is Status.PASS and "estimated from config.json" in check.detail


# --- wandb --------------------------------------------------------------------------------------


def test_wandb_off_skips(run: Run) -> None:
    assert row(run(), "wandb").status is Status.SKIP


def test_wandb_key_in_env_passes_and_is_never_shown(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "wk-0123456789abcdef-do-not-print"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    report = run(logging={"wandb": {"enabled": True}})
    check = row(report, "wandb")
    assert check.status is Status.PASS and "WANDB_API_KEY" in check.detail
    assert secret not in json.dumps(report.to_json())


def test_wandb_key_in_netrc_passes_and_is_never_shown(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "nk-fedcba9876543210-do-not-print"
    rc = run.tmp / "netrc"
    rc.write_text(f"machine api.wandb.ai\n  login user\n  password {secret}\n")
    monkeypatch.setenv("NETRC", str(rc))
    report = run(logging={"wandb": {"enabled": True}})
    check = row(report, "wandb")
    assert check.status is Status.PASS and "entry for api.wandb.ai" in check.detail
    assert secret not in json.dumps(report.to_json())


def test_wandb_without_credentials_warns_it_will_log_offline(run: Run) -> None:
    (Path(os.environ["HOME"]) / ".netrc").write_text("machine example.com login a password b\n")
    check = row(run(logging={"wandb": {"enabled": True}}), "wandb")
    assert check.status is Status.WARN and "offline" in check.detail
    assert "api.wandb.ai" in check.detail
    assert "wandb login" in check.fix and "WANDB_API_KEY" in check.fix


def test_unparsable_netrc_warns_without_quoting_it(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pk-should-not-appear"
    rc = run.tmp / "netrc"
    rc.write_text(f"machine api.wandb.ai login u password {secret} bogus\n")
    monkeypatch.setenv("NETRC", str(rc))
    report = run(logging={"wandb": {"enabled": True}})
    assert row(report, "wandb").status is Status.WARN
    assert secret not in json.dumps(report.to_json())


# --- tasks --------------------------------------------------------------------------------------


def test_valid_task_set_passes_with_the_count(run: Run) -> None:
    write_task(run.tasks, "fix-two")
    write_task(run.tasks, "prebuilt", env=None, toml=TASK_TOML + 'docker_image = "img:1"\n')
    check = row(run(), "tasks")
    assert check.status is Status.PASS
    assert check.detail.startswith("3 valid task(s)")
    assert "fix-one, fix-two, prebuilt" in check.detail


def test_broken_tasks_are_listed_with_what_is_missing(run: Run) -> None:
    write_task(run.tasks, "no-tests", test_sh=False)
    write_task(run.tasks, "empty-instruction", instruction="  \n")
    write_task(run.tasks, "bad-toml", toml="schema_version = \n")
    write_task(run.tasks, "no-env", env=None)
    write_task(run.tasks, "compose-env", env="docker-compose.yaml")
    report = run()
    summary = row(report, "tasks")
    assert summary.status is Status.FAIL
    assert summary.detail.startswith("2 valid task(s)") and "4 broken" in summary.detail
    assert "no tests/test.sh" in row(report, "task no-tests").detail
    assert "instruction.md is empty" in row(report, "task empty-instruction").detail
    assert "task.toml is not valid TOML" in row(report, "task bad-toml").detail
    assert "no environment" in row(report, "task no-env").detail
    assert all(c.status is Status.FAIL for c in report.checks if c.name.startswith("task "))


def test_include_and_exclude_filter_by_name(run: Run) -> None:
    write_task(run.tasks, "fix-two")
    write_task(run.tasks, "other", test_sh=False)  # broken, but filtered out
    check = row(run(tasks={"include": ["fix-*"], "exclude": ["*-two"]}), "tasks")
    assert check.status is Status.PASS
    assert check.detail.startswith("1 valid task(s)") and "2 left out" in check.detail


def test_no_tasks_after_filters_fails(run: Run) -> None:
    check = row(run(tasks={"include": ["nothing-*"]}), "tasks")
    assert check.status is Status.FAIL and "no tasks" in check.detail
    assert "tasks.include" in check.fix


def test_one_task_folder_is_a_task_set(run: Run) -> None:
    check = row(run(tasks={"path": str(run.tasks / "fix-one")}), "tasks")
    assert check.status is Status.PASS and check.detail.startswith("1 valid task(s)")


def test_missing_task_path_fails(run: Run) -> None:
    missing = run.tmp / "nowhere"
    check = row(run(tasks={"path": str(missing)}), "tasks")
    assert check.status is Status.FAIL and str(missing) in check.detail


def test_the_repository_example_tasks_are_valid(run: Run) -> None:
    check = row(run(tasks={"path": str(REPO / "tasks")}), "tasks")
    assert check.status is Status.PASS, check.detail
    count = len([p for p in (REPO / "tasks").iterdir() if (p / "task.toml").is_file()])
    assert check.detail.startswith(f"{count} valid task(s)")
    assert "fix-add" in check.detail


def test_components_not_ready_to_run_warn_with_their_pending_text(
    run: Run, pm: PluginManager
) -> None:
    report = run()
    for kind, _key, ref in parse_config(
        yaml.safe_dump(run.base), env={}, pm=pm
    ).config.components():
        cls = pm.get(kind, ref.name).cls
        check = row(report, f"{kind} {ref.name}")
        if check.status is Status.WARN:
            assert cls.pending in check.detail
            assert "swerl plan" in check.fix and "swerl run" in check.fix
        else:
            assert check.status is Status.PASS


class _ReadyScaffold(Scaffold):
    name = "ready-one"
    ready = frozenset({"run"})


class _ReadyPlugin:
    @hookimpl
    def swerl_register_scaffolds(self, register: Callable[[type], None]) -> None:
        register(_ReadyScaffold)


def test_a_ready_component_passes(run: Run, pm: PluginManager) -> None:
    pm.register_plugin(_ReadyPlugin(), name="inline-ready")
    loaded = parse_config(
        yaml.safe_dump(merge(run.base, {"scaffold": {"name": "ready-one"}})), env={}, pm=pm
    )
    report = Report(loaded)
    run_all(loaded.config, report, pm=pm)
    check = row(report, "scaffold ready-one")
    assert check.status is Status.PASS and "ready to run" in check.detail
    assert row(report, "engine local").status is Status.PASS  # plans and trains


# --- scripts/dryrun.sh --------------------------------------------------------------------------


def test_dryrun_script_passes_arguments_to_swerl_check(run: Run) -> None:
    if not (REPO / ".venv" / "bin" / "swerl").exists():
        pytest.skip("no .venv/bin/swerl (run `uv sync`)")
    script = str(REPO / "scripts" / "dryrun.sh")

    def dryrun(*args: str) -> tuple[int, dict[str, Any]]:
        done = subprocess.run([script, *args], capture_output=True, text=True, timeout=60)
        return done.returncode, json.loads(done.stdout)

    config = run.tmp / "cfg.yaml"
    config.write_text(yaml.safe_dump(run.base))
    rc, out = dryrun("-c", str(config), "--json")
    assert out["config"] == str(config)
    tasks = [c for c in out["checks"] if c["name"] == "tasks" and c["source"] == "core"]
    assert tasks[0]["status"] == "pass" and str(run.tasks) in tasks[0]["detail"]
    assert rc == (0 if out["ok"] else 1)

    config.write_text(yaml.safe_dump(merge(run.base, {"tasks": {"path": "/nonexistent"}})))
    rc, out = dryrun("--json", "--config", str(config))
    assert rc == 1 and out["ok"] is False
    tasks = [c for c in out["checks"] if c["name"] == "tasks" and c["source"] == "core"]
    assert tasks[0]["status"] == "fail" and "/nonexistent" in tasks[0]["detail"]


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        assert port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_ephemeral_range_reads_the_kernel_file_and_falls_back(tmp_path) -> None:
    f = tmp_path / "range"
    f.write_text("40000\t50000\n")
    assert ephemeral_range(f) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)
