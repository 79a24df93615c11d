"""Generation-only rollouts: run trials concurrently and record every sampled token.

For each trial the scaffold describes its agent, the sandbox runs it (a Harbor trial with no
egress, the model reachable only through the proxy), and the gateway hands over what it recorded
for that trial's session: exact prompt ids, sampled ids, masks and logprobs. A failed trial is
recorded with its cause and the run goes on.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from swerl.components import AgentSpec, Sandbox, Scaffold, TrialInfo
from swerl.trajectories import SampleRecord, TrajectoryWriter

if TYPE_CHECKING:
    from swerl.config.load import LoadedConfig
    from swerl.plugins import PluginManager

#: Inside every sandbox the model endpoint is the forwarded proxy on this loopback address.
SANDBOX_MODEL_URL = "http://127.0.0.1:8002"
#: Gateway failure codes → the cause a trial is recorded with. Only a context overflow is the
#: agent's own doing; every other code (and one this table does not know) is the endpoint's,
#: so the trial is not trained on as a genuine failure.
GATEWAY_CAUSES = {
    "context_length_exceeded": "context_overflow",
    "backend_error": "policy_error",
    "backend_unreachable": "policy_error",
    "backend_timeout": "policy_error",
    "backend_rejected": "policy_error",
    # verl's engines: a generation aborted for a weight update, a call for a finished trial
    "backend_aborted": "policy_error",
    "unknown_session": "policy_error",
    "bad_request": "malformed_request",
}


class TrialRunner(Protocol):
    """What a sandbox's ``runner(...)`` returns (see swerl-sandbox-docker)."""

    async def run_trial(
        self, task_dir: Path, agent: AgentSpec, *, trial_id: str | None = None
    ) -> Any: ...

    def cleanup(self) -> list[str]: ...


@dataclass(frozen=True)
class TrialPlan:
    task_dir: Path
    index: int
    trial_id: str


def plan_trials(tasks: list[Path], n: int) -> list[TrialPlan]:
    """``n`` samples of every task, interleaved so that early trials cover every task."""
    return [
        TrialPlan(task, i, f"{task.name}__{i}-{uuid.uuid4().hex[:6]}")
        for i in range(n)
        for task in tasks
    ]


def new_api_key() -> str:
    """A per-run proxy key: it only opens the run's own loopback proxy, which ends with the run."""
    return "sk-swerl-" + secrets.token_urlsafe(24)


class Rollout:
    """Runs trials of one run against an inference stack that is already up."""

    def __init__(
        self,
        loaded: LoadedConfig,
        pm: PluginManager,
        *,
        run_id: str,
        run_dir: Path,
        api_key: str,
        gateway_url: str,
        writer: TrajectoryWriter,
        served_name: str | None = None,
    ) -> None:
        config = loaded.config
        self.config = config
        #: The model name the agents ask for (default ``model.served_name``); a verl agent-loop
        #: worker passes its own alias, which the proxy routes to its gateway.
        self.served_name = served_name or config.model.served_name
        self.run_id = run_id
        self.run_dir = run_dir
        self.api_key = api_key
        self.gateway_url = gateway_url.rstrip("/")
        self.writer = writer
        scaffold_cls = pm.get("scaffold", config.scaffold.name).cls
        sandbox_cls = pm.get("sandbox", config.sandbox.name).cls
        scaffold_cls.require("run")
        sandbox_cls.require("run")
        self.scaffold = cast(Scaffold, scaffold_cls(loaded.options.get("scaffold")))
        self.sandbox = cast(Sandbox, sandbox_cls(loaded.options.get("sandbox")))
        self.records: list[SampleRecord] = []

    async def run(
        self, trials: list[TrialPlan], on_done: Callable[[list[SampleRecord]], None] | None = None
    ) -> list[SampleRecord]:
        runner = cast(TrialRunner, self.sandbox.runner(run_id=self.run_id, run_dir=self.run_dir))
        limit = asyncio.Semaphore(self.config.rollout.max_concurrent_samples)

        async def one(plan: TrialPlan) -> None:
            async with limit:
                try:
                    records = await self.run_one(runner, plan)
                except Exception as exc:  # one broken trial must not end the run
                    records = records_for(self.run_id, plan, crashed(exc), None)
            self.writer.write(records)
            self.records += records
            if on_done:
                on_done(records)

        try:
            async with ModelAccess(runner, self.config.ports.proxy):
                await asyncio.gather(*(one(p) for p in trials))
        finally:
            await asyncio.to_thread(runner.cleanup)
        return self.records

    async def run_one(self, runner: TrialRunner, plan: TrialPlan) -> list[SampleRecord]:
        trial = TrialInfo(
            run_id=self.run_id,
            trial_id=plan.trial_id,
            model_url=SANDBOX_MODEL_URL,
            api_key=self.api_key,
            served_name=self.served_name,
            max_turns=self.config.rollout.max_turns,
        )
        agent = self.scaffold.agent(self.config, trial)
        outcome = await runner.run_trial(plan.task_dir, agent, trial_id=plan.trial_id)
        session = await self.pop_session(plan.trial_id)
        return records_for(self.run_id, plan, outcome, session)

    async def pop_session(self, trial_id: str) -> dict[str, Any] | None:
        """The gateway's records of one trial, removed from the gateway (None: no model call)."""
        import aiohttp

        url = f"{self.gateway_url}/sessions/{trial_id}"
        try:
            async with aiohttp.ClientSession() as http, http.delete(url) as resp:
                if resp.status == 404:
                    return None
                resp.raise_for_status()
                return cast(dict[str, Any], await resp.json())
        except aiohttp.ClientError as exc:
            failure = {"code": "gateway_unreachable", "message": str(exc)}
            return {"samples": [], "failures": [failure]}


class ModelAccess:
    """Start the sandbox runner's model access (e.g. the socket forwarder) if it has one."""

    def __init__(self, runner: Any, port: int) -> None:
        self.runner = runner
        self.port = port
        self.forwarder: Any = None

    async def __aenter__(self) -> ModelAccess:
        factory = getattr(self.runner, "model_forwarder", None)
        if factory is not None:
            self.forwarder = factory(self.port)
            await self.forwarder.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.forwarder is not None:
            await self.forwarder.stop()


@dataclass
class CrashedTrial:
    """The outcome of a trial whose orchestration raised (not a failure Harbor reported)."""

    failure_detail: str
    reward: float | None = None
    failure_cause: str = "rollout_error"
    timings: dict[str, float] = field(default_factory=dict)
    result: Any = None


def crashed(exc: BaseException) -> CrashedTrial:
    return CrashedTrial(f"{type(exc).__name__}: {exc}"[:500])


def _sample_exactness(sample: dict[str, Any]) -> float | None:
    mask1 = [t for t, m in zip(sample["response_ids"], sample["loss_mask"], strict=True) if m]
    sampled = [t for turn in sample.get("turns", []) for t in turn["sampled_ids"]]
    if not mask1:
        return None
    return sum(a == b for a, b in zip(mask1, sampled, strict=False)) / len(mask1)


def records_for(
    run_id: str, plan: TrialPlan, outcome: Any, session: dict[str, Any] | None
) -> list[SampleRecord]:
    """One record per gateway sample (or one empty record), with the trial's reward and cause."""
    session = session or {}
    cause = outcome.failure_cause
    detail = outcome.failure_detail
    failures = session.get("failures") or []
    # A trial that ran to a reward keeps it unless its last model call failed (the agent gave
    # up on the policy): a failed call it recovered from says nothing against the reward.
    ended_on_failure = bool(failures) and failures[-1].get("call") == session.get("calls")
    if failures and (
        cause in ("agent_error", "agent_timeout", "model_error")
        or (cause is None and ended_on_failure)
    ):
        last = failures[-1]
        cause = GATEWAY_CAUSES.get(last.get("code", ""), "policy_error")
        detail = f"gateway: {last.get('message', '')}"[:500]
    agent = {}
    result = getattr(outcome, "result", None)
    meta = getattr(getattr(result, "agent_result", None), "metadata", None) or {}
    if "claude_code" in meta:
        agent = meta["claude_code"]
    samples = session.get("samples") or [{}]
    common = {
        "run_id": run_id,
        "trial_id": plan.trial_id,
        "task": plan.task_dir.name,
        "num_samples": len(session.get("samples") or []),
        "reward": outcome.reward,
        "failure_cause": cause,
        "failure_detail": detail,
        "timings": dict(outcome.timings),
        "stitch_breaks": int(session.get("stitch_breaks", 0)),
        "malformed_tool_calls": int(session.get("malformed_tool_calls", 0)),
        "agent": json.loads(json.dumps(agent, default=str)),
    }
    return [
        SampleRecord(
            sample_index=i,
            prompt_ids=list(s.get("prompt_ids", [])),
            response_ids=list(s.get("response_ids", [])),
            loss_mask=list(s.get("loss_mask", [])),
            logprobs=list(s.get("logprobs", [])),
            num_turns=len(s.get("turns", [])),
            exactness=_sample_exactness(s) if s else None,
            **common,
        )
        for i, s in enumerate(samples)
    ]
