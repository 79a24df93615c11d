"""``swerl plan`` as data: process order, run dir, context, rendering, secrets."""

from __future__ import annotations

import io
import json
import types
from pathlib import Path

from rich.console import Console

from swerl import hookimpl
from swerl.components import Engine, RewardFilter, Sandbox, Scaffold
from swerl.config.load import parse_config
from swerl.plan import (
    MASK,
    LaunchPlan,
    PlanContext,
    ProcessSpec,
    build_plan,
    mask_env,
    new_run_id,
    run_dir_for,
)
from swerl.plugins import PluginManager

CONFIG = """
run: {name: demo, output_dir: out}
model: {path: models/m}
tasks: {path: tasks}
scaffold: {name: fake-scaffold}
sandbox: {name: fake-sandbox}
engine: {name: two-step}
filters: [ready-filter, later-filter]
"""


class FakeScaffold(Scaffold):
    name = "fake-scaffold"


class FakeSandbox(Sandbox):
    name = "fake-sandbox"


class TwoStepEngine(Engine):
    """A server and a trainer; the trainer's argv carries what the filters asked for."""

    name = "two-step"
    ready = frozenset({"plan"})

    def plan(self, config, ctx=None):
        assert ctx is not None
        extra = [o for f in ctx.filters for o in f.verl_overrides(config)]
        return [
            ProcessSpec("server", ["serve", str(ctx.resolve(config.model.path))]),
            ProcessSpec("trainer", ["train", f"--run-dir={ctx.run_dir}", *extra]),
        ]


class ReadyFilter(RewardFilter):
    name = "ready-filter"
    ready = frozenset({"plan"})

    def verl_overrides(self, config):
        return ["trainer.logger=[console]", f"x.seed={config.run.seed}"]


class LaterFilter(RewardFilter):
    name = "later-filter"
    pending = "arrives with issue #99"


def fake_pm() -> PluginManager:
    plugin = types.SimpleNamespace(
        swerl_register_scaffolds=hookimpl(lambda register: register(FakeScaffold)),
        swerl_register_sandboxes=hookimpl(lambda register: register(FakeSandbox)),
        swerl_register_engines=hookimpl(lambda register: register(TwoStepEngine)),
        swerl_register_filters=hookimpl(
            lambda register: [register(ReadyFilter), register(LaterFilter)]
        ),
    )
    pm = PluginManager(entry_points=False, env={})
    pm.register_plugin(plugin, "fakes")
    return pm


def plan_for(text: str, tmp_path: Path, **kw: object) -> LaunchPlan:
    pm = fake_pm()
    loaded = parse_config(text, env={}, pm=pm)
    kw.setdefault("run_id", "demo-1")
    kw.setdefault("env", {})
    return build_plan(loaded, pm, base_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_proxy_starts_just_before_the_trainer(tmp_path: Path) -> None:
    plan = plan_for(CONFIG, tmp_path)
    assert [p.name for p in plan.processes] == ["server", "litellm-proxy", "trainer"]
    assert plan.process("server").argv == ["serve", str(tmp_path / "models/m")]


def test_run_dir_is_output_dir_then_run_id(tmp_path: Path) -> None:
    plan = plan_for(CONFIG, tmp_path)
    assert plan.run_dir == str(tmp_path / "out" / "demo-1")
    assert f"--run-dir={tmp_path / 'out' / 'demo-1'}" in plan.process("trainer").argv
    proxy = plan.process("litellm-proxy")
    assert str(tmp_path / "out/demo-1/litellm.yaml") in plan.files
    assert proxy.argv[1:3] == ["--config", str(tmp_path / "out/demo-1/litellm.yaml")]


def test_run_id_is_name_and_local_timestamp(tmp_path: Path) -> None:
    import time

    now = time.mktime((2026, 11, 2, 3, 4, 5, 0, 0, -1))
    assert new_run_id("smoke", now) == "smoke-20261102-030405"
    cfg = parse_config(CONFIG, env={}, pm=fake_pm()).config
    assert run_dir_for(cfg, "r", tmp_path) == tmp_path / "out" / "r"
    absolute = cfg.model_copy(update={"run": cfg.run.model_copy(update={"output_dir": tmp_path})})
    assert run_dir_for(absolute, "r", Path("/elsewhere")) == tmp_path / "r"


def test_without_a_run_id_the_plan_computes_one(tmp_path: Path) -> None:
    plan = plan_for(CONFIG, tmp_path, run_id=None)
    assert plan.run_id.startswith("demo-") and len(plan.run_id) == len("demo-20261102-030405")
    assert any("computes its own" in n for n in plan.notes)


def test_filters_reach_the_engine_in_order_and_unready_ones_are_named(tmp_path: Path) -> None:
    plan = plan_for(CONFIG, tmp_path)
    trainer = plan.process("trainer")
    assert trainer.argv[-2:] == ["trainer.logger=[console]", "x.seed=0"]
    assert any("later-filter" in n and "issue #99" in n for n in plan.notes)
    assert not any("ready-filter" in n for n in plan.notes)


def test_missing_master_key_is_a_note_and_never_a_value(tmp_path: Path) -> None:
    text = CONFIG + "proxy: {master_key_env: MY_PROXY_KEY}\n"
    missing = plan_for(text, tmp_path)
    assert any("$MY_PROXY_KEY is not set" in n for n in missing.notes)
    present = plan_for(text, tmp_path, env={"MY_PROXY_KEY": "sk-very-secret"})
    assert not any("MY_PROXY_KEY is not set" in n for n in present.notes)
    proxy = present.process("litellm-proxy")
    assert proxy.env["LITELLM_MASTER_KEY"] == "${MY_PROXY_KEY}"
    assert "sk-very-secret" not in json.dumps(present.to_json())


def test_context_resolves_relative_paths_against_the_base_dir(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG, env={}, pm=fake_pm()).config
    ctx = PlanContext("r", tmp_path / "runs/r", tmp_path)
    assert ctx.resolve("models/m") == tmp_path / "models/m"
    assert ctx.resolve("/abs/m") == Path("/abs/m")
    assert ctx.venv_bin(cfg, "python") == str(tmp_path / ".venv/bin/python")


def test_mask_env_hides_secret_names_only() -> None:
    env = {"WANDB_API_KEY": "k", "HF_TOKEN": "t", "DB_PASSWORD": "p", "EMPTY_KEY": "", "PATH": "/b"}
    assert mask_env(env) == {
        "WANDB_API_KEY": MASK,
        "HF_TOKEN": MASK,
        "DB_PASSWORD": MASK,
        "EMPTY_KEY": "",
        "PATH": "/b",
    }


def test_to_json_masks_env_and_lists_files(tmp_path: Path) -> None:
    plan = plan_for(CONFIG, tmp_path)
    data = plan.to_json()
    proxy = next(p for p in data["processes"] if p["name"] == "litellm-proxy")
    assert proxy["env"]["LITELLM_MASTER_KEY"] == MASK
    assert proxy["command"].startswith(proxy["argv"][0])
    assert set(data["files"]) == set(plan.files)
    assert str(tmp_path / "out/demo-1/config.yaml") in data["generated"]


def test_render_prints_arguments_verbatim_and_uncut(tmp_path: Path) -> None:
    long_model = "models/" + "m" * 150
    plan = plan_for(CONFIG.replace("models/m", long_model), tmp_path)
    out = io.StringIO()
    plan.render(Console(file=out, width=60, color_system=None))
    text = out.getvalue()
    assert "'trainer.logger=[console]'" in text  # rich markup did not eat the brackets
    assert str(tmp_path / long_model) in text  # not cropped at the console width
    assert "LITELLM_MASTER_KEY=***" in text
    assert "--host 127.0.0.1" in text  # an option and its value on one line
    assert "model_list:" in text  # the LiteLLM config is shown
