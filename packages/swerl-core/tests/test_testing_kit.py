"""swerl.testing, the plugin author's kit: one rollout through the real rollout and gateway code
with fakes for the policy, sandbox, scaffold and engine; a training step's filter stages; inline
plugins for one test; the CLI in-process; the fixtures loaded by pytest on their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from swerl import hookimpl
from swerl.components import RewardFilter
from swerl.filtering import FilterBatch, TrialItem
from swerl.plugins import PluginManager, get_plugin_manager
from swerl.testing import (
    Fakes,
    FakeTokenizer,
    fake_policy,
    group_advantages,
    plugin_manager,
    reply_ids,
    run_rollout,
)
from swerl.trajectories import read_records


@pytest.fixture
def kit_pm() -> PluginManager:
    """The core plugin alone, plus the stand-ins and fakes."""
    return plugin_manager("core")


class DropLong(RewardFilter):
    """Drops trials that sampled more than `limit` tokens, masks those with reward 0."""

    name = "drop-long"
    summary = "test filter"
    ready = frozenset({"apply"})
    limit = 8

    def filter_batch(self, batch: FilterBatch) -> dict[str, float]:
        dropped = 0.0
        for item in batch.live():
            if sum(r.trained_tokens for r in item.records) > self.limit:
                item.drop()
                dropped += 1
            elif item.reward == 0.0:
                item.mask()
        return {"drop-long/dropped": dropped}


class HalfWeights(RewardFilter):
    """Weights every token 0.5, removes each sample's first token, reports the logprob gap."""

    name = "half"
    summary = "test filter"
    ready = frozenset({"apply"})

    def token_weights(self, old_logprob: Any, rollout_logprob: Any, mask: Any) -> Any:
        keep = mask.clone()
        keep[:, 0] = 0.0
        gap = float(((old_logprob - rollout_logprob) * mask).sum() / mask.sum())
        return 0.5 * mask, keep, {"half/gap": gap}


def test_a_rollout_runs_real_trials_through_the_gateway_with_fakes(
    kit_pm: PluginManager, tmp_path: Path
) -> None:
    policy = fake_policy()
    policy.push(reply_ids("first"))  # the first trial's first call
    res = run_rollout(kit_pm, tmp_path, tasks=["a", "b"], n=2, turns=2, policy=policy)

    assert len(res.trial_ids()) == 4 and len(res.records) == 4
    by_task = [r.task for r in res.records]
    assert by_task == ["a", "b", "a", "b"]  # interleaved, one at a time, in plan order
    assert [r.reward for r in res.records] == [1.0, 0.0, 1.0, 0.0]  # the default rewards, cycled
    tok = FakeTokenizer()
    first = res.records[0]
    # Two turns stitched into one exact sample: the pushed reply, the observation (mask 0),
    # then the second reply; every trained id is the sampled id.
    assert first.num_turns == 2 and first.stitch_breaks == 0 and first.exactness == 1.0
    assert first.response_ids[: len(reply_ids("first"))] == reply_ids("first")
    text = tok.decode(first.prompt_ids + first.response_ids)
    assert "Task a: make the tests pass." in text and "ok: step 1 done" in text
    observed = [t for t, m in zip(first.response_ids, first.loss_mask, strict=True) if not m]
    assert "ok: step 1 done" in tok.decode(observed)
    assert first.logprobs[0] != 0.0 and len(first.logprobs) == len(first.response_ids)
    # Every model call went through the policy server, token ids in.
    assert len(policy.requests) == 8 and all(isinstance(r["prompt"], list) for r in policy.requests)
    # The real trajectory writer put the same records on disk.
    on_disk = read_records(res.run_dir / "trajectories" / "rollout.jsonl")
    assert [r.response_ids for r in on_disk] == [r.response_ids for r in res.records]
    # The fake sandbox kept each trial's agent spec, as the fake scaffold described it.
    spec = res.agents[first.trial_id]
    assert spec.name == "fake-agent" and spec.kwargs["trial_id"] == first.trial_id
    assert spec.env["SWERL_MODEL_URL"] == "http://127.0.0.1:8002"


def test_a_step_runs_both_filter_stages_in_config_order(
    kit_pm: PluginManager, tmp_path: Path, register_plugin: Any
) -> None:
    register_plugin(DropLong, HalfWeights, pm=kit_pm)
    policy = fake_policy()
    for text in ("a long reply, surely too long", "short", "tiny", "ok"):
        policy.push(reply_ids(text))
    res = run_rollout(
        kit_pm,
        tmp_path,
        tasks=1,
        n=4,
        policy=policy,
        rewards=[1.0, 0.0, 1.0, 1.0],
        filters=["drop-long", "half"],
        engine={"name": "fake", "options": {"logprob_shift": -0.25}},
    )
    step = res.step
    assert step is not None
    ids = res.trial_ids()
    assert step.item(ids[0]).dropped  # 30 sampled tokens > 8
    assert not step.item(ids[1]).dropped and not step.item(ids[1]).train  # reward 0: masked
    assert res.metrics["drop-long/dropped"] == 1.0
    assert res.metrics["half/gap"] == pytest.approx(-0.25)  # the trainer's logprobs, shifted
    trained = {s.record.trial_id: s for s in step.samples}
    assert set(trained) == set(ids[1:])  # the dropped trial left the batch
    assert not any(trained[ids[1]].mask)  # masked: in the batch, no loss
    for tid in ids[2:]:
        s = trained[tid]
        assert s.mask[0] == 0.0 and all(m == 1.0 for m in s.mask[1:])  # stage 2 removed one
        assert s.weights is not None and s.weights[1] == 0.5
    # Advantages over the trials that count: two rewards of 1.0 -> 0 (equal rewards).
    assert step.advantages[ids[2]] == pytest.approx(0.0)
    assert step.advantages[ids[1]] == 0.0
    assert res.metrics["train/samples"] == 3.0


def test_a_trial_without_reward_is_recorded_and_left_out(
    kit_pm: PluginManager, tmp_path: Path
) -> None:
    res = run_rollout(kit_pm, tmp_path, tasks=1, n=2, rewards=[None, 1.0])
    first, second = res.records
    assert first.reward is None and first.failure_cause == "verifier_error"
    assert second.reward == 1.0 and second.failure_cause is None
    assert res.step is not None and res.step.item(first.trial_id).dropped
    assert [s.record.trial_id for s in res.step.samples] == [second.trial_id]


def test_fake_engine_advantages_match_the_local_engine() -> None:
    loop = pytest.importorskip("swerl_engine_local.loop")
    items = [
        TrialItem("t1", "g1", 1.0),
        TrialItem("t2", "g1", 0.0),
        TrialItem("t3", "g1", 0.5),
        TrialItem("t4", "g2", 1.0),  # a group of one
        TrialItem("t5", "g1", 1.0, train=False, in_group_stats=False),  # masked
        TrialItem("t6", "g1", 0.0, in_group_stats=False),  # trains, does not count
    ]
    ours = group_advantages(items)
    theirs = loop._advantages(items)
    assert ours.keys() == theirs.keys()
    for tid in ours:
        assert ours[tid] == pytest.approx(theirs[tid], abs=1e-5), tid


def test_the_fake_tokenizer_round_trips_every_id() -> None:
    tok = FakeTokenizer()
    ids = list(range(tok.vocab_size)) * 2
    assert tok.encode(tok.decode(ids)) == ids
    assert tok.encode("é") == tok.encode("?")


class Inline(RewardFilter):
    name = "inline-kit-filter"
    summary = "registered for one test"


def test_register_plugin_reaches_the_cli_for_one_test(
    register_plugin: Any, swerl_cli: Any, tmp_path: Path
) -> None:
    name = register_plugin(Inline)
    assert "inline-kit-filter" in get_plugin_manager().registry("filter")
    out = swerl_cli("plugins", "--json")
    assert out.exit_code == 0, out.output
    info = {p["name"]: p for p in json.loads(out.stdout)}[name]
    assert info["components"] == ["filter:inline-kit-filter"]
    assert info["origin"] == "registered in-process"
    # A config selecting it validates in-process (with the fakes registered too).
    register_plugin(Fakes(), name="fakes")
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: {path: m}\ntasks: {path: t}\nscaffold: {name: fake}\nsandbox: {name: fake}\n"
        "engine: {name: fake}\nfilters: [inline-kit-filter]\n"
    )
    shown = swerl_cli("config", "show", "--config", config, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["filters"] == [{"name": "inline-kit-filter", "options": {}}]
    config.write_text(config.read_text().replace("inline-kit-filter]", "inline-kit-filtr]"))
    bad = swerl_cli("config", "show", "--config", config)
    assert bad.exit_code == 2 and "Did you mean 'inline-kit-filter'" in bad.stderr


def test_register_plugin_unregisters_after_the_test() -> None:
    # Runs after the test above (file order): its plugins are gone from the process-wide manager.
    pm = get_plugin_manager()
    assert "inline-kit-filter" not in pm.registry("filter")
    assert "fake" not in pm.registry("engine")


def test_the_fixtures_load_without_an_import(tmp_path: Path) -> None:
    """The pytest11 entry point: a test file that imports nothing from swerl.testing."""
    (tmp_path / "test_it.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def plugin_under_test():
                return "core"

            def test_rollout(rollout, cfg, load):
                res = rollout(tasks=1, n=2, rewards=[1.0, 0.0])
                assert [r.reward for r in res.records] == [1.0, 0.0]
                assert load(cfg()).config.engine.name == "stub"
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert "1 passed" in out.stdout


def test_a_plugin_object_with_hooks_registers_inline(register_plugin: Any) -> None:
    class Plugin:
        @hookimpl
        def swerl_register_filters(self, register: Any) -> None:
            register(Inline)

    pm = PluginManager(entry_points=False)
    register_plugin(Plugin(), name="obj", pm=pm)
    assert pm.get("filter", "inline-kit-filter").plugin == "obj"


def test_the_scripted_agent_presents_the_run_key_to_the_url_it_was_given(tmp_path: Path) -> None:
    """Through the LiteLLM proxy (the GPU run's path) the agent must present the run's key; with
    no ``gateway_url`` it uses the model URL the scaffold gave it, as a sandboxed agent does."""
    import asyncio

    from aiohttp import web

    from swerl.components import AgentSpec
    from swerl.testing.fakes import FakeRunner, FakeSandboxOptions

    seen: list[dict[str, str]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append({"path": request.path, **{k.lower(): v for k, v in request.headers.items()}})
        return web.json_response({"choices": [{"message": {"content": "done"}}]})

    async def scenario() -> list[Any]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        task = tmp_path / "t"
        task.mkdir()
        agent = AgentSpec(
            name="fake-agent",
            model_name="policy-w1",
            env={"SWERL_MODEL_URL": url, "SWERL_API_KEY": "sk-run-key"},
        )
        try:
            implicit = FakeRunner(FakeSandboxOptions(turns=2, rewards=[1.0]), "r", tmp_path)
            explicit = FakeRunner(
                FakeSandboxOptions(turns=1, rewards=[0.0], gateway_url=url), "r", tmp_path
            )
            nowhere = AgentSpec(name="fake-agent", model_name="policy")
            lost = FakeRunner(FakeSandboxOptions(turns=1), "r", tmp_path)
            return [
                await implicit.run_trial(task, agent, trial_id="t__0"),
                await explicit.run_trial(task, agent, trial_id="t__1"),
                await lost.run_trial(task, nowhere, trial_id="t__2"),
            ]
        finally:
            await runner.cleanup()

    first, second, third = asyncio.run(scenario())
    assert (first.reward, second.reward) == (1.0, 0.0)
    assert [s["x-swerl-trial"] for s in seen] == ["t__0", "t__0", "t__1"]
    assert {s["authorization"] for s in seen} == {"Bearer sk-run-key"}
    assert third.reward is None and third.failure_cause == "agent_error"
    assert "no gateway_url" in third.failure_detail
