"""The LiteLLM config swerl writes, checked against LiteLLM's own config types."""

from __future__ import annotations

import pytest
import yaml

from swerl.config.schema import SwerlConfig
from swerl.plan import PlanContext
from swerl.proxy import DROP_PARAMS, litellm_yaml, proxy_process


def config(**extra: object) -> SwerlConfig:
    return SwerlConfig.model_validate({"model": {"path": "m"}, "tasks": {"path": "t"}, **extra})


def test_routes_the_served_name_and_claude_aliases_to_the_gateway() -> None:
    cfg = config(model={"path": "m", "served_name": "pol"}, ports={"gateway": 9103})
    data = yaml.safe_load(litellm_yaml(cfg))
    names = [m["model_name"] for m in data["model_list"]]
    assert names == ["pol", "claude-*"]
    for entry in data["model_list"]:
        params = entry["litellm_params"]
        assert params["model"] == "hosted_vllm/pol"
        assert params["api_base"] == "http://127.0.0.1:9103/v1"
        assert params["additional_drop_params"] == DROP_PARAMS
    assert data["litellm_settings"]["drop_params"] is True
    assert data["general_settings"]["forward_client_headers_to_llm_api"] is True


def test_master_key_is_an_environment_reference() -> None:
    cfg = config(proxy={"master_key_env": "SWERL_PROXY_KEY"})
    text = litellm_yaml(cfg)
    assert yaml.safe_load(text)["general_settings"]["master_key"] == "os.environ/SWERL_PROXY_KEY"
    assert "&id" not in text  # no YAML anchors: each entry stands alone


def test_proxy_process_command_and_env(tmp_path) -> None:
    cfg = config(ports={"proxy": 9102})
    ctx = PlanContext("r", tmp_path / "runs/r", tmp_path)
    p = proxy_process(cfg, ctx)
    assert p.argv == [
        str(tmp_path / ".venv/bin/litellm"),
        "--config",
        str(tmp_path / "runs/r/litellm.yaml"),
        "--host",
        "127.0.0.1",
        "--port",
        "9102",
    ]
    assert p.env == {
        "LITELLM_MASTER_KEY": "${LITELLM_MASTER_KEY}",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    assert list(p.files) == [str(tmp_path / "runs/r/litellm.yaml")]


@pytest.mark.slow
def test_config_matches_litellms_own_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports litellm (~10 s): every key we write is one LiteLLM 1.106.2 knows."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
    monkeypatch.setenv("LITELLM_LOG", "ERROR")
    litellm = pytest.importorskip("litellm")
    from litellm.proxy._types import ConfigGeneralSettings, ConfigYAML
    from litellm.router_utils.baseline_request import BASELINE_PARAMETERS
    from litellm.types.router import LiteLLM_Params

    data = yaml.safe_load(litellm_yaml(config()))
    parsed = ConfigYAML.model_validate(data)
    assert set(data) <= set(ConfigYAML.model_fields)
    assert set(data["general_settings"]) <= set(ConfigGeneralSettings.model_fields)
    assert parsed.general_settings is not None
    assert parsed.general_settings.forward_client_headers_to_llm_api is True
    for key in data["litellm_settings"]:  # the proxy sets these as litellm module attributes
        assert hasattr(litellm, key), key
    for entry in data["model_list"]:
        params = dict(entry["litellm_params"])
        LiteLLM_Params.model_validate(params)
        extra = set(params) - set(LiteLLM_Params.model_fields)
        # additional_drop_params is not a declared field, but the router honours it per request.
        assert extra <= {"additional_drop_params"}
        assert "additional_drop_params" in BASELINE_PARAMETERS
