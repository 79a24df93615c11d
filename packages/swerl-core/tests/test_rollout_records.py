"""Trial outcomes + gateway sessions → trajectory records and the run summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from swerl.rollout import TrialPlan, plan_trials, records_for
from swerl.trajectories import TrajectoryWriter, read_records, summarize


@dataclass
class Outcome:
    reward: float | None
    failure_cause: str | None = None
    failure_detail: str = ""
    timings: dict[str, float] = field(default_factory=lambda: {"agent_run": 2.0, "total": 5.0})
    result: Any = None


def sample(sampled: list[list[int]], obs: list[list[int]]) -> dict[str, Any]:
    """A stitched sample: turn i's observation ids, then its sampled ids."""
    response: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []
    turns = []
    for o, s in zip(obs, sampled, strict=True):
        response += o + s
        mask += [0] * len(o) + [1] * len(s)
        logprobs += [0.0] * len(o) + [-0.5] * len(s)
        turns.append({"sampled_ids": s})
    return {
        "prompt_ids": [1, 2, 3],
        "response_ids": response,
        "loss_mask": mask,
        "logprobs": logprobs,
        "turns": turns,
    }


PLAN = TrialPlan(Path("tasks/fix-add"), 0, "fix-add__0-abc")


def test_one_record_per_sample_with_exactness_from_the_turns() -> None:
    session = {"samples": [sample([[5, 6], [7]], [[], [9, 9]])], "stitch_breaks": 0}
    [rec] = records_for("r", PLAN, Outcome(reward=1.0), session)
    assert rec.num_turns == 2 and rec.trained_tokens == 3
    assert rec.exactness == 1.0
    assert rec.loss_mask == [1, 1, 0, 0, 1]
    # A mask-1 id that is not the sampled one lowers exactness.
    broken = sample([[5, 6], [7]], [[], [9, 9]])
    broken["response_ids"][-1] = 8
    [rec] = records_for("r", PLAN, Outcome(reward=1.0), {"samples": [broken]})
    assert rec.exactness == 2 / 3


def test_a_trial_without_model_calls_is_still_recorded() -> None:
    [rec] = records_for("r", PLAN, Outcome(reward=None, failure_cause="sandbox_error"), None)
    assert rec.failure_cause == "sandbox_error"
    assert rec.response_ids == [] and rec.num_samples == 0 and rec.exactness is None


def test_gateway_failures_name_the_root_cause() -> None:
    session = {
        "samples": [],
        "failures": [{"code": "context_length_exceeded", "message": "prompt 5000 > 4096"}],
    }
    [rec] = records_for("r", PLAN, Outcome(reward=0.0, failure_cause="agent_error"), session)
    assert rec.failure_cause == "context_overflow"
    assert "5000" in rec.failure_detail
    # A sandbox failure is not overridden by what the gateway saw.
    [rec] = records_for("r", PLAN, Outcome(reward=None, failure_cause="sandbox_error"), session)
    assert rec.failure_cause == "sandbox_error"


@pytest.mark.parametrize("code", ["backend_aborted", "unknown_session", "some_new_code"])
def test_an_agent_that_gave_up_on_a_failed_endpoint_is_not_an_agent_failure(code: str) -> None:
    session = {"samples": [], "calls": 3, "failures": [{"call": 3, "code": code, "message": "x"}]}
    [rec] = records_for("r", PLAN, Outcome(reward=0.0, failure_cause="agent_error"), session)
    assert rec.failure_cause == "policy_error"


def test_a_recovered_model_call_failure_keeps_the_reward_but_a_last_one_does_not() -> None:
    failed_2nd = [{"call": 2, "code": "backend_unreachable", "message": "policy down"}]
    recovered = {"samples": [sample([[5]], [[]])], "calls": 4, "failures": failed_2nd}
    [rec] = records_for("r", PLAN, Outcome(reward=1.0), recovered)
    assert (rec.failure_cause, rec.reward) == (None, 1.0)
    gave_up = {"samples": [sample([[5]], [[]])], "calls": 2, "failures": failed_2nd}
    [rec] = records_for("r", PLAN, Outcome(reward=0.0), gave_up)
    assert rec.failure_cause == "policy_error"
    assert rec.failure_detail == "gateway: policy down"


def test_plan_trials_interleaves_tasks() -> None:
    trials = plan_trials([Path("a"), Path("b")], 2)
    assert [t.task_dir.name for t in trials] == ["a", "b", "a", "b"]
    assert len({t.trial_id for t in trials}) == 4


def test_writer_and_summary(tmp_path: Path) -> None:
    writer = TrajectoryWriter(tmp_path / "t.jsonl")
    good = records_for("r", PLAN, Outcome(reward=1.0), {"samples": [sample([[5], [6]], [[], [9]])]})
    plan2 = TrialPlan(Path("tasks/fix-add"), 1, "fix-add__1-def")
    bad = records_for("r", plan2, Outcome(reward=None, failure_cause="sandbox_error"), None)
    writer.write(good)
    writer.write(bad)
    writer.close()
    records = read_records(tmp_path / "t.jsonl")
    assert [r.trial_id for r in records] == ["fix-add__0-abc", "fix-add__1-def"]
    summary = summarize(records)
    assert summary["trials"] == 2 and summary["samples"] == 1
    assert summary["reward_mean"] == 1.0 and summary["pass_rate"] == 0.5
    assert summary["failures"] == {"sandbox_error": 1}
    assert summary["multi_turn_trials"] == 1
    assert summary["tokens"] == {"prompt": 3, "sampled": 2, "observation": 1}
    assert summary["exactness"] == 1.0
    assert summary["seconds_per_phase"]["total"]["mean"] == 5.0


def test_a_trial_whose_orchestration_raises_is_recorded_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    """The sandbox, scaffold and gateway are stand-ins here: this tests the rollout's own loop."""
    import asyncio

    from swerl.components import AgentSpec, Sandbox, Scaffold
    from swerl.config.load import parse_config
    from swerl.plugins import PluginManager
    from swerl.rollout import Rollout
    from swerl.testing import config_yaml

    class Runner:
        async def run_trial(self, task_dir, agent, *, trial_id=None):
            if "boom" in trial_id:
                raise RuntimeError("docker went away")
            return Outcome(reward=1.0)

        def cleanup(self) -> list[str]:
            return []

    class Box(Sandbox):
        name = "stub"
        ready = frozenset({"run"})

        def runner(self, *, run_id, run_dir):
            return Runner()

    class Agent(Scaffold):
        name = "stub"
        ready = frozenset({"run"})

        def agent(self, config, trial):
            return AgentSpec(name="nop")

    from swerl import hookimpl

    class Plugin:
        @hookimpl
        def swerl_register_scaffolds(self, register):
            register(Agent)

        @hookimpl
        def swerl_register_sandboxes(self, register):
            register(Box)

    pm = PluginManager(env={"SWERL_LOAD_PLUGINS": "local"})
    pm.register_plugin(Plugin(), "stubs")
    loaded = parse_config(config_yaml(engine={"name": "local"}), env={}, pm=pm)
    writer = TrajectoryWriter(tmp_path / "t.jsonl")

    class NoGateway(Rollout):
        async def pop_session(self, trial_id):
            return None

    rollout = NoGateway(
        loaded, pm, run_id="r", run_dir=tmp_path, api_key="k", gateway_url="http://x", writer=writer
    )
    trials = [
        TrialPlan(Path("tasks/a"), 0, "a__ok-1"),
        TrialPlan(Path("tasks/a"), 1, "a__boom-2"),
        TrialPlan(Path("tasks/b"), 0, "b__ok-3"),
    ]
    records = asyncio.run(rollout.run(trials))
    writer.close()
    by_id = {r.trial_id: r for r in records}
    assert by_id["a__boom-2"].failure_cause == "rollout_error"
    assert "docker went away" in by_id["a__boom-2"].failure_detail
    assert by_id["a__ok-1"].reward == 1.0 and by_id["b__ok-3"].reward == 1.0
    assert len(read_records(tmp_path / "t.jsonl")) == 3
