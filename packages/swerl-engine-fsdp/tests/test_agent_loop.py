"""swerl's verl agent loop on CPU: verl's own worker machinery, a fake verl server manager, a
fake sandbox that plays the agent over HTTP against the gateway the loop started.

The verl side is real: the config is verl's ``ppo_trainer`` composed with the overrides swerl
plans, the loop is registered from the ``agent_loop.yaml`` swerl writes and instantiated by
verl's ``AgentLoopWorker`` / ``AgentLoopWorkerTQ`` (V1), and outputs go through verl's own
postprocessing. TransferQueue is stubbed where it is not installed (only its put calls are
used); the server manager returns verl's ``TokenOutput``. The agent side is real too: the
gateway, the chat template of the tiny model, hermes tool calls, swerl's ``Rollout.run_one``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import sys
import threading
import types
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml

from swerl.components import AgentSpec, Sandbox, Scaffold, TrialInfo
from swerl.config.load import LoadedConfig, parse_config
from swerl.gateway.backend import BackendError, SamplingParams
from swerl.plan import PlanContext, build_plan
from swerl.plugins import PluginManager
from swerl.testing import free_ports, need
from swerl.testing.support import as_plugin
from swerl_engine_fsdp import routing
from swerl_engine_fsdp.taskdata import DATA_SOURCE, build_data_files, task_row

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "models" / "tiny-qwen2"
KEY_ENV = "LITELLM_MASTER_KEY"
KEY = "sk-test-agent-loop"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "Bash",
            "description": "Run a shell command.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]
TOOL_CALL = '<tool_call>\n{"name": "Bash", "arguments": {"command": "cat calc.py"}}\n</tool_call>'
FINAL = "Fixed: add now returns a + b."
TOOL_RESULT = "def add(a, b):\n    return a - b"


def logprob(token: int, position: int) -> float:
    return -(((token * 7919 + position * 104729) % 4000) + 1) / 1000.0


# -- verl, imported once ---------------------------------------------------------------------------


@dataclass
class TQ:
    """What the V1 worker put into TransferQueue."""

    status: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    keys: list[str] = field(default_factory=list)
    fields: list[Any] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)

    async def async_kv_put(self, key: str, partition_id: str, tag: dict[str, Any]) -> None:
        self.status[key].append(tag["status"])

    async def async_kv_batch_put(
        self, keys: list[str], fields: Any, tags: list[dict[str, Any]], partition_id: str
    ) -> None:
        self.keys += keys
        self.fields.append(fields)
        self.tags += tags


@pytest.fixture(scope="module")
def verl() -> Iterator[types.SimpleNamespace]:
    need(MODEL.joinpath("tokenizer_config.json").is_file(), f"no tiny model at {MODEL}")
    need(importlib.util.find_spec("verl") is not None, "verl is not installed")
    if importlib.util.find_spec("transfer_queue") is None:
        # verl[verl-core] brings TransferQueue; the CPU venv has none. The V1 worker only calls
        # init / async_kv_put / async_kv_batch_put here, which each test replaces.
        stub = types.ModuleType("transfer_queue")

        def missing(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {})

        stub.__getattr__ = missing  # type: ignore[method-assign]
        sys.modules["transfer_queue"] = stub
        stubbed = True
    else:
        stubbed = False
    import transfer_queue
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopWorker,
        DictConfigWrap,
        ToolListWrap,
    )
    from verl.trainer.ppo.v1 import agent_loop_tq
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.workers.rollout.replica import TokenOutput

    from swerl_engine_fsdp import agent_loop

    remote_cls: Any = agent_loop_tq.AgentLoopWorkerTQ
    yield types.SimpleNamespace(
        AgentLoopWorker=AgentLoopWorker,
        # the class under verl's @ray.remote, to run in this process
        AgentLoopWorkerTQ=remote_cls.__ray_metadata__.modified_class,
        DictConfigWrap=DictConfigWrap,
        ToolListWrap=ToolListWrap,
        RLHFDataset=RLHFDataset,
        TokenOutput=TokenOutput,
        tq=transfer_queue,
        agent_loop=agent_loop,
    )
    if stubbed:  # later test modules must not see the stand-in
        sys.modules.pop("transfer_queue", None)


@pytest.fixture(scope="module")
def tok(verl: types.SimpleNamespace) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL))


def encode(tok: Any, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


# -- the fake verl server manager ------------------------------------------------------------------


class FakeServerManager:
    """verl's LLMServerClient: call 1 of a trial answers with a tool call, later calls with a final
    answer; the weights advance one version per call (global_steps 3, 4, ...)."""

    def __init__(self, tok: Any, token_output: type, *, abort: bool = False) -> None:
        eos = tok.eos_token_id
        self.replies = [[*encode(tok, TOOL_CALL), eos], [*encode(tok, FINAL), eos]]
        self.token_output = token_output
        self.abort = abort
        self.requests: list[tuple[str, list[int], dict[str, Any]]] = []
        self.calls: dict[str, int] = defaultdict(int)

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        **kwargs: Any,
    ) -> Any:
        self.requests.append((request_id, list(prompt_ids), dict(sampling_params)))
        n = self.calls[request_id]
        self.calls[request_id] += 1
        if self.abort:
            return self.token_output(
                token_ids=[], stop_reason="aborted", extra_fields={"global_steps": 3}
            )
        ids = self.replies[min(n, len(self.replies) - 1)]
        return self.token_output(
            token_ids=ids,
            log_probs=[logprob(t, i) for i, t in enumerate(ids)],
            stop_reason="completed",
            num_preempted=0,
            extra_fields={"global_steps": 3 + n, "num_cached_tokens": 0},
        )


# -- a fake scaffold and a sandbox whose trials play the agent -------------------------------------


@dataclass
class Outcome:
    reward: float | None
    failure_cause: str | None = None
    failure_detail: str = ""
    timings: dict[str, float] = field(default_factory=lambda: {"agent_run": 0.1})
    result: Any = None


class FakeScaffold(Scaffold):
    name = "fake-agent"
    summary = "test agent"
    ready = frozenset({"run"})

    def agent(self, config: Any, trial: TrialInfo) -> AgentSpec:
        return AgentSpec(
            name="fake-agent",
            model_name=trial.served_name,
            env={"TRIAL": trial.trial_id, "API_KEY": trial.api_key, "MODEL_URL": trial.model_url},
        )


class PlayingRunner:
    """A sandbox whose trial is the agent: it talks to the model as claude-code would through the
    proxy, the proxy being the route table swerl's routing gives LiteLLM. The task folder says how
    the trial goes: ``reward`` (the verifier's), ``no-sandbox`` (the container never starts), and
    per session (``sessions.json``: ``{"<session>": {"reward": r, "cause": c, "play": bool}}``,
    the session read from the trial id ``<task>__<session>-<hex>``) a reward, a failure cause and
    whether the agent talked to the model at all."""

    routes: ClassVar[dict[str, str]] = {}  # model name -> api_base, as LiteLLM routes it
    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, run_id: str, run_dir: Path) -> None:
        self.run_id, self.run_dir = run_id, run_dir

    async def run_trial(self, task_dir: Path, agent: AgentSpec, *, trial_id: str | None = None):
        assert agent.env["API_KEY"] == KEY and agent.env["TRIAL"] == trial_id
        if (task_dir / "no-sandbox").exists():
            return Outcome(None, "sandbox_error", "the container did not start")
        sessions = task_dir / "sessions.json"
        if sessions.exists():
            session = str(trial_id).split("__")[1].split("-")[0]
            plan = json.loads(sessions.read_text()).get(session, {})
            if plan.get("play", True):
                await self.play(task_dir, agent)
            reward = plan.get("reward", float((task_dir / "reward").read_text()))
            return Outcome(reward, plan.get("cause"), plan.get("cause") or "")
        await self.play(task_dir, agent)
        return Outcome(float((task_dir / "reward").read_text()))

    async def play(self, task_dir: Path, agent: AgentSpec) -> None:
        """The agent's side: a tool call, its result, a final answer, through the proxy route."""
        import aiohttp

        base = self.routes[str(agent.model_name)]
        headers = {"X-Swerl-Trial": agent.env["TRIAL"]}
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You fix bugs."},
            {"role": "user", "content": (task_dir / "instruction.md").read_text()},
        ]
        body = {"model": agent.model_name, "tools": TOOLS, "max_tokens": 64}
        async with aiohttp.ClientSession() as http:
            for _ in range(4):
                async with http.post(
                    f"{base}/chat/completions", json={**body, "messages": messages}, headers=headers
                ) as resp:
                    data = await resp.json()
                    self.seen.append({"status": resp.status, "body": data, "base": base})
                if resp.status != 200:
                    break  # the agent gives up; the verifier still runs
                msg = data["choices"][0]["message"]
                calls = msg.get("tool_calls") or []
                if not calls:
                    break
                messages.append({"role": "assistant", "content": None, "tool_calls": calls})
                messages += [
                    {"role": "tool", "tool_call_id": c["id"], "content": TOOL_RESULT} for c in calls
                ]

    def cleanup(self) -> list[str]:
        return []


class FakeSandbox(Sandbox):
    name = "fake-sandbox"
    summary = "test sandbox"
    ready = frozenset({"run"})

    def runner(self, *, run_id: str, run_dir: Path) -> PlayingRunner:
        return PlayingRunner(run_id, run_dir)


def fake_pm() -> PluginManager:
    pm = PluginManager(env={"SWERL_LOAD_PLUGINS": "fsdp,trajectory"})
    pm.register_plugin(as_plugin(FakeScaffold, FakeSandbox), "fakes")
    return pm


# -- a planned run: config, run folder, verl's composed config -------------------------------------


def gateway_base(workers: int) -> int:
    """A port with ``workers`` free ports from it."""
    for _ in range(50):
        (base,) = free_ports(1)
        if base + workers < 65536 and all(routing_free(base + k) for k in range(workers)):
            return base
    raise RuntimeError("no free port range")


def routing_free(port: int) -> bool:
    from swerl_engine_fsdp.agent_loop import port_free

    return port_free(port)


def make_task(
    root: Path,
    name: str,
    *,
    reward: float = 1.0,
    no_sandbox: bool = False,
    sessions: dict[int, dict[str, Any]] | None = None,
) -> Path:
    task = root / name
    (task / "tests").mkdir(parents=True)
    (task / "task.toml").write_text('[environment]\ndocker_image = "swerl-base:latest"\n')
    (task / "instruction.md").write_text(f"Fix the bug in {name}: add subtracts.")
    (task / "tests" / "test.sh").write_text("exit 0\n")
    (task / "reward").write_text(str(reward))
    if no_sandbox:
        (task / "no-sandbox").write_text("")
    if sessions is not None:
        (task / "sessions.json").write_text(json.dumps({str(k): v for k, v in sessions.items()}))
    return task


@dataclass
class Run:
    loaded: LoadedConfig
    pm: PluginManager
    ctx: PlanContext
    run_dir: Path
    tasks: dict[str, Path]
    verl_cfg: Any
    agent_loop_yaml: Path


def plan_run(
    tmp_path: Path,
    *,
    workers: int = 2,
    response_length: int = 512,
    n_resp: int = 2,
    train_batch_size: int = 2,
    filters: list[Any] | None = None,
    sessions: dict[str, dict[int, dict[str, Any]]] | None = None,
) -> Run:
    """Plan a fsdp run of swerl on fake components, write the files swerl writes (config.yaml,
    agent_loop.yaml, the parquet) and compose verl's config from the planned command line.
    ``sessions``: more tasks, each with its per-session outcomes (see ``PlayingRunner``)."""
    from hydra import compose, initialize_config_dir

    tasks_root = tmp_path / "tasks"
    tasks = {
        "fix-add": make_task(tasks_root, "fix-add", reward=1.0),
        "fix-zero": make_task(tasks_root, "fix-zero", reward=0.0),
        "no-box": make_task(tasks_root, "no-box", no_sandbox=True),
    }
    for name, plan_ in (sessions or {}).items():
        tasks[name] = make_task(tasks_root, name, sessions=plan_)
    base = gateway_base(workers)
    proxy, policy = [p for p in free_ports(8) if not base <= p < base + workers][:2]
    text = yaml.safe_dump(
        {
            "model": {"path": str(MODEL), "served_name": "policy"},
            "tasks": {"path": str(tasks_root)},
            "scaffold": {"name": "fake-agent"},
            "sandbox": {"name": "fake-sandbox"},
            "engine": {"name": "fsdp", "options": {"agent_num_workers": workers}},
            "rollout": {
                "max_prompt_length": 1024,
                "max_response_length": response_length,
                "max_concurrent_samples": 4,
            },
            "algorithm": {"train_batch_size": train_batch_size, "n_resp": n_resp},
            "ports": {"proxy": proxy, "gateway": base, "policy": policy},
            "filters": filters or [],
        }
    )
    pm = fake_pm()
    loaded = parse_config(text, source="run.yaml", env={}, pm=pm)
    plan = build_plan(loaded, pm, run_id="verl-loop-test", env={}, base_dir=tmp_path)
    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True)
    # What swerl's launcher writes (swerl.launch.prepare_run, then each process's files).
    (run_dir / "config.yaml").write_text(yaml.safe_dump(loaded.resolved(), sort_keys=False))
    for path, content in plan.files.items():
        Path(path).write_text(content)
    ctx = PlanContext(plan.run_id, run_dir, tmp_path, {})
    build_data_files(loaded, ctx)
    (verl_proc,) = [p for p in plan.processes if p.name == "verl-trainer"]
    assert verl_proc.argv[1:3] == ["-m", "verl.trainer.main_ppo"]
    spec = importlib.util.find_spec("verl")
    assert spec is not None and spec.origin
    config_dir = Path(spec.origin).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        cfg = compose("ppo_trainer", overrides=verl_proc.argv[3:])
    PlayingRunner.routes = {
        m["model_name"]: m["litellm_params"]["api_base"]
        for m in routing.litellm_config_for_workers(loaded.config, workers)["model_list"]
    }
    PlayingRunner.seen = []
    return Run(loaded, pm, ctx, run_dir, tasks, cfg, run_dir / "agent_loop.yaml")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, verl: types.SimpleNamespace) -> pytest.MonkeyPatch:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("SWERL_RUN_DIR", raising=False)  # found from agent_loop_config_path
    monkeypatch.setattr(verl.agent_loop, "plugin_manager", fake_pm)
    return monkeypatch


def run_async(make: Callable[[], Coroutine[Any, Any, Any]], verl: types.SimpleNamespace) -> Any:
    """Run a scenario, then stop the worker's gateway inside the same loop."""

    async def scenario() -> Any:
        try:
            return await make()
        finally:
            await verl.agent_loop.shutdown_worker_gateway()

    return asyncio.run(scenario())


def make_loop(verl: types.SimpleNamespace, run: Run, manager: Any, tok: Any) -> Any:
    """The agent loop as verl builds one per trajectory (AgentLoopWorker._run_agent_loop)."""
    import hydra
    from omegaconf import OmegaConf

    entries: Any = OmegaConf.load(run.agent_loop_yaml)
    registry = {e.name: e for e in entries}
    return hydra.utils.instantiate(
        config=registry["swerl_agent"],
        trainer_config=verl.DictConfigWrap(config=run.verl_cfg),
        server_manager=manager,
        tokenizer=tok,
        processor=None,
        hf_model_type="qwen2",
        dataset_cls=verl.RLHFDataset,
        data_config=verl.DictConfigWrap(run.verl_cfg.data),
        tools=verl.ToolListWrap([]),
    )


def dataset_rows(verl: types.SimpleNamespace, run: Run, tok: Any) -> dict[str, dict[str, Any]]:
    """The train parquet as verl's RLHFDataset hands its rows to the agent loop, by task."""
    ds = verl.RLHFDataset(
        data_files=[str(run.run_dir / "data" / "train.parquet")],
        tokenizer=tok,
        config=run.verl_cfg.data,
    )
    rows = [ds[i] for i in range(len(ds))]
    return {r["extra_info"]["task"]: r for r in rows}


def expected_sample(tok: Any, instruction: str) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, response ids, mask) of a trial: tool call, tool result, final answer."""
    eos = tok.eos_token_id
    r1, r2 = [*encode(tok, TOOL_CALL), eos], [*encode(tok, FINAL), eos]
    prompt = encode(
        tok,
        tok.apply_chat_template(
            [
                {"role": "system", "content": "You fix bugs."},
                {"role": "user", "content": instruction},
            ],
            tools=TOOLS,
            add_generation_prompt=True,
            tokenize=False,
        ),
    )
    obs = encode(
        tok,
        f"\n<|im_start|>user\n<tool_response>\n{TOOL_RESULT}\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n",
    )
    return prompt, r1 + obs + r2, [1] * len(r1) + [0] * len(obs) + [1] * len(r2)


# -- the backend alone -----------------------------------------------------------------------------


def test_backend_maps_verl_token_output(verl: types.SimpleNamespace, tok: Any) -> None:
    from swerl_engine_fsdp.verl_backend import VerlBackend

    async def scenario() -> None:
        manager = FakeServerManager(tok, verl.TokenOutput)
        backend = VerlBackend(stop_ids={tok.eos_token_id})
        with pytest.raises(BackendError) as info:
            await backend.generate([1, 2], SamplingParams(max_tokens=8), session="t-1")
        assert info.value.cause == "unknown_session" and info.value.status == 404

        backend.open_trial("t-1", manager, {"temperature": 0.0, "top_p": 1.0, "top_k": -1})
        gen = await backend.generate(
            [1, 2], SamplingParams(max_tokens=64, temperature=0.7), session="t-1"
        )
        ids = manager.replies[0]
        assert gen.token_ids == ids and gen.finish_reason == "stop"
        assert gen.logprobs == [logprob(t, i) for i, t in enumerate(ids)]
        assert gen.info["extra_fields"]["global_steps"] == 3
        request_id, prompt, params = manager.requests[0]
        # sticky routing by trial; verl's (greedy) parameters win; the gateway sets the budget
        assert request_id == "t-1" and prompt == [1, 2]
        assert params == {
            "temperature": 0.0,
            "top_p": 1.0,
            "top_k": -1,
            "max_tokens": 64,
            "logprobs": True,
        }
        # a completed call that used its whole budget without a stop id ran out of tokens
        assert backend.finish_reason([5, 6], "completed", 2) == "length"
        assert backend.finish_reason([5, tok.eos_token_id], "completed", 2) == "stop"
        assert backend.finish_reason([5], "length", 8) == "length"
        trial = backend.close_trial("t-1")
        assert trial is not None and [c.extra_fields["global_steps"] for c in trial.calls] == [3]

        backend.open_trial("t-2", FakeServerManager(tok, verl.TokenOutput, abort=True))
        with pytest.raises(BackendError) as info:
            await backend.generate([1], SamplingParams(max_tokens=8), session="t-2")
        assert info.value.cause == "backend_aborted" and info.value.status == 503
        assert "aborted" in str(info.value)

        class NoLogprobs(FakeServerManager):
            async def generate(self, request_id: str, **kw: Any) -> Any:
                out = await super().generate(request_id, **kw)
                return out.model_copy(update={"log_probs": None})

        backend.open_trial("t-3", NoLogprobs(tok, verl.TokenOutput))
        with pytest.raises(BackendError, match="calculate_log_probs"):
            await backend.generate([1], SamplingParams(max_tokens=8), session="t-3")

    asyncio.run(scenario())


def test_routes_give_each_worker_its_own_alias_and_port(tmp_path: Path) -> None:
    text = yaml.safe_dump(
        {
            "model": {"path": "m", "served_name": "policy"},
            "tasks": {"path": "t"},
            "scaffold": {"name": "fake-agent"},
            "sandbox": {"name": "fake-sandbox"},
            "engine": {"name": "fsdp"},
            "ports": {"proxy": 8002, "gateway": 8003, "policy": 8004},
        }
    )
    config = parse_config(text, env={}, pm=fake_pm()).config
    assert routing.gateway_routes(config, 3) == {
        "policy": 8003,
        "policy-w1": 8004,
        "policy-w2": 8005,
    }
    models = routing.litellm_config_for_workers(config, 3)["model_list"]
    names = [m["model_name"] for m in models]
    # the core's routes stay first (served name and claude-* to worker 0), then one per worker
    assert names == ["policy", "claude-*", "policy-w1", "policy-w2"]
    assert models[3]["litellm_params"]["api_base"] == "http://127.0.0.1:8005/v1"
    assert models[3]["litellm_params"]["model"] == "hosted_vllm/policy-w2"
    assert models[3]["litellm_params"]["additional_drop_params"]
    assert routing.port_range_problem(config, 3) is None
    low = config.model_copy(update={"ports": config.ports.model_copy(update={"gateway": 8000})})
    assert "8002" in str(routing.port_range_problem(low, 8))


# -- the dataset -----------------------------------------------------------------------------------


def test_parquet_rows_are_what_verl_hands_the_loop(
    tmp_path: Path, verl: types.SimpleNamespace, tok: Any
) -> None:
    run = plan_run(tmp_path)
    rows = dataset_rows(verl, run, tok)
    assert set(rows) == {"fix-add", "fix-zero", "no-box"}
    row = rows["fix-add"]
    assert row["agent_name"] == "swerl_agent" and row["data_source"] == DATA_SOURCE
    assert row["extra_info"]["task_dir"] == str(run.tasks["fix-add"].resolve())
    assert row["raw_prompt"] == [
        {"role": "user", "content": "Fix the bug in fix-add: add subtracts."}
    ]
    assert row["reward_model"]["ground_truth"] == "fix-add"
    assert (run.run_dir / "data" / "val.parquet").is_file()
    assert task_row(run.tasks["fix-add"], 0)["extra_info"]["index"] == 0


# -- the loop --------------------------------------------------------------------------------------


def test_agent_loop_yaml_instantiates_the_loop_as_verl_does(
    tmp_path: Path, env: pytest.MonkeyPatch, verl: types.SimpleNamespace, tok: Any
) -> None:
    run = plan_run(tmp_path)
    loop = make_loop(verl, run, FakeServerManager(tok, verl.TokenOutput), tok)
    assert type(loop) is verl.agent_loop.SwerlAgentLoop
    assert loop.returns_list  # main_ppo's V1 trainer
    # verl's own worker registers the loop from the file swerl plans
    worker = verl.AgentLoopWorker(run.verl_cfg, FakeServerManager(tok, verl.TokenOutput))
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

    assert _agent_loop_registry["swerl_agent"]["_target_"] == (
        "swerl_engine_fsdp.agent_loop.SwerlAgentLoop"
    )
    assert worker.rollout_config.agent.default_agent_loop == "swerl_agent"


def test_a_trial_becomes_verl_outputs_with_exact_masks_and_logprobs(
    tmp_path: Path, env: pytest.MonkeyPatch, verl: types.SimpleNamespace, tok: Any
) -> None:
    run = plan_run(tmp_path)
    rows = dataset_rows(verl, run, tok)
    manager = FakeServerManager(tok, verl.TokenOutput)
    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True}

    async def scenario() -> Any:
        loop = make_loop(verl, run, manager, tok)
        return await loop.run(sampling, session_id=1, **rows["fix-add"])

    outputs = run_async(scenario, verl)
    (out,) = outputs
    prompt, response, mask = expected_sample(tok, "Fix the bug in fix-add: add subtracts.")
    assert out.prompt_ids == prompt
    assert out.response_ids == response
    assert out.response_mask == mask  # 1 exactly on sampled ids, 0 on the tool result
    sampled = manager.replies[0] + manager.replies[1]
    assert [t for t, m in zip(out.response_ids, mask, strict=True) if m] == sampled
    expected_lps = [logprob(t, i) for r in manager.replies for i, t in enumerate(r)]
    assert [lp for lp, m in zip(out.response_logprobs, mask, strict=True) if m] == expected_lps
    assert all(lp == 0.0 for lp, m in zip(out.response_logprobs, mask, strict=True) if not m)
    assert out.reward_score == 1.0
    assert out.num_turns == 4
    ex = out.extra_fields
    assert set(ex) == set(verl.agent_loop.EXTRA_KEYS)
    assert (ex["global_steps"], ex["min_global_steps"], ex["max_global_steps"]) == (3, 3, 4)
    assert ex["reward_extra_info"] == {"reward": 1.0}
    assert ex["swerl_task"] == "fix-add" and ex["swerl_failure_cause"] is None
    assert ex["swerl_truncated"] is False and ex["swerl_exactness"] == 1.0
    assert ex["swerl_trial_id"].startswith("fix-add__1-")
    # every call of the trial went to verl under the trial id (sticky), with verl's sampling
    assert {r[0] for r in manager.requests} == {ex["swerl_trial_id"]}
    assert all(r[2]["logprobs"] is True and r[2]["top_k"] == -1 for r in manager.requests)
    # the agent reached the gateway through the route of the worker that ran it
    assert {s["base"] for s in PlayingRunner.seen} == {PlayingRunner.routes[ex["swerl_worker"]]}
    # the trial's records are on disk like every swerl rollout's
    (traj,) = (run.run_dir / "trajectories").glob("verl_w*.jsonl")
    rec = json.loads(traj.read_text().splitlines()[0])
    assert rec["trial_id"] == ex["swerl_trial_id"] and rec["reward"] == 1.0


def test_trials_without_reward_or_tokens_are_dropped(
    tmp_path: Path, env: pytest.MonkeyPatch, verl: types.SimpleNamespace, tok: Any, caplog: Any
) -> None:
    run = plan_run(tmp_path)
    rows = dataset_rows(verl, run, tok)
    sampling = {"temperature": 1.0, "top_p": 1.0, "logprobs": True}

    async def scenario() -> tuple[Any, Any]:
        no_box = await make_loop(verl, run, FakeServerManager(tok, verl.TokenOutput), tok).run(
            sampling, **rows["no-box"]
        )
        aborting = FakeServerManager(tok, verl.TokenOutput, abort=True)
        aborted = await make_loop(verl, run, aborting, tok).run(sampling, **rows["fix-zero"])
        return no_box, aborted

    with caplog.at_level("WARNING", logger="swerl.agent_loop"):
        no_box, aborted = run_async(scenario, verl)
    assert no_box == [] and aborted == []
    text = caplog.text
    assert "no-box__0" in text and "sandbox_error" in text
    # the agent saw the abort as a retryable error; the trial had nothing to train on
    assert "no sampled tokens" in text and "policy_error" in text
    assert any(s["status"] == 503 for s in PlayingRunner.seen)


def test_long_responses_are_truncated_to_the_rollout_length(
    tmp_path: Path, env: pytest.MonkeyPatch, verl: types.SimpleNamespace, tok: Any
) -> None:
    run = plan_run(tmp_path, response_length=16)
    rows = dataset_rows(verl, run, tok)

    async def scenario() -> Any:
        loop = make_loop(verl, run, RoutingServerManager(tok, verl.TokenOutput), tok)
        return await loop.run({"temperature": 1.0, "logprobs": True}, **rows["fix-add"])

    (out,) = run_async(scenario, verl)
    prompt, response, mask = expected_sample(tok, "Fix the bug in fix-add: add subtracts.")
    assert len(out.response_ids) == len(out.response_mask) == len(out.response_logprobs) == 16
    assert out.response_ids == response[:16] and out.response_mask == mask[:16]
    # R3 routes are cut with the response (verl refuses routes longer than the sequence)
    assert out.routed_experts.tolist() == route_rows(prompt + response[:16]).tolist()
    assert out.extra_fields["swerl_truncated"] is True
    assert out.extra_fields["swerl_response_length"] == len(response)


def test_verl_v1_worker_runs_the_loop_and_stores_its_outputs(
    tmp_path: Path, env: pytest.MonkeyPatch, verl: types.SimpleNamespace, tok: Any
) -> None:
    """verl's AgentLoopWorkerTQ: rollout.n sessions per prompt through swerl's loop, then verl's
    own postprocessing into TransferQueue (rm_scores, rollout_log_probs, staleness tags)."""
    run = plan_run(tmp_path, n_resp=2)
    rows = dataset_rows(verl, run, tok)
    manager = FakeServerManager(tok, verl.TokenOutput)
    tq = TQ()
    env.setattr(verl.tq, "init", lambda *a, **k: None, raising=False)
    env.setattr(verl.tq, "async_kv_put", tq.async_kv_put, raising=False)
    env.setattr(verl.tq, "async_kv_batch_put", tq.async_kv_batch_put, raising=False)

    async def scenario() -> None:
        worker = verl.AgentLoopWorkerTQ(run.verl_cfg, manager)
        sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True}
        for uid, task in (("u-add", "fix-add"), ("u-box", "no-box")):
            prompt = {**rows[task], "uid": uid, "global_steps": 3}
            trajectory = {"step": 3, "sample_index": 0, "rollout_n": 0, "validate": False}
            await worker._run_prompt(prompt, sampling, trajectory=trajectory)

    run_async(scenario, verl)
    assert tq.status["u-add"] == ["running", "finished"]
    # a dropped session is no failure: the group keeps its other sessions (here: none)
    assert tq.status["u-box"] == ["running", "finished"]
    assert sorted(tq.keys) == ["u-add_0_0", "u-add_1_0"]
    prompt, response, mask = expected_sample(tok, "Fix the bug in fix-add: add subtracts.")
    for fields, tag in zip(tq.fields, tq.tags, strict=True):
        assert tag["status"] == "success" and tag["global_steps"] == 3
        assert (tag["min_global_steps"], tag["max_global_steps"]) == (3, 4)
        assert tag["response_len"] == len(response)
        assert fields["prompts"][0].tolist() == prompt
        assert fields["responses"][0].tolist() == response
        assert fields["response_mask"][0].tolist() == mask
        assert fields["loss_mask"][0].tolist() == mask
        rm = fields["rm_scores"][0].tolist()
        assert rm[-1] == 1.0 and not any(rm[:-1])  # the reward on the last response token
        lps = fields["rollout_log_probs"][0].tolist()
        sampled = [lp for lp, m in zip(lps, mask, strict=True) if m]
        expected = [logprob(t, i) for r in manager.replies for i, t in enumerate(r)]
        assert sampled == pytest.approx(expected, abs=1e-6)  # float32 in verl's tensors
        extra = fields["extra_fields"][0]
        assert extra["reward_extra_info"] == {"reward": 1.0}
        assert fields["input_ids"][0].tolist() == prompt + response


def test_verl_padding_postprocess_puts_the_reward_on_the_last_token(
    tmp_path: Path, env: pytest.MonkeyPatch, verl: types.SimpleNamespace, tok: Any
) -> None:
    """verl's padded batch (AgentLoopWorker._agent_loop_postprocess + _postprocess)."""
    run = plan_run(tmp_path)
    rows = dataset_rows(verl, run, tok)
    manager = FakeServerManager(tok, verl.TokenOutput)

    async def scenario() -> Any:
        worker = verl.AgentLoopWorker(run.verl_cfg, manager)
        sampling = {"temperature": 1.0, "top_p": 1.0, "logprobs": True}
        internal = []
        for task in ("fix-add", "fix-zero"):
            loop = make_loop(verl, run, manager, tok)
            (out,) = await loop.run(sampling, **rows[task])
            internal.append(await worker._agent_loop_postprocess(out, False, **rows[task]))
        return worker._postprocess(internal)

    batch = run_async(scenario, verl)
    _, response, mask = expected_sample(tok, "Fix the bug in fix-add: add subtracts.")
    n = len(response)
    width = int(run.verl_cfg.actor_rollout_ref.rollout.response_length)
    assert batch.batch["responses"].shape == (2, width)
    rm = batch.batch["rm_scores"]
    assert rm[0, n - 1].item() == 1.0 and rm[0].sum().item() == 1.0
    assert rm[1].sum().item() == 0.0  # fix-zero: reward 0
    assert batch.batch["response_mask"][0, :n].tolist() == mask
    assert not batch.batch["response_mask"][0, n:].any()
    lps = batch.batch["rollout_log_probs"][0, :n].tolist()
    expected = [logprob(t, i) for r in manager.replies for i, t in enumerate(r)]
    assert [lp for lp, m in zip(lps, mask, strict=True) if m] == pytest.approx(expected, abs=1e-6)
    assert list(batch.non_tensor_batch["reward"]) == [1.0, 0.0]  # reward_extra_info
    assert list(batch.non_tensor_batch["min_global_steps"]) == [3, 3]
    assert list(batch.non_tensor_batch["swerl_task"]) == ["fix-add", "fix-zero"]


class RoutingServerManager(FakeServerManager):
    """With rollout router replay (R3): vLLM also returns the experts it chose for every token it
    ran (the prompt and every sampled id but the last), ``[tokens, layers, top_k]``. Here a row
    encodes its token, so that a test can tell which positions a route belongs to."""

    async def generate(self, request_id: str, **kwargs: Any) -> Any:
        out = await super().generate(request_id, **kwargs)
        seq = [*kwargs["prompt_ids"], *out.token_ids][:-1]
        out.routed_experts = route_rows(seq)
        return out


def route_rows(ids: list[int]) -> Any:
    import numpy as np

    return np.array([[[t % 8, (t + 1) % 8], [(t + 2) % 8, (t + 3) % 8]] for t in ids], np.int32)


def test_router_replay_routes_reach_verl_at_their_positions(
    tmp_path: Path, env: pytest.MonkeyPatch, verl: types.SimpleNamespace, tok: Any
) -> None:
    """R3: each sample carries the routes of the trial's last call (they cover every earlier
    call's tokens too), and verl's postprocessing puts them at the tokens' absolute positions."""
    run = plan_run(tmp_path)
    rows = dataset_rows(verl, run, tok)
    manager = RoutingServerManager(tok, verl.TokenOutput)

    async def scenario() -> tuple[Any, Any]:
        loop = make_loop(verl, run, manager, tok)
        (out,) = await loop.run({"temperature": 1.0, "logprobs": True}, **rows["fix-add"])
        worker = verl.AgentLoopWorker(run.verl_cfg, manager)
        return out, await worker._agent_loop_postprocess(out, False, **rows["fix-add"])

    out, internal = run_async(scenario, verl)
    prompt, response, _ = expected_sample(tok, "Fix the bug in fix-add: add subtracts.")
    seq = prompt + response
    # the last call ran everything but its own last sampled id
    assert out.routed_experts.tolist() == route_rows(seq[:-1]).tolist()
    routed = internal.routed_experts  # [1, padded prompt + response_length, layers, top_k]
    width = int(run.verl_cfg.actor_rollout_ref.rollout.response_length)
    pad = routed.shape[1] - width - len(prompt)  # verl pads prompts on the left
    assert routed.shape == (1, pad + len(prompt) + width, 2, 2)
    assert routed[0, pad : pad + len(seq) - 1].tolist() == route_rows(seq[:-1]).tolist()
    assert not routed[0, :pad].any() and not routed[0, pad + len(seq) - 1 :].any()


def test_a_call_drops_the_routes_its_prompt_covers() -> None:
    """Routes are big: each trial keeps only the routes no later call covers."""
    from swerl_engine_fsdp.verl_backend import CallRecord, TrialCalls, routes_for

    trial = TrialCalls(server_manager=None, sampling={})  # type: ignore[arg-type]

    def call(prompt: list[int], ids: list[int]) -> CallRecord:
        seq = [*prompt, *ids]
        return CallRecord(ids, "completed", 0, {}, sequence=seq, routes=route_rows(seq[:-1]))

    trial.add(call([1, 2], [3, 4]))
    trial.add(call([9], [8]))  # a side call (another segment): kept
    trial.add(call([1, 2, 3, 4, 5], [6, 7]))  # extends the first
    assert [c.routes is not None for c in trial.calls] == [False, True, True]
    assert (
        routes_for(trial.calls, [1, 2, 3, 4, 5, 6, 7]).tolist()
        == route_rows([1, 2, 3, 4, 5, 6]).tolist()
    )
    assert routes_for(trial.calls, [9, 8]).tolist() == route_rows([9]).tolist()
    assert routes_for(trial.calls, [1, 2, 3]) is None  # no call's ids start this sample
    # a response cut to the rollout's length: the whole sample finds the call, the rows are cut
    assert (
        routes_for(trial.calls, [1, 2, 3, 4, 5, 6, 7], 4).tolist()
        == route_rows([1, 2, 3, 4]).tolist()
    )


# -- the trajectory filter on verl's V1 path -------------------------------------------------------
#
# swerl's agent loop under verl's own AgentLoopWorkerTQ, the trajectory filter's sampler built by
# verl's own trainer code from the planned trainer.v1.sampler.custom_sampler, and verl's own
# _compute_advantage (GRPO through compute_grpo_outcome_advantage) on the batch it returns.
# TransferQueue is not installed here: MemoryTQ keeps keys, merged tags and per-row fields in
# memory behind the calls verl and swerl make, and returns rows as TransferQueue does (TensorDicts,
# jagged sequences).

N = 3
FILTERS = [
    {
        "name": "trajectory",
        "options": {"infra_failure": "drop", "agent_failure": "mask", "min_valid_per_group": 2},
    }
]
SESSIONS = {
    # one infra failure (the sandbox broke; its verifier still said 0): dropped by the loop
    "mixed": {0: {"reward": 1.0}, 1: {"reward": 0.0}, 2: {"reward": 0.0, "cause": "sandbox_error"}},
    # the agent crashed after talking to the model (reward 1): masked
    "masked": {0: {"reward": 1.0}, 1: {"reward": 0.0}, 2: {"reward": 1.0, "cause": "agent_error"}},
    # two infra failures leave one valid trial: below min_valid_per_group=2, the group goes
    "fragile": {
        0: {"reward": 1.0},
        1: {"reward": 0.0, "cause": "sandbox_error", "play": False},
        2: {"reward": 0.0, "cause": "sandbox_error", "play": False},
    },
    # what verl refills the dropped group with
    "steady": {0: {"reward": 1.0}, 1: {"reward": 0.0}, 2: {"reward": 0.0}},
}
EPS = 1e-6  # verl's GRPO epsilon


@dataclass
class KVBatchMeta:
    """transfer_queue.KVBatchMeta as verl's trainer uses it."""

    keys: list[str]
    tags: list[dict[str, Any]]
    partition_id: str
    fields: Any = None
    extra_info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)


class MemoryTQ:
    """TransferQueue's KV interface in memory: tags merge, fields are stored per row."""

    KVBatchMeta = KVBatchMeta

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, dict[str, Any]]] = {}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def init(self, *args: Any, **kwargs: Any) -> None:
        pass

    def kv_batch_put(
        self,
        keys: list[str],
        partition_id: str,
        fields: Any = None,
        tags: list[dict[str, Any]] | None = None,
    ) -> KVBatchMeta:
        from tensordict import NonTensorStack

        with self.lock:
            for i, key in enumerate(keys):
                self.tags.setdefault(partition_id, {}).setdefault(key, {})
                if tags is not None:
                    self.tags[partition_id][key].update(tags[i])
            if fields is not None:
                for name in fields.keys():  # noqa: SIM118  (iterating a TensorDict yields rows)
                    value = fields.get(name)
                    if isinstance(value, NonTensorStack):
                        column = value.tolist()
                    elif isinstance(value, torch.Tensor):
                        column = list(value.unbind(0))
                    else:  # NonTensorData: one value for every row
                        column = [value.data] * len(keys)
                    for key, v in zip(keys, column, strict=True):
                        self.rows.setdefault(partition_id, {}).setdefault(key, {})[name] = v
        return KVBatchMeta(keys, [self.tags[partition_id][k] for k in keys], partition_id)

    def kv_put(self, key: str, partition_id: str, fields: Any = None, tag: Any = None) -> None:
        self.kv_batch_put([key], partition_id, None, [tag or {}])

    def kv_list(self, partition_id: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        with self.lock:
            return {p: {k: dict(t) for k, t in keys.items()} for p, keys in self.tags.items()}

    def kv_clear(self, keys: list[str] | str, partition_id: str) -> None:
        with self.lock:
            for key in [keys] if isinstance(keys, str) else keys:
                self.tags.get(partition_id, {}).pop(key, None)
                self.rows.get(partition_id, {}).pop(key, None)

    def kv_batch_get(
        self, keys: list[str], partition_id: str, select_fields: list[str] | None = None
    ) -> Any:
        """Rows as one TensorDict: 1-d tensors jagged, other tensors stacked, the rest
        NonTensorStack; a selected field no row has is left out."""
        from tensordict import NonTensorStack, TensorDict

        rows = [self.rows[partition_id][k] for k in keys]
        names = select_fields or list(rows[0])
        out: dict[str, Any] = {}
        for name in names:
            if name not in rows[0]:
                continue
            column = [r[name] for r in rows]
            if isinstance(column[0], torch.Tensor) and column[0].dim() == 1:
                out[name] = torch.nested.as_nested_tensor(column, layout=torch.jagged)
            elif isinstance(column[0], torch.Tensor):
                out[name] = torch.stack(column)
            else:
                out[name] = NonTensorStack(*column)
        return TensorDict(out, batch_size=[len(keys)])

    async def async_kv_put(self, key: str, partition_id: str, fields: Any = None, tag: Any = None):
        self.kv_put(key, partition_id, fields, tag)

    async def async_kv_batch_put(self, keys, partition_id, fields=None, tags=None):  # type: ignore[no-untyped-def]
        return self.kv_batch_put(keys, partition_id, fields, tags)


@pytest.fixture
def memory_tq(env: pytest.MonkeyPatch, verl: types.SimpleNamespace) -> MemoryTQ:
    """One MemoryTQ behind every module that talks to TransferQueue."""
    import sys

    from verl.trainer.ppo.v1 import agent_loop_tq, replay_buffer, trainer_base

    tq = MemoryTQ()
    module = types.ModuleType("transfer_queue")
    for name in ("init", "kv_batch_put", "kv_put", "kv_list", "kv_clear", "kv_batch_get"):
        setattr(module, name, getattr(tq, name))
    module.async_kv_put = tq.async_kv_put  # type: ignore[attr-defined]
    module.async_kv_batch_put = tq.async_kv_batch_put  # type: ignore[attr-defined]
    module.KVBatchMeta = KVBatchMeta  # type: ignore[attr-defined]
    env.setitem(sys.modules, "transfer_queue", module)
    from swerl_filter_trajectory import verl_sampler

    for mod in (agent_loop_tq, replay_buffer, trainer_base, verl_sampler):
        env.setattr(mod, "tq", module)
    env.setattr(replay_buffer, "KVBatchMeta", KVBatchMeta)
    return tq


def grpo(reward: float, rewards: list[float]) -> float:
    """GRPO advantage by hand: (r - mean) / (unbiased std + eps) over the group's rewards."""
    mean = sum(rewards) / len(rewards)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))
    return (reward - mean) / (std + EPS)


def test_trajectory_filter_on_verl_v1_groups_masks_and_metrics(
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    verl: types.SimpleNamespace,
    tok: Any,
    memory_tq: MemoryTQ,
) -> None:
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    from swerl_engine_fsdp.agent_loop import TRIAL_TAG
    from swerl_filter_trajectory import verl_groups

    assert verl_groups.TRIAL_TAG == TRIAL_TAG  # the contract between loop and sampler

    run = plan_run(tmp_path, n_resp=N, train_batch_size=3, filters=FILTERS, sessions=SESSIONS)
    cfg = run.verl_cfg
    # the plan put the sampler and its options into verl's own config
    sampler_cfg = cfg.trainer.v1.sampler
    assert sampler_cfg.custom_sampler.path == "pkg://swerl_filter_trajectory.verl_sampler"
    assert sampler_cfg.custom_sampler.name == "TrajectoryReplayBuffer"
    assert dict(sampler_cfg.sampler_kwargs) == {
        "min_valid_per_group": 2,
        "drop_uniform_groups": False,
    }
    assert cfg.data.gen_batch_size == 1
    rows = dataset_rows(verl, run, tok)
    manager = FakeServerManager(tok, verl.TokenOutput)
    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True}
    refills: list[int] = []
    uids = {"u-mixed": "mixed", "u-masked": "masked", "u-fragile": "fragile"}

    async def scenario() -> tuple[Any, dict[str, Any]]:
        worker = verl.AgentLoopWorkerTQ(cfg, manager)
        loop = asyncio.get_running_loop()

        async def submit(uid: str, task: str) -> None:
            """What verl's trainer does with a prompt: register it, then roll it out."""
            tag = {"is_prompt": True, "status": "pending", "global_steps": 1}
            memory_tq.kv_batch_put([uid], "train", None, [tag])
            prompt = {**rows[task], "uid": uid, "global_steps": 1}
            trajectory = {"step": 1, "sample_index": 0, "rollout_n": 0, "validate": False}
            await worker._run_prompt(prompt, sampling, trajectory=trajectory)

        await asyncio.gather(*(submit(uid, task) for uid, task in uids.items()))

        def refill(k: int) -> int:  # verl's _add_prompts_to_generate, from the sampler's thread
            refills.append(k)
            for i in range(k):
                asyncio.run_coroutine_threadsafe(submit(f"u-steady{i}", "steady"), loop).result()
            return k

        trainer = types.SimpleNamespace(
            config=cfg, trainer_mode="sync", _add_prompts_to_generate=refill
        )
        # verl's own construction from trainer.v1.sampler.custom_sampler (pkg:// import)
        sampler = PPOTrainer._build_replay_buffer(trainer)  # type: ignore[arg-type]
        assert type(sampler).__name__ == "TrajectoryReplayBuffer"
        return await asyncio.to_thread(sampler.sample, 1, "train", 3)

    batch, metrics = run_async(scenario, verl)

    # -- what the agent loop wrote: one tag per session on each prompt, rows for kept trials
    assert refills == [1]  # the fragile group was replaced by one fresh prompt
    keys = sorted(batch.keys)
    assert keys == [
        "u-masked_0_0",
        "u-masked_1_0",
        "u-masked_2_0",
        "u-mixed_0_0",
        "u-mixed_1_0",
        "u-steady0_0_0",
        "u-steady0_1_0",
        "u-steady0_2_0",
    ]
    assert not any(k.startswith("u-fragile") for k in memory_tq.rows["train"])  # evicted
    train = memory_tq.rows["train"]
    masked = train["u-masked_2_0"]
    assert not masked["response_mask"].any() and masked["response_mask"].numel() > 0
    assert masked["rm_scores"][-1].item() == 1.0  # its reward is still in the row
    assert masked["uid"] == "u-masked-masked-2"  # a one-row GRPO group
    assert masked["extra_fields"]["swerl_train"] is False
    assert train["u-masked_0_0"]["uid"] == "u-masked"
    assert train["u-masked_0_0"]["response_mask"].any()

    # -- metrics verl logs for the step (the sampler's), over the 12 trials behind the batch
    tf = {k.removeprefix("trajectory_filter/"): v for k, v in metrics.items() if "trajectory" in k}
    assert tf == {
        "valid": 8.0,
        "infra_failure": 3.0,
        "agent_failure": 1.0,
        "fidelity_failure": 0.0,
        "truncated": 0.0,
        "invalid_ratio": pytest.approx(4 / 12),
        "infra_failed_rate": pytest.approx(3 / 12),
        "dropped_groups": 1.0,
        "dropped_trials": 4.0,  # three infra failures, then the fragile group's last trial
        "masked_trials": 1.0,
    }
    assert metrics["training/rollout_failure/evicted_samples"] == 1  # verl's own count

    # -- verl's own advantage step on that batch (old logprobs = the rollout's, as in bypass)
    for key in batch.keys:
        train[key]["old_log_probs"] = train[key]["rollout_log_probs"]
    step_metrics: dict[str, Any] = {}
    PPOTrainer._compute_advantage(types.SimpleNamespace(config=cfg), batch, step_metrics)  # type: ignore[arg-type]

    def advantage(key: str) -> float:
        adv, mask = train[key]["advantages"], train[key]["response_mask"]
        values = set(adv[mask.bool()].tolist())
        assert len(values) <= 1 and not adv[~mask.bool()].any()
        return values.pop() if values else 0.0

    pair = [1.0, 0.0]  # the infra failure (mixed) and the masked trial (masked) do not count
    assert advantage("u-mixed_0_0") == pytest.approx(grpo(1.0, pair), abs=1e-6)
    assert advantage("u-mixed_1_0") == pytest.approx(grpo(0.0, pair), abs=1e-6)
    assert advantage("u-masked_0_0") == pytest.approx(grpo(1.0, pair), abs=1e-6)
    assert advantage("u-masked_1_0") == pytest.approx(grpo(0.0, pair), abs=1e-6)
    assert advantage("u-masked_2_0") == 0.0
    steady = [1.0, 0.0, 0.0]
    assert advantage("u-steady0_0_0") == pytest.approx(grpo(1.0, steady), abs=1e-6)
    assert advantage("u-steady0_1_0") == pytest.approx(grpo(0.0, steady), abs=1e-6)
    # by hand: mean 1/2, std √(1/2): ±0.5/0.70711; mean 1/3, std 0.57735: (2/3)/0.57735
    assert grpo(1.0, pair) == pytest.approx(0.7071058, abs=1e-6)
    assert grpo(1.0, steady) == pytest.approx(1.1546985, abs=1e-6)

    # without the sampler's regrouping, verl's GRPO would count the masked trial's reward 1
    scores = torch.zeros(3, 2)
    scores[:, -1] = torch.tensor([1.0, 0.0, 1.0])
    adv, _ = compute_grpo_outcome_advantage(
        scores, torch.tensor([[1, 1], [1, 1], [0, 0]]), index=["g", "g", "g"]
    )
    assert adv[0, 0].item() == pytest.approx(grpo(1.0, [1.0, 0.0, 1.0]), abs=1e-6)
    assert adv[0, 0].item() != pytest.approx(advantage("u-masked_0_0"), abs=1e-3)
