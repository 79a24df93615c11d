"""One rollout and one training step's filter stages through a plugin under test, with fakes for
the rest.

:func:`run_rollout` starts a fake policy server and the real swerl gateway (over
:class:`~swerl.testing.fakes.FakeTokenizer`), validates a config that selects the fakes except
where the test names its own component, runs the trials with the real
:class:`swerl.rollout.Rollout` (the sandbox and scaffold from the config), and hands the records
to the engine: with the fake engine, :func:`train_step` runs the configured reward filters in
both stages, as the local engine's loop does, and computes GRPO advantages. No Docker, no model,
no GPU. Needs ``swerl-core[gateway]`` (aiohttp); token-level filters also need torch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from swerl.components import AgentSpec, RewardFilter
from swerl.errors import UserError
from swerl.testing.fakes import FakeEngine, fake_policy, fake_renderer

if TYPE_CHECKING:
    from swerl.config.load import LoadedConfig
    from swerl.fake_policy import FakePolicy
    from swerl.filtering import FilterBatch, TrialItem
    from swerl.plugins import PluginManager
    from swerl.trajectories import SampleRecord

TASK_TOML = """schema_version = "1.4"

[task]
name = "fake/{name}"
version = "1.0.0"

[verifier]
timeout_sec = 60.0

[environment]
docker_image = "swerl-base:latest"
"""


def make_tasks(root: Path, names: Sequence[str]) -> Path:
    """Minimal valid Harbor task folders under ``root`` (instruction, config, tests)."""
    for name in names:
        task = root / name
        (task / "tests").mkdir(parents=True, exist_ok=True)
        (task / "instruction.md").write_text(f"Task {name}: make the tests pass.\n")
        (task / "task.toml").write_text(TASK_TOML.format(name=name))
        (task / "tests" / "test.sh").write_text("#!/bin/sh\nexit 0\n")
    return root


# -- one training step's filters, no model -----------------------------------------------------


@dataclass
class TrainedSample:
    """One sample as the update would see it after both filter stages."""

    record: SampleRecord
    #: The loss mask after the filters (0 everywhere for a masked trial).
    mask: list[float]
    #: The filters' per-token weights multiplied together (``None``: no filter weighted).
    weights: list[float] | None
    advantage: float


@dataclass
class TrainStep:
    """What one step's reward filters decided, and what would train."""

    batch: FilterBatch
    metrics: dict[str, float]
    #: GRPO advantage of every live trial (0 for a masked one).
    advantages: dict[str, float]
    samples: list[TrainedSample]

    def item(self, trial_id: str) -> TrialItem:
        return next(i for i in self.batch.items if i.trial_id == trial_id)


def group_advantages(live: list[TrialItem], eps: float = 1e-6) -> dict[str, float]:
    """GRPO advantages as the local engine computes them: ``(r - mean) / (std + eps)`` over the
    group's trials that count in its statistics (unbiased std; a group of one: mean 0, std 1);
    0 for a masked trial; a trial that trains without counting is measured against its group."""
    out = dict.fromkeys((t.trial_id for t in live), 0.0)
    counted = [t for t in live if t.in_group_stats and t.reward is not None]

    def stats(group: str) -> tuple[float, float]:
        peers = [float(t.reward or 0.0) for t in counted if t.group == group]
        if len(peers) < 2:
            return 0.0, 1.0
        mean = sum(peers) / len(peers)
        return mean, (sum((p - mean) ** 2 for p in peers) / (len(peers) - 1)) ** 0.5

    for t in live:
        if t.train and t.reward is not None:
            mean, std = stats(t.group)
            out[t.trial_id] = (float(t.reward) - mean) / (std + eps)
    return out


def _overrides_token_weights(f: RewardFilter) -> bool:
    return type(f).token_weights is not RewardFilter.token_weights


def train_step(
    filters: Sequence[RewardFilter],
    records: list[SampleRecord],
    *,
    step: int = 0,
    max_response_length: int | None = None,
    logprob_shift: float = 0.0,
) -> TrainStep:
    """Stage 1 (``filter_batch``) on the step's trials, advantages, then stage 2
    (``token_weights``) on the samples' tokens with the rollout logprobs shifted by
    ``logprob_shift`` as the trainer's, each in config order (see :mod:`swerl.filtering`)."""
    from swerl.filtering import FilterBatch

    batch = FilterBatch.from_records(records, step=step, max_response_length=max_response_length)
    metrics = batch.run_filters(filters)
    live = {t.trial_id: t for t in batch.live()}
    advantages = group_advantages(list(live.values()))
    chosen = [r for r in records if r.response_ids and r.trial_id in live]
    masks = [[float(m) if live[r.trial_id].train else 0.0 for m in r.loss_mask] for r in chosen]
    weights: list[list[float]] | None = None
    if chosen and any(_overrides_token_weights(f) for f in filters):
        masks, weights, token_metrics = _token_stage(filters, chosen, masks, logprob_shift)
        metrics.update(token_metrics)
    samples = [
        TrainedSample(r, m, None if weights is None else weights[i], advantages[r.trial_id])
        for i, (r, m) in enumerate(zip(chosen, masks, strict=True))
    ]
    if not any(any(s.mask) for s in samples):
        metrics["train/skipped"] = 1.0
    metrics["train/samples"] = float(len(samples))
    return TrainStep(batch, metrics, advantages, samples)


def _token_stage(
    filters: Sequence[RewardFilter],
    records: list[SampleRecord],
    masks: list[list[float]],
    shift: float,
) -> tuple[list[list[float]], list[list[float]] | None, dict[str, float]]:
    try:
        import torch
    except ImportError as exc:
        raise UserError(
            "a filter implements token_weights, which takes torch tensors: pip install torch"
        ) from exc
    width = max(len(r.response_ids) for r in records)

    def pad(rows: list[list[float]]) -> torch.Tensor:
        return torch.tensor([row + [0.0] * (width - len(row)) for row in rows], dtype=torch.float32)

    mask = pad(masks)
    rollout = pad([list(r.logprobs) for r in records])
    old = rollout + shift * (mask > 0)
    weights: torch.Tensor | None = None
    metrics: dict[str, float] = {}
    for f in filters:
        w, m, more = f.token_weights(old, rollout, mask)
        mask = mask * m
        if w is not None:
            weights = w if weights is None else weights * w
        metrics.update(more)
    lengths = [len(r.response_ids) for r in records]
    out_masks = [mask[i, :n].tolist() for i, n in enumerate(lengths)]
    out_weights = None
    if weights is not None:
        out_weights = [weights[i, :n].tolist() for i, n in enumerate(lengths)]
    return out_masks, out_weights, metrics


# -- one rollout -------------------------------------------------------------------------------


@dataclass
class RolloutResult:
    """What one rollout through the fakes produced."""

    loaded: LoadedConfig
    run_dir: Path
    #: Every record, as the real rollout wrote them to ``trajectories/rollout.jsonl``.
    records: list[SampleRecord]
    #: The policy server (its ``requests`` are every call the gateway made).
    policy: FakePolicy
    #: The agent spec of every trial, by trial id, when the sandbox records them (the fake does).
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    #: The training step's filters and advantages (the fake engine only; else ``None``).
    step: TrainStep | None = None

    @property
    def metrics(self) -> dict[str, float]:
        if self.step is None:
            raise ValueError("no training step ran (the engine is not the fake one)")
        return self.step.metrics

    def trial_ids(self) -> list[str]:
        """Trial ids in the order the trials ran."""
        return list(dict.fromkeys(r.trial_id for r in self.records))


def rollout_config(
    tasks_dir: Path, output_dir: Path, n: int, n_tasks: int, **sections: Any
) -> dict[str, Any]:
    """The config of a fake rollout: fakes selected, one trial at a time (so that a policy's
    scripted replies go to the trials in order); keyword arguments replace whole sections."""
    data: dict[str, Any] = {
        "run": {"name": "fake", "output_dir": str(output_dir)},
        "model": {"path": "fake-model"},
        "rollout": {"max_concurrent_samples": 1, "max_turns": 8},
        "algorithm": {"train_batch_size": n_tasks, "n_resp": n, "total_steps": 1},
        "trainer": {"n_gpus_per_node": 0},
        "tasks": {"path": str(tasks_dir)},
        "scaffold": {"name": "fake"},
        "sandbox": {"name": "fake"},
        "engine": {"name": "fake"},
    }
    data.update(sections)
    return data


def run_rollout(
    pm: PluginManager,
    workdir: Path,
    *,
    tasks: int | Sequence[str] | Path = 1,
    n: int = 2,
    policy: FakePolicy | None = None,
    rewards: Sequence[float | None] | None = None,
    turns: int | None = None,
    step: int = 0,
    **sections: Any,
) -> RolloutResult:
    """Run ``n`` trials of each task through the real rollout and gateway, then one step's
    filters with the fake engine.

    ``tasks``: a number of fake tasks, their names, or a folder of real Harbor tasks.
    ``policy``: the fake policy server (default: :func:`~swerl.testing.fakes.fake_policy`;
    ``push`` replies on it to choose what trials sample, in trial order). ``rewards`` and
    ``turns`` set the fake sandbox's options. Other keyword arguments replace config sections,
    e.g. ``filters=[{"name": "length", "options": {"max_tokens": 8}}]`` or
    ``scaffold={"name": "my-scaffold"}``; ``pm`` must have those components registered.
    """
    if isinstance(tasks, Path):
        tasks_dir = tasks
        n_tasks = sum(1 for p in tasks.iterdir() if p.is_dir())
    else:
        names = [f"task-{i}" for i in range(tasks)] if isinstance(tasks, int) else list(tasks)
        tasks_dir = make_tasks(workdir / "tasks", names)
        n_tasks = len(names)
    policy = policy or fake_policy()
    return asyncio.run(
        _run(pm, workdir, tasks_dir, n, n_tasks, policy, rewards, turns, step, sections)
    )


async def _run(
    pm: PluginManager,
    workdir: Path,
    tasks_dir: Path,
    n: int,
    n_tasks: int,
    policy: FakePolicy,
    rewards: Sequence[float | None] | None,
    turns: int | None,
    step: int,
    sections: dict[str, Any],
) -> RolloutResult:
    from swerl.config.load import parse_config
    from swerl.gateway.backend import VLLMHttpBackend
    from swerl.gateway.server import Gateway, serve_app
    from swerl.gateway.settings import GatewaySettings
    from swerl.launch import find_tasks
    from swerl.rollout import Rollout, new_api_key, plan_trials
    from swerl.trajectories import TrajectoryWriter

    async with policy.serve() as policy_url:
        config = rollout_config(tasks_dir, workdir / "runs", n, n_tasks, **sections)
        settings = GatewaySettings(
            model_path="fake-model",
            served_name="policy",
            max_model_len=policy.max_model_len,
            backend_url=policy_url,
        )
        gateway = Gateway(settings, fake_renderer(), VLLMHttpBackend(policy_url, "policy"))
        async with serve_app(gateway.app()) as gateway_url:
            sandbox = dict(config["sandbox"])
            if sandbox["name"] == "fake":
                options = {"gateway_url": gateway_url, **sandbox.get("options", {})}
                if rewards is not None:
                    options["rewards"] = list(rewards)
                if turns is not None:
                    options["turns"] = turns
                config["sandbox"] = {**sandbox, "options": options}
            elif rewards is not None or turns is not None:
                raise ValueError("rewards= and turns= script the fake sandbox only")
            text = yaml.safe_dump(config, sort_keys=False)
            loaded = parse_config(text, source=str(workdir / "run.yaml"), env={}, pm=pm)
            run_dir = workdir / "runs" / "fake-run"
            writer = TrajectoryWriter(run_dir / "trajectories" / "rollout.jsonl")
            rollout = Rollout(
                loaded,
                pm,
                run_id=run_dir.name,
                run_dir=run_dir,
                api_key=new_api_key(),
                gateway_url=gateway_url,
                writer=writer,
            )
            runners: list[Any] = []
            make_runner = rollout.sandbox.runner

            def keep(**kwargs: Any) -> Any:
                runners.append(make_runner(**kwargs))
                return runners[-1]

            rollout.sandbox.runner = keep  # type: ignore[method-assign]
            try:
                trials = plan_trials(find_tasks(loaded, None), loaded.config.algorithm.n_resp)
                records = await rollout.run(trials)
            finally:
                writer.close()
    agents = dict(getattr(runners[0], "agents", {})) if runners else {}
    result = RolloutResult(loaded, run_dir, records, policy, agents)
    engine_cls = pm.get("engine", loaded.config.engine.name).cls
    if issubclass(engine_cls, FakeEngine):
        engine = FakeEngine(loaded.options.get("engine"))
        result.step = await asyncio.to_thread(
            engine.step,
            configured_filters(loaded, pm),
            records,
            step=step,
            max_response_length=loaded.config.rollout.max_response_length,
        )
    return result


def configured_filters(loaded: LoadedConfig, pm: PluginManager) -> list[RewardFilter]:
    """The config's reward filters in order, each with its validated options, as a training
    loop makes them (each must be ready to ``apply``)."""
    made = []
    for i, ref in enumerate(loaded.config.filters):
        cls = pm.get("filter", ref.name).cls
        cls.require("apply")
        made.append(cast(RewardFilter, cls(loaded.options.get(f"filters.{i}"))))
    return made


__all__ = [
    "RolloutResult",
    "TrainStep",
    "TrainedSample",
    "configured_filters",
    "group_advantages",
    "make_tasks",
    "rollout_config",
    "run_rollout",
    "train_step",
]
