"""Fakes named ``fake`` for a scaffold, a sandbox and an engine, and a tokenizer for the fake stack.

They stand in for the parts a plugin under test does not replace, so that one rollout runs
through the real rollout, gateway and filter code without Docker, a model or a GPU:

- :class:`FakeScaffold` describes an agent (recorded by the sandbox, never executed).
- :class:`FakeSandbox` runs a scripted agent instead of a container: ``turns`` chat calls to the
  gateway as the trial's session, then a reward from ``rewards`` (trial order, cycled).
- :class:`FakeEngine` plans one no-op trainer process and runs a training step's reward filters
  (both stages, as the local engine runs them) without a model: see :func:`train_step`.
- :class:`FakeTokenizer` is a tiny character tokenizer with a ChatML template, what the gateway
  renders prompts with (no transformers, no model folder).

The policy server is :class:`swerl.fake_policy.FakePolicy`; :func:`fake_policy` makes one that
speaks :class:`FakeTokenizer`'s ids.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from swerl.components import (
    AgentSpec,
    ComponentOptions,
    Engine,
    RewardFilter,
    Sandbox,
    Scaffold,
    TrialInfo,
)

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.fake_policy import FakePolicy
    from swerl.plan import PlanContext, ProcessSpec
    from swerl.testing.harness import TrainStep
    from swerl.trajectories import SampleRecord

#: What the scripted agent sends when it has nothing else to say (plus the turn number).
OBSERVATION = "ok: step {turn} done"


# -- tokenizer ---------------------------------------------------------------------------------


class FakeTokenizer:
    """Characters as tokens, with ChatML's two special tokens; every id decodes and re-encodes
    to itself, so the gateway stitches a trial's turns into one sample as with a real model.

    Ids: 0 ``<|im_start|>``, 1 ``<|im_end|>`` (the end of a turn: EOS), then newline and the
    printable ASCII characters. Other characters encode as ``?``.
    """

    SPECIAL: ClassVar[tuple[str, ...]] = ("<|im_start|>", "<|im_end|>")
    CHARS: ClassVar[str] = "\n" + "".join(chr(c) for c in range(32, 127))
    eos_token_id: ClassVar[int] = 1
    vocab_size: ClassVar[int] = 2 + len(CHARS)
    chat_template: ClassVar[str] = "chatml"  # the gateway only checks that there is one

    def __init__(self) -> None:
        self._ids = {ch: i + 2 for i, ch in enumerate(self.CHARS)}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids: list[int] = []
        i = 0
        while i < len(text):
            for k, special in enumerate(self.SPECIAL):
                if text.startswith(special, i):
                    ids.append(k)
                    i += len(special)
                    break
            else:
                ids.append(self._ids.get(text[i], self._ids["?"]))
                i += 1
        return ids

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, Any]:
        return {"input_ids": [self.encode(t) for t in texts]}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        out = []
        for t in ids:
            if t < 2:
                out.append("" if skip_special_tokens else self.SPECIAL[t])
            else:
                out.append(self.CHARS[t - 2])
        return "".join(out)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.decode([t]) for t in ids]

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        tokenize: bool = False,
    ) -> str:
        parts = []
        if tools:
            parts.append(f"<|im_start|>system\n# Tools\n{json.dumps(tools)}<|im_end|>\n")
        for m in messages:
            content = m.get("content") or ""
            for call in m.get("tool_calls") or []:
                fn = call["function"]
                body = json.dumps({"name": fn["name"], "arguments": fn.get("arguments")})
                content += f"\n<tool_call>\n{body}\n</tool_call>"
            parts.append(f"<|im_start|>{m['role']}\n{content}<|im_end|>\n")
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)


def fake_renderer() -> Any:
    """The gateway's :class:`~swerl.gateway.render.ChatRenderer` over :class:`FakeTokenizer`."""
    from swerl.gateway.render import ChatRenderer

    return ChatRenderer(FakeTokenizer(), {FakeTokenizer.eos_token_id})


def fake_policy(**kwargs: Any) -> FakePolicy:
    """A :class:`~swerl.fake_policy.FakePolicy` that samples :class:`FakeTokenizer` ids.

    Script what it "samples" with ``push(ids)``; :func:`reply_ids` turns text into such ids.
    """
    from swerl.fake_policy import FakePolicy

    tok = FakeTokenizer()
    kwargs.setdefault("vocab_size", FakeTokenizer.vocab_size)
    kwargs.setdefault("eos_token_id", FakeTokenizer.eos_token_id)
    kwargs.setdefault("decode", tok.decode)
    kwargs.setdefault("encode", tok.encode)
    return FakePolicy(**kwargs)


def reply_ids(text: str) -> list[int]:
    """The ids a model "samples" to say ``text`` and end its turn (for ``FakePolicy.push``)."""
    return [*FakeTokenizer().encode(text), FakeTokenizer.eos_token_id]


# -- scaffold ----------------------------------------------------------------------------------


class FakeScaffold(Scaffold):
    """Describes an agent that a fake sandbox records; nothing runs it."""

    name = "fake"
    summary = "stand-in scaffold for tests (swerl.testing): an agent spec nothing runs"
    ready = frozenset({"run"})

    def agent(self, config: SwerlConfig, trial: TrialInfo) -> AgentSpec:
        return AgentSpec(
            name="fake-agent",
            model_name=trial.served_name,
            env={"SWERL_MODEL_URL": trial.model_url, "SWERL_API_KEY": trial.api_key},
            kwargs={"max_turns": trial.max_turns, "trial_id": trial.trial_id},
        )


# -- sandbox -----------------------------------------------------------------------------------


_HALF_PASS: list[float | None] = [1.0, 0.0]


class FakeSandboxOptions(ComponentOptions):
    """Options of the fake sandbox (`sandbox.options`)."""

    turns: int = Field(1, ge=0, description="Chat calls the scripted agent makes per trial.")
    rewards: list[float | None] = Field(
        default_factory=lambda: _HALF_PASS.copy(),
        min_length=1,
        description="Rewards of the trials in the order they run, cycled; null: the verifier "
        "wrote no reward (failure cause `verifier_error`).",
    )
    gateway_url: str = Field(
        "",
        description="Where the scripted agent sends its chat calls: the gateway (run_rollout "
        "sets it) or the LiteLLM proxy (then the agent presents the run's key). Empty: the "
        "model URL the scaffold gave the agent.",
    )
    max_tokens: int | None = Field(
        None, ge=1, description="`max_tokens` of each chat call (none: the gateway's room)."
    )


@dataclass
class FakeOutcome:
    """A trial's outcome, shaped like a real sandbox's (what ``swerl.rollout`` reads)."""

    reward: float | None
    failure_cause: str | None = None
    failure_detail: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    result: Any = None


class FakeRunner:
    """The fake sandbox's trial runner: a scripted agent instead of a container."""

    def __init__(self, options: FakeSandboxOptions, run_id: str, run_dir: Path) -> None:
        self.options = options
        self.run_id = run_id
        self.run_dir = run_dir
        #: The agent spec of every trial, by trial id, as the scaffold described it.
        self.agents: dict[str, AgentSpec] = {}
        self.cleaned = False
        self._started = 0

    async def run_trial(
        self, task_dir: Path, agent: AgentSpec, *, trial_id: str | None = None
    ) -> FakeOutcome:
        trial_id = trial_id or f"{task_dir.name}__{self._started}"
        index = self._started
        self._started += 1
        self.agents[trial_id] = agent
        t0 = time.perf_counter()
        instruction = task_dir / "instruction.md"
        prompt = instruction.read_text() if instruction.is_file() else task_dir.name
        error = await self.converse(
            trial_id,
            prompt,
            str(agent.model_name or "policy"),
            url=self.options.gateway_url or agent.env.get("SWERL_MODEL_URL", ""),
            key=agent.env.get("SWERL_API_KEY", ""),
        )
        timings = {"agent_execution": time.perf_counter() - t0}
        if error:
            return FakeOutcome(None, "agent_error", error, timings)
        rewards = self.options.rewards
        reward = rewards[index % len(rewards)]
        if reward is None:
            return FakeOutcome(None, "verifier_error", "the fake verifier gave no reward", timings)
        return FakeOutcome(reward, None, "", timings)

    async def converse(
        self, trial_id: str, prompt: str, model: str, *, url: str = "", key: str = ""
    ) -> str:
        """``turns`` chat calls as session ``trial_id`` to ``url`` (the gateway or the proxy),
        presenting ``key``; the first error's text, or ``""``."""
        if not self.options.turns:
            return ""
        if not url:
            return "the fake sandbox has no gateway_url to send the agent's calls to"
        import aiohttp

        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        endpoint = url.rstrip("/") + "/v1/chat/completions"
        headers = {"x-swerl-trial": trial_id}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        async with aiohttp.ClientSession() as http:
            for turn in range(1, self.options.turns + 1):
                body: dict[str, Any] = {"model": model, "messages": messages}
                if self.options.max_tokens:
                    body["max_tokens"] = self.options.max_tokens
                async with http.post(endpoint, json=body, headers=headers) as r:
                    reply = await r.json()
                if r.status != 200:
                    return f"model call {turn} failed ({r.status}): {reply}"[:500]
                content = reply["choices"][0]["message"].get("content") or ""
                messages.append({"role": "assistant", "content": content})
                messages.append({"role": "user", "content": OBSERVATION.format(turn=turn)})
        return ""

    def cleanup(self) -> list[str]:
        self.cleaned = True
        return []


class FakeSandbox(Sandbox):
    """Runs a scripted agent against the gateway instead of a container (no Docker)."""

    name = "fake"
    summary = "stand-in sandbox for tests (swerl.testing): a scripted agent, scripted rewards"
    Options = FakeSandboxOptions
    ready = frozenset({"run"})

    def runner(self, *, run_id: str, run_dir: Path) -> FakeRunner:
        assert isinstance(self.options, FakeSandboxOptions)
        return FakeRunner(self.options, run_id, run_dir)


# -- engine ------------------------------------------------------------------------------------


class FakeEngineOptions(ComponentOptions):
    """Options of the fake engine (`engine.options`)."""

    logprob_shift: float = Field(
        0.0,
        description="Added to every rollout logprob to make the trainer's: a policy that moved "
        "since sampling, as a token-level filter would see it.",
    )


class FakeEngine(Engine):
    """Plans one no-op trainer; :meth:`step` runs a step's reward filters without a model."""

    name = "fake"
    summary = "stand-in engine for tests (swerl.testing): filters and advantages, no model"
    Options = FakeEngineOptions
    ready = frozenset({"plan", "train"})
    uses_gpus = False

    def plan(self, config: SwerlConfig, ctx: PlanContext | None = None) -> list[ProcessSpec]:
        import sys

        from swerl.plan import ProcessSpec

        return [
            ProcessSpec(
                name="trainer",
                argv=[sys.executable, "-c", "print('fake trainer: nothing to train')"],
                note="the fake engine of swerl.testing: trains nothing",
            )
        ]

    def step(
        self,
        filters: list[RewardFilter],
        records: list[SampleRecord],
        *,
        step: int = 0,
        max_response_length: int | None = None,
    ) -> TrainStep:
        """One training step's filter stages and advantages over ``records`` (no update)."""
        from swerl.testing.harness import train_step

        assert isinstance(self.options, FakeEngineOptions)
        return train_step(
            filters,
            records,
            step=step,
            max_response_length=max_response_length,
            logprob_shift=self.options.logprob_shift,
        )


def Fakes() -> Any:
    """A plugin that registers the fakes, all named ``fake``."""
    from swerl.testing.support import as_plugin

    return as_plugin(FakeScaffold, FakeSandbox, FakeEngine)
