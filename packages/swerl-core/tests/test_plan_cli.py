"""``swerl plan`` through the CLI: the checked-in configs plan, and no secret is ever printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from swerl.cli import app

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
SECRETS = {
    "LITELLM_MASTER_KEY": "sk-fake-master-9f3a1c",
    "WANDB_API_KEY": "wandb-fake-key-5e7d2b",
}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("USE_NEW_VERL", raising=False)
    # configs/gpu_1gpu_scripted.yaml runs swerl.testing's scripted agent (see its header)
    monkeypatch.setenv("SWERL_PLUGIN_MODULES", "swerl.testing.fakes:Fakes")
    monkeypatch.setattr("swerl.plugins._DEFAULT", None)  # a fresh one reads the variable
    monkeypatch.chdir(ROOT)
    return SECRETS


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_plan_json_never_contains_a_secret(config: Path, secret_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["plan", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    for value in secret_env.values():
        assert value not in result.output
    data = json.loads(result.output)
    proxy = next(p for p in data["processes"] if p["name"] == "litellm-proxy")
    assert proxy["env"]["LITELLM_MASTER_KEY"] == "***"
    assert proxy["argv"][-4:] == ["--host", "127.0.0.1", "--port", "8002"]
    # Every process binds loopback only, wherever a host is given.
    for p in data["processes"]:
        if "--host" in p["argv"]:
            assert p["argv"][p["argv"].index("--host") + 1] == "127.0.0.1"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_plan_text_never_contains_a_secret(config: Path, secret_env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["plan", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "swerl plan:" in result.output
    for value in secret_env.values():
        assert value not in result.output


def test_wandb_key_is_passed_by_reference(secret_env: dict[str, str]) -> None:
    config = ROOT / "configs/sync_1node_cc.yaml"  # logging.wandb.enabled: true
    result = CliRunner().invoke(app, ["plan", "--config", str(config), "--json"])
    verl = json.loads(result.output)["processes"][-1]
    assert verl["env"]["WANDB_API_KEY"] == "***"
    assert "trainer.logger=[console,file,wandb]" in verl["argv"]
