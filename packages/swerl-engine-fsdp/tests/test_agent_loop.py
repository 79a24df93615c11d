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
import sys
import types
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from swerl import hookimpl
from swerl.components import AgentSpec, Register, Sandbox, Scaffold, TrialInfo
from swerl.config.load import LoadedConfig, parse_config
from swerl.gateway.backend import BackendError, SamplingParams
from swerl.plan import PlanContext, build_plan
from swerl.plugins import PluginManager
from swerl.testing import free_ports, need
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
    the trial goes: ``reward`` (the verifier's), ``no-sandbox`` (the container never starts)."""

    routes: ClassVar[dict[str, str]] = {}  # model name -> api_base, as LiteLLM routes it
    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, run_id: str, run_dir: Path) -> None:
        self.run_id, self.run_dir = run_id, run_dir

    async def run_trial(self, task_dir: Path, agent: AgentSpec, *, trial_id: str | None = None):
        import aiohttp

        assert agent.env["API_KEY"] == KEY and agent.env["TRIAL"] == trial_id
        if (task_dir / "no-sandbox").exists():
            return Outcome(None, "sandbox_error", "the container did not start")
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
        return Outcome(float((task_dir / "reward").read_text()))

    def cleanup(self) -> list[str]:
        return []


class FakeSandbox(Sandbox):
    name = "fake-sandbox"
    summary = "test sandbox"
    ready = frozenset({"run"})

    def runner(self, *, run_id: str, run_dir: Path) -> PlayingRunner:
        return PlayingRunner(run_id, run_dir)


class Fakes:
    @hookimpl
    def swerl_register_scaffolds(self, register: Register) -> None:
        register(FakeScaffold)

    @hookimpl
    def swerl_register_sandboxes(self, register: Register) -> None:
        register(FakeSandbox)


def fake_pm() -> PluginManager:
    pm = PluginManager(env={"SWERL_LOAD_PLUGINS": "fsdp"})
    pm.register_plugin(Fakes(), "fakes")
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


def make_task(root: Path, name: str, *, reward: float = 1.0, no_sandbox: bool = False) -> Path:
    task = root / name
    (task / "tests").mkdir(parents=True)
    (task / "task.toml").write_text('[environment]\ndocker_image = "swerl-base:latest"\n')
    (task / "instruction.md").write_text(f"Fix the bug in {name}: add subtracts.")
    (task / "tests" / "test.sh").write_text("exit 0\n")
    (task / "reward").write_text(str(reward))
    if no_sandbox:
        (task / "no-sandbox").write_text("")
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
    tmp_path: Path, *, workers: int = 2, response_length: int = 512, n_resp: int = 2
) -> Run:
    """Plan a fsdp run of swerl on fake components, write the files swerl writes (config.yaml,
    agent_loop.yaml, the parquet) and compose verl's config from the planned command line."""
    from hydra import compose, initialize_config_dir

    tasks_root = tmp_path / "tasks"
    tasks = {
        "fix-add": make_task(tasks_root, "fix-add", reward=1.0),
        "fix-zero": make_task(tasks_root, "fix-zero", reward=0.0),
        "no-box": make_task(tasks_root, "no-box", no_sandbox=True),
    }
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
            "algorithm": {"train_batch_size": 2, "n_resp": n_resp},
            "ports": {"proxy": proxy, "gateway": base, "policy": policy},
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
        loop = make_loop(verl, run, FakeServerManager(tok, verl.TokenOutput), tok)
        return await loop.run({"temperature": 1.0, "logprobs": True}, **rows["fix-add"])

    (out,) = run_async(scenario, verl)
    _, response, mask = expected_sample(tok, "Fix the bug in fix-add: add subtracts.")
    assert len(out.response_ids) == len(out.response_mask) == len(out.response_logprobs) == 16
    assert out.response_ids == response[:16] and out.response_mask == mask[:16]
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
