"""swerl's verl agent loop: one Harbor trial per dataset row, every sampled token recorded.

verl instantiates :class:`SwerlAgentLoop` once per trajectory inside its AgentLoopWorker actors
(registered through ``<run dir>/agent_loop.yaml``) and calls ``run(sampling_params, **row)``.

What runs where (one AgentLoopWorker process):

* one swerl gateway (:class:`swerl.gateway.server.Gateway`, the same aiohttp app as ``swerl
  gateway``) on ``127.0.0.1:<ports.gateway + k>``, started on the worker's first trajectory, its
  backend :class:`~swerl_engine_fsdp.verl_backend.VerlBackend` over the worker's verl
  ``server_manager``. Worker ``k`` is read from its Ray actor name (``agent_loop_worker_<k>_...``);
  without one the first free port of the range is taken. Its model name is
  ``routing.worker_alias(served, k)``: the proxy routes that name to that port;
* the sandbox runner of the configured sandbox (plus its model access, e.g. the docker socket
  forwarder to the proxy) and swerl's :class:`~swerl.rollout.Rollout`, whose ``run_one`` runs
  each trial exactly as ``swerl rollout`` does: scaffold → sandbox trial → pop the gateway
  session → ``records_for``;
* at most ``ceil(rollout.max_concurrent_samples / agent.num_workers)`` trials at a time.

``run`` opens the trial on the backend (the trial id is the gateway session and verl's sticky
``request_id``), runs it, and turns its records into ``AgentLoopOutput`` s: one per gateway
segment (usually one; side calls and broken stitches add more), with ``response_mask`` = the
gateway's loss mask, the sampled logprobs, ``reward_score`` = the verifier's reward, the weight
versions the trial was sampled with, ``reward_extra_info`` and, with router replay R3, the
rollout's expert routes (``routed_experts``). A trial without a reward or without sampled
tokens returns ``[]`` (verl V1 drops it) and its cause is logged.

Reward filters, per trial (see :mod:`swerl.filtering`): each configured filter's stage 1 runs on
a batch of this one trial (``whole_groups=False``) as it finishes. A trial a filter drops returns
``[]``; a masked trial returns its outputs with an all-zero ``response_mask`` (in the batch, no
loss). When verl runs a custom sampler (``trainer.v1.sampler.custom_sampler``, the trajectory
filter's plan), every training trial also writes what the filters decided into its prompt's
TransferQueue tag, ``swerl_trial/<session>`` → :func:`trial_tag`, before ``run`` returns (so before
verl marks the group finished): the sampler reads them to apply the group rules, to keep masked
trials out of their group's GRPO statistics and to log the ``trajectory_filter/*`` metrics.
Validation rows (``extra_info.split == "val"``) are not filtered.

The run's swerl config comes from ``<run dir>/config.yaml``; the run folder is the
``run_dir`` key of ``agent_loop.yaml`` if set, else ``$SWERL_RUN_DIR``, else the folder of verl's
``agent_loop_config_path`` (swerl writes that file into the run folder).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import socket
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
)

from swerl_engine_fsdp import routing
from swerl_engine_fsdp.verl_backend import CallRecord, VerlBackend, routes_for

if TYPE_CHECKING:
    from swerl.components import RewardFilter
    from swerl.config.load import LoadedConfig
    from swerl.config.schema import SwerlConfig
    from swerl.filtering import TrialItem
    from swerl.gateway.render import ChatRenderer
    from swerl.gateway.server import Gateway
    from swerl.plugins import PluginManager
    from swerl.rollout import Rollout, TrialRunner
    from swerl.trajectories import SampleRecord, TrajectoryWriter

log = logging.getLogger("swerl.agent_loop")

#: verl names its AgentLoopWorker actors ``agent_loop_worker_<i>_<hex>``.
ACTOR_NAME = re.compile(r"^agent_loop_worker_(\d+)_")
#: Keys every output's ``extra_fields`` carries (verl wants one schema across a batch).
EXTRA_KEYS = (
    "global_steps",
    "min_global_steps",
    "max_global_steps",
    "reward_extra_info",
    "turn_scores",
    "tool_rewards",
    "swerl_trial_id",
    "swerl_task",
    "swerl_failure_cause",
    "swerl_sample_index",
    "swerl_num_samples",
    "swerl_model_calls",
    "swerl_truncated",
    "swerl_response_length",
    "swerl_exactness",
    "swerl_stitch_breaks",
    "swerl_worker",
    "swerl_train",
    "swerl_in_group_stats",
)
#: Prefix of the prompt-tag keys that carry each trial's filter decisions (one per session).
TRIAL_TAG = "swerl_trial/"


def plugin_manager() -> PluginManager:
    """The plugins the worker builds scaffold and sandbox from (tests replace this)."""
    from swerl.plugins import get_plugin_manager

    return get_plugin_manager()


def actor_worker_index() -> int | None:
    """This process's AgentLoopWorker index from its Ray actor name, if it is one."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        name = ray.get_runtime_context().get_actor_name()
    except Exception:
        return None
    m = ACTOR_NAME.match(name or "")
    return int(m.group(1)) if m else None


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def find_run_dir(explicit: str | None, verl_config: Any) -> Path:
    """The run folder: the YAML's ``run_dir``, ``$SWERL_RUN_DIR``, or agent_loop.yaml's folder."""
    raw = explicit or os.environ.get("SWERL_RUN_DIR")
    if not raw:
        path = verl_config.actor_rollout_ref.rollout.agent.get("agent_loop_config_path")
        if not path:
            raise RuntimeError(
                "swerl's agent loop cannot find its run folder: set run_dir in agent_loop.yaml, "
                "$SWERL_RUN_DIR, or actor_rollout_ref.rollout.agent.agent_loop_config_path"
            )
        raw = str(Path(path).parent)
    run_dir = Path(raw).expanduser().resolve()
    if not (run_dir / "config.yaml").is_file():
        raise RuntimeError(f"{run_dir} is not a swerl run folder: it has no config.yaml")
    return run_dir


@dataclass
class WorkerGateway:
    """What one AgentLoopWorker process shares between its trajectories."""

    loop: asyncio.AbstractEventLoop
    index: int
    alias: str
    url: str
    run_id: str
    run_dir: Path
    loaded: LoadedConfig
    gateway: Gateway
    backend: VerlBackend
    rollout: Rollout
    runner: TrialRunner
    writer: TrajectoryWriter
    limit: asyncio.Semaphore
    stack: AsyncExitStack = field(repr=False)
    #: The configured reward filters that can run (capability ``apply``), in config order.
    filters: list[RewardFilter] = field(default_factory=list)


_WORKER: WorkerGateway | None = None
_STARTING: asyncio.Lock | None = None


async def worker_gateway(loop: SwerlAgentLoop) -> WorkerGateway:
    """This process's gateway, started by the first trajectory that needs it."""
    global _WORKER, _STARTING
    running = asyncio.get_running_loop()
    if _WORKER is not None and _WORKER.loop is running:
        return _WORKER
    if _STARTING is None:
        _STARTING = asyncio.Lock()
    async with _STARTING:
        if _WORKER is None:
            _WORKER = await start_worker_gateway(loop)
        elif _WORKER.loop is not running:
            raise RuntimeError(
                "this process's swerl gateway runs in another event loop; "
                "await shutdown_worker_gateway() in that loop first"
            )
    return _WORKER


async def shutdown_worker_gateway() -> None:
    """Stop this process's gateway and model access (verl never asks; tests do)."""
    global _WORKER, _STARTING
    worker, _WORKER, _STARTING = _WORKER, None, None
    if worker is not None:
        await worker.stack.aclose()


async def start_worker_gateway(agent: SwerlAgentLoop) -> WorkerGateway:
    from swerl.config.load import load_config
    from swerl.gateway.render import ChatRenderer
    from swerl.rollout import ModelAccess, Rollout
    from swerl.trajectories import TrajectoryWriter

    verl = agent.config
    run_dir = find_run_dir(agent.swerl_run_dir, verl)
    pm = plugin_manager()
    loaded = load_config(run_dir / "config.yaml", env={}, pm=pm)
    config = loaded.config
    num_workers = int(verl.actor_rollout_ref.rollout.agent.num_workers)
    problem = routing.port_range_problem(config, num_workers)
    if problem:
        raise RuntimeError(f"swerl's agent loop cannot place its gateways: {problem}")
    key_env = config.proxy.master_key_env
    api_key = os.environ.get(key_env)
    if not api_key:
        raise RuntimeError(
            f"${key_env} (the proxy's master key, which the agents present) is not set in this "
            "agent-loop worker's environment; start verl through `swerl run`"
        )

    model = verl.actor_rollout_ref.model
    renderer = await asyncio.to_thread(
        ChatRenderer.from_pretrained,
        str(model.path),
        trust_remote_code=bool(model.get("trust_remote_code", False)),
    )
    backend = VerlBackend(stop_ids=renderer.stop_ids)
    preferred = actor_worker_index()
    order = list(range(num_workers))
    if preferred is not None and preferred < num_workers:
        order.remove(preferred)
        order.insert(0, preferred)
    stack = AsyncExitStack()
    try:
        index, gateway, url = await bind_gateway(stack, config, renderer, backend, order)
        alias = gateway.settings.served_name
        run_id = run_dir.name
        writer = TrajectoryWriter(run_dir / "trajectories" / f"verl_w{index}.jsonl")
        stack.callback(writer.close)
        rollout = Rollout(
            loaded,
            pm,
            run_id=run_id,
            run_dir=run_dir,
            api_key=api_key,
            gateway_url=url,
            writer=writer,
            # The agent asks for this worker's alias, which the proxy routes to this gateway.
            served_name=alias,
        )
        runner: TrialRunner = rollout.sandbox.runner(run_id=run_id, run_dir=run_dir)
        await stack.enter_async_context(ModelAccess(runner, config.ports.proxy))
    except BaseException:
        await stack.aclose()
        raise
    per_worker = max(1, math.ceil(config.rollout.max_concurrent_samples / num_workers))
    log.info(
        "swerl gateway of agent-loop worker %d on %s serves %r; %d trial(s) at a time",
        index,
        url,
        alias,
        per_worker,
    )
    return WorkerGateway(
        loop=asyncio.get_running_loop(),
        index=index,
        alias=alias,
        url=url,
        run_id=run_id,
        run_dir=run_dir,
        loaded=loaded,
        gateway=gateway,
        backend=backend,
        rollout=rollout,
        runner=runner,
        writer=writer,
        limit=asyncio.Semaphore(per_worker),
        stack=stack,
        filters=make_filters(loaded, pm),
    )


def make_filters(loaded: LoadedConfig, pm: PluginManager) -> list[RewardFilter]:
    """The configured reward filters that have a per-trial stage to run here (capability
    ``apply``), each with its validated options; made once per worker process."""
    from typing import cast

    out: list[RewardFilter] = []
    for i, ref in enumerate(loaded.config.filters):
        cls = pm.get("filter", ref.name).cls
        if cls.is_ready("apply"):
            out.append(cast("RewardFilter", cls(loaded.options.get(f"filters.{i}"))))
    return out


async def bind_gateway(
    stack: AsyncExitStack,
    config: SwerlConfig,
    renderer: ChatRenderer,
    backend: VerlBackend,
    order: list[int],
) -> tuple[int, Gateway, str]:
    """Serve a gateway on the first free port of ``order`` (worker indices); its index, the
    gateway and its URL. The server stops when ``stack`` closes."""
    from swerl.gateway.server import Gateway, serve_app
    from swerl.gateway.settings import GatewaySettings

    for k in order:
        port = routing.gateway_port(config, k)
        if not port_free(port):
            continue
        settings = GatewaySettings.from_config(config, port=port)
        settings = replace(settings, served_name=routing.worker_alias(settings.served_name, k))
        gateway = Gateway(settings, renderer, backend)
        try:
            url = await stack.enter_async_context(serve_app(gateway.app(), port))
        except OSError:  # taken between the check and the bind
            continue
        return k, gateway, url
    first, last = routing.gateway_port(config, 0), routing.gateway_port(config, len(order) - 1)
    raise RuntimeError(
        f"no free gateway port in {first}..{last} for this agent-loop worker (one per worker, "
        f"agent.num_workers={len(order)}); is another run using them?"
    )


def task_dir_of(row: dict[str, Any]) -> Path:
    """The Harbor task folder a dataset row names (``extra_info.task_dir``, see taskdata.py)."""
    info = row.get("extra_info") or {}
    raw = info.get("task_dir") if isinstance(info, dict) else None
    if not raw:
        raise ValueError(
            "swerl's agent loop needs extra_info.task_dir in each dataset row (a Harbor task "
            f"folder; swerl_engine_fsdp.taskdata builds such rows), got extra_info={info!r}"
        )
    return Path(str(raw))


def is_training_row(row: dict[str, Any]) -> bool:
    """Whether a dataset row is a training task (swerl's val parquet marks its rows
    ``extra_info.split: val``; reward filters leave validation alone)."""
    info = row.get("extra_info") or {}
    return not (isinstance(info, dict) and info.get("split") == "val")


def weight_versions(calls: list[CallRecord]) -> dict[str, Any]:
    """``global_steps`` (the weights of the first call), ``min_global_steps`` and
    ``max_global_steps`` over every call of the trial (None when verl reported none)."""
    first: Any = None
    lows: list[int] = []
    highs: list[int] = []
    for c in calls:
        ex = c.extra_fields
        step = ex.get("global_steps")
        if first is None:
            first = step
        low = ex.get("min_global_steps", step)
        high = ex.get("max_global_steps", step)
        if low is not None:
            lows.append(int(low))
        if high is not None:
            highs.append(int(high))
    return {
        "global_steps": first,
        "min_global_steps": min(lows) if lows else None,
        "max_global_steps": max(highs) if highs else None,
    }


def filter_trial(
    filters: list[RewardFilter], records: list[SampleRecord], response_max: int
) -> tuple[TrialItem, dict[str, float]]:
    """Stage 1 of every filter on this one trial (``whole_groups=False``): the trial item with
    the filters' decisions, and their metrics for it. A trial without a reward starts dropped."""
    from swerl.filtering import FilterBatch

    batch = FilterBatch.from_records(records, max_response_length=response_max, whole_groups=False)
    (item,) = batch.items
    return item, batch.run_filters(filters)


def trial_tag(item: TrialItem, metrics: dict[str, float], *, kept: bool) -> dict[str, Any]:
    """What a custom verl sampler learns about one trial: its reward, whether it reached the
    batch (``dropped``), whether it trains and counts in its group's statistics, and the
    filters' metrics for it."""
    return {
        "reward": item.reward,
        "dropped": not kept,
        "train": item.train,
        "in_group_stats": item.in_group_stats,
        "metrics": dict(metrics),
    }


class SwerlAgentLoop(AgentLoopBase):
    """One Harbor trial through swerl's scaffold and sandbox; outputs from the gateway's records."""

    def __init__(self, *args: Any, run_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: From agent_loop.yaml (``run_dir: ...``); None: found as ``find_run_dir`` says.
        self.swerl_run_dir = run_dir

    @property
    def returns_list(self) -> bool:
        """verl V1 (``main_ppo``) takes a list of outputs and ``[]``; the legacy worker of
        ``fully_async_main`` takes exactly one output."""
        cfg = self.config
        return bool(cfg.trainer.get("use_v1", False)) and "async_training" not in cfg

    async def run(  # type: ignore[override]  # verl V1 takes a list; its annotation lags
        self, sampling_params: dict[str, Any], **kwargs: Any
    ) -> AgentLoopOutput | list[AgentLoopOutput]:
        from swerl.rollout import TrialPlan, crashed, records_for

        task_dir = task_dir_of(kwargs)
        worker = await worker_gateway(self)
        session = kwargs.get("session_id", 0)
        session = int(session) if isinstance(session, int | float) else 0
        plan = TrialPlan(task_dir, session, f"{task_dir.name}__{session}-{uuid.uuid4().hex[:8]}")
        async with worker.limit:
            started = time.perf_counter()
            worker.backend.open_trial(plan.trial_id, self.server_manager, sampling_params)
            try:
                records = await worker.rollout.run_one(worker.runner, plan)
            except Exception as exc:  # one broken trial must not end the step
                log.exception("trial %s crashed", plan.trial_id)
                await worker.rollout.pop_session(plan.trial_id)  # free what was recorded
                records = records_for(worker.run_id, plan, crashed(exc), None)
            finally:
                trial = worker.backend.close_trial(plan.trial_id)
            wall = time.perf_counter() - started
        worker.writer.write(records)
        calls = trial.calls if trial else []
        training = is_training_row(kwargs)
        item, metrics = filter_trial(
            worker.filters if training else [], records, int(self.rollout_config.response_length)
        )
        outputs = self.outputs(records, calls, wall, worker.alias, item)
        if self.returns_list:
            if training and self.sampler_reads_tags and "uid" in kwargs:
                await self.tag_trial(kwargs, session, trial_tag(item, metrics, kept=bool(outputs)))
            return outputs
        if not outputs:
            head = records[0]
            raise RuntimeError(
                f"trial {head.trial_id} produced no trainable sample "
                f"({head.failure_cause}: {head.failure_detail}); verl's legacy worker cannot "
                "drop a trajectory"
            )
        return max(outputs, key=lambda o: sum(o.response_mask))

    @property
    def sampler_reads_tags(self) -> bool:
        """verl V1 runs a custom sampler (``trainer.v1.sampler.custom_sampler.path``), which may
        read the trials' tags; verl's own sampler ignores them, so none are written for it."""
        sampler = self.config.trainer.get("v1", {}).get("sampler", {})
        return bool((sampler.get("custom_sampler") or {}).get("path"))

    async def tag_trial(self, row: dict[str, Any], session: int, tag: dict[str, Any]) -> None:
        """Merge this trial's tag into its prompt's TransferQueue tag (key = the prompt's uid,
        which verl registered before the rollout; verl's AgentLoopWorkerTQ has initialised
        TransferQueue in this process)."""
        import transfer_queue as tq

        await tq.async_kv_put(
            key=str(row["uid"]), partition_id="train", tag={f"{TRIAL_TAG}{session}": tag}
        )

    def outputs(
        self,
        records: list[SampleRecord],
        calls: list[CallRecord],
        wall: float,
        alias: str,
        item: TrialItem | None = None,
    ) -> list[AgentLoopOutput]:
        """The trial's samples as verl outputs; [] when the trial has nothing to train on or a
        reward filter dropped it (``item``: the filters' decisions; None: no filter ran).
        A masked trial's outputs have an all-zero ``response_mask``."""
        head = records[0]
        why = f"{head.failure_cause or 'no failure cause'}: {head.failure_detail or '-'}"
        if head.reward is None:
            log.warning("trial %s dropped: the verifier gave no reward (%s)", head.trial_id, why)
            return []
        if item is not None and item.dropped:
            log.warning("trial %s dropped by a reward filter (%s)", head.trial_id, why)
            return []
        train = item is None or item.train
        in_stats = item is None or item.in_group_stats
        prompt_max = int(self.rollout_config.prompt_length)
        response_max = int(self.rollout_config.response_length)
        kept = []
        for rec in records:
            if not any(rec.loss_mask):
                continue
            if len(rec.prompt_ids) > prompt_max:
                log.warning(
                    "trial %s sample %d dropped: its prompt has %d tokens, more than "
                    "rollout.prompt_length=%d",
                    rec.trial_id,
                    rec.sample_index,
                    len(rec.prompt_ids),
                    prompt_max,
                )
                continue
            kept.append(rec)
        if not kept:
            log.warning("trial %s dropped: no sampled tokens to train on (%s)", head.trial_id, why)
            return []

        reward = float(head.reward)
        versions = weight_versions(calls)
        generate_s = sum(c.seconds for c in calls)
        preempted = [c.num_preempted for c in calls if c.num_preempted is not None]
        out = []
        for rec in kept:
            n = len(rec.response_ids)
            truncated = n > response_max
            if truncated:
                log.warning(
                    "trial %s sample %d: response of %d tokens truncated to "
                    "rollout.response_length=%d",
                    rec.trial_id,
                    rec.sample_index,
                    n,
                    response_max,
                )
            extra: dict[str, Any] = {
                **versions,
                "reward_extra_info": {"reward": reward},
                "turn_scores": [],
                "tool_rewards": [],
                "swerl_trial_id": rec.trial_id,
                "swerl_task": rec.task,
                "swerl_failure_cause": rec.failure_cause,
                "swerl_sample_index": rec.sample_index,
                "swerl_num_samples": len(kept),
                "swerl_model_calls": rec.num_turns,
                "swerl_truncated": truncated,
                "swerl_response_length": n,
                "swerl_exactness": rec.exactness,
                "swerl_stitch_breaks": rec.stitch_breaks,
                "swerl_worker": alias,
                "swerl_train": train,
                "swerl_in_group_stats": in_stats,
            }
            mask = rec.loss_mask[:response_max]
            response = rec.response_ids[:response_max]
            out.append(
                AgentLoopOutput(
                    prompt_ids=list(rec.prompt_ids),
                    response_ids=response,
                    # masked by a filter: in the batch (shapes, data metrics), no loss
                    response_mask=mask if train else [0] * len(mask),
                    response_logprobs=rec.logprobs[:response_max],
                    reward_score=reward,
                    # verl counts messages: a user/observation and an assistant turn per call.
                    num_turns=2 * rec.num_turns,
                    metrics=AgentLoopMetrics(
                        generate_sequences=generate_s,
                        tool_calls=max(0.0, wall - generate_s),
                        num_preempted=sum(preempted) if preempted else -1,
                    ),
                    # R3: the experts the rollout chose, by absolute position (verl pads the rest)
                    routed_experts=routes_for(
                        calls,
                        [*rec.prompt_ids, *rec.response_ids],
                        len(rec.prompt_ids) + len(response),
                    ),
                    extra_fields=extra,
                )
            )
        return out
