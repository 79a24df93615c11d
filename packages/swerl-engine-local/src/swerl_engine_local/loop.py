"""The local engine's training loop: the trainer process of a CPU run.

Started by ``swerl run`` after the policy server, the gateway and the LiteLLM proxy are up. Per
step: take the next ``train_batch_size`` tasks, run ``n_resp`` trials of each through the proxy
(real sandboxes, real agent), score them by the tasks' tests, compute the trainer's logprobs of
every recorded sample and group advantages, take one AdamW step per mini-batch, write the new
weights, reload them into the running policy server, append the step's metrics, and every
``save_freq`` steps write a checkpoint. ``--resume`` semantics: the newest complete checkpoint
in the run folder is loaded (weights, optimizer, sampler, RNG) and the loop continues with the
next step; whatever a killed run wrote for later steps is discarded first.

Usage: ``python -m swerl_engine_local.loop --run-dir runs/<run_id>``
(the environment carries the proxy key and the URLs; see the engine's plan).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from swerl.runstate import METRICS, append_metrics, read_metrics, update_status

if TYPE_CHECKING:
    from swerl.components import RewardFilter
    from swerl.config.load import LoadedConfig
    from swerl.filtering import TrialItem
    from swerl.plugins import PluginManager
    from swerl.trajectories import SampleRecord
    from swerl_engine_local.checkpoint import TaskSampler
    from swerl_engine_local.policy import Policy

log = logging.getLogger("swerl.trainer")

#: The weights the policy server serves after each sync (the newest step's).
WEIGHTS_DIR = "weights"


class Trainer:
    def __init__(self, loaded: LoadedConfig, pm: PluginManager, run_dir: Path) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.pm = pm
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.policy_url = os.environ.get(
            "SWERL_POLICY_URL", f"http://127.0.0.1:{self.config.ports.policy}"
        )
        self.gateway_url = f"http://127.0.0.1:{self.config.ports.gateway}"
        key_env = self.config.proxy.master_key_env
        if not os.environ.get(key_env):
            raise SystemExit(f"trainer: ${key_env} is not set (the launcher passes the proxy key)")
        self.api_key = os.environ[key_env]

    # -- setup ------------------------------------------------------------------------------

    def _filters(self) -> list[RewardFilter]:
        """The configured reward filters in config order, each with its validated options
        (``filters.<i>``); made once per run, so that a filter may keep state across steps."""
        made: list[RewardFilter] | None = self.__dict__.get("_filter_instances")
        if made is None:
            made = []
            for i, ref in enumerate(self.config.filters):
                cls = self.pm.get("filter", ref.name).cls
                cls.require("apply")
                made.append(cast("RewardFilter", cls(self.loaded.options.get(f"filters.{i}"))))
            self.__dict__["_filter_instances"] = made
        return made

    def setup(self) -> tuple[Policy, TaskSampler, int]:
        """Load the policy (from the newest checkpoint if there is one); returns the first step."""
        from swerl.launch import find_tasks
        from swerl_engine_local.checkpoint import TaskSampler, latest_checkpoint, load_checkpoint
        from swerl_engine_local.policy import Policy

        self._filters()
        algo = self.config.algorithm
        random.seed(self.config.run.seed)
        import torch

        torch.manual_seed(self.config.run.seed)
        policy = Policy(Path(self.config.model.path), lr=algo.lr, reference=algo.kl_coef > 0)
        sampler = TaskSampler(find_tasks(self.loaded, None), self.config.run.seed)
        ckpt = latest_checkpoint(self.run_dir)
        first = 0
        if ckpt is not None:
            state = load_checkpoint(ckpt, policy, sampler)
            first = int(state["step"]) + 1
            log.info("resuming from %s: next step %d", ckpt, first)
            self._discard_after(first - 1)
            # The server started on the base weights: serve the checkpoint's before rolling out.
            self._sync(policy)
        else:
            self._discard_after(-1)
        return policy, sampler, first

    def _discard_after(self, step: int) -> None:
        """Drop metrics and trajectories of steps after ``step`` (a killed run's partial work)."""
        rows = [r for r in read_metrics(self.run_dir) if int(r.get("step", -1)) <= step]
        path = self.run_dir / METRICS
        if path.exists():
            tmp = path.with_name(f".{METRICS}.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
            os.replace(tmp, path)
        for f in (self.run_dir / "trajectories").glob("step_*.jsonl"):
            if int(f.stem.split("_")[1]) > step:
                f.unlink()

    # -- one step ---------------------------------------------------------------------------

    def rollout(self, step: int, tasks: list[Path]) -> list[SampleRecord]:
        from swerl.rollout import Rollout, plan_trials
        from swerl.trajectories import TrajectoryWriter

        path = self.run_dir / "trajectories" / f"step_{step:06d}.jsonl"
        writer = TrajectoryWriter(path)
        try:
            rollout = Rollout(
                self.loaded,
                self.pm,
                run_id=self.run_id,
                run_dir=self.run_dir,
                api_key=self.api_key,
                gateway_url=self.gateway_url,
                writer=writer,
            )
            return asyncio.run(rollout.run(plan_trials(tasks, self.config.algorithm.n_resp)))
        finally:
            writer.close()

    def train(self, policy: Policy, records: list[SampleRecord], step: int = 0) -> dict[str, float]:
        """Reward filters (stage 1), advantages per task group, the trainer's logprobs, reward
        filters (stage 2), then one AdamW step per mini-batch (see :mod:`swerl.filtering`)."""
        import torch

        from swerl.filtering import FilterBatch
        from swerl_engine_local import algo as A
        from swerl_engine_local.policy import make_batch

        cfg = self.config.algorithm
        filters = self._filters()
        trials = FilterBatch.from_records(
            records, step=step, max_response_length=self.config.rollout.max_response_length
        )
        metrics = trials.run_filters(filters)
        live = {t.trial_id: t for t in trials.live()}
        if not any(t.train for t in live.values()):
            return {**metrics, "train/skipped": 1.0}
        by_trial = _advantages(list(live.values()))
        samples = [r for r in records if r.response_ids and r.trial_id in live]
        if not any(live[s.trial_id].train for s in samples):
            return {**metrics, "train/skipped": 1.0}
        batch = make_batch(samples)
        for row, s in enumerate(samples):
            if not live[s.trial_id].train:
                batch.mask[row] = 0.0  # masked: stays in the batch, no loss
        advantages = A.token_advantages(
            torch.tensor([by_trial[s.trial_id] for s in samples]), batch.mask
        )
        with torch.no_grad():
            old = policy.logprobs(batch)
        ref = policy.ref_logprobs(batch) if cfg.kl_coef > 0 else None
        metrics.update(A.kl_metrics(old, batch.rollout_logprobs, batch.mask))
        # The strictest check of the weight sync: the largest per-token gap (fp32: ~1e-6).
        gap = (old - batch.rollout_logprobs).abs() * batch.mask
        metrics["rollout_corr/max_abs_diff"] = float(gap.max())
        is_weights = None
        for f in filters:
            weights, mask, m = f.token_weights(old, batch.rollout_logprobs, batch.mask)
            batch.mask = batch.mask * mask
            if weights is not None:
                is_weights = weights if is_weights is None else is_weights * weights
            metrics.update(m)
        mini = cfg.ppo_mini_batch_size or cfg.train_batch_size
        per_mini = max(1, round(len(samples) * mini / cfg.train_batch_size))
        losses, norms, extra = [], [], Counter[str]()
        order = list(range(len(samples)))
        for start in range(0, len(order), per_mini):
            idx = torch.tensor(order[start : start + per_mini])
            sub = _select(batch, idx)
            logprob = policy.logprobs(sub)
            loss, m = A.policy_loss(
                logprob,
                old[idx],
                advantages[idx],
                sub.mask,
                kind="gspo" if cfg.name == "gspo" else "ppo",
                clip_low=cfg.clip_ratios[0],
                clip_high=cfg.clip_ratios[1],
                agg=cfg.loss_agg_mode,
                is_weights=None if is_weights is None else is_weights[idx],
            )
            if ref is not None:  # verl's use_kl_loss: k3 against the starting weights
                kl_loss = A.agg_loss(
                    A.kl_penalty(logprob, ref[idx], "low_var_kl"), sub.mask, cfg.loss_agg_mode
                )
                loss = loss + cfg.kl_coef * kl_loss
                m = {**m, "actor/kl_loss": float(kl_loss)}
            norms.append(policy.step(loss))
            losses.append(float(loss))
            extra.update(m)
        n = len(losses)
        metrics.update({k: v / n for k, v in extra.items()})
        metrics.update(
            {
                "actor/loss": statistics.fmean(losses),
                "actor/grad_norm": statistics.fmean(norms),
                "actor/updates": float(n),
                "train/samples": float(len(samples)),
            }
        )
        return metrics

    def _sync(self, policy: Policy) -> dict[str, float]:
        from swerl_engine_local.sync import sync_weights

        folder = self.run_dir / WEIGHTS_DIR
        t = time.perf_counter()
        policy.save_weights(folder)
        save_s = time.perf_counter() - t
        times = sync_weights(self.policy_url, folder)
        return {"sync/save_s": save_s, **{f"sync/{k}": v for k, v in times.items()}}

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        from swerl_engine_local.tracking import open_sinks

        algo = self.config.algorithm
        update_status(self.run_dir, phase="boot", total_steps=algo.total_steps, trainer=os.getpid())
        policy, sampler, first = self.setup()
        sinks = open_sinks(self.run_dir, self.config, self.loaded.resolved())
        try:
            paused = self._loop(policy, sampler, first, sinks)
        finally:
            for sink in sinks:
                sink.close()
        if not paused:
            update_status(self.run_dir, phase="done", step=algo.total_steps - 1)

    def _loop(self, policy: Policy, sampler: TaskSampler, first: int, sinks: list[Any]) -> bool:
        """Run the steps from ``first``; True when a reward filter paused the run."""
        from swerl_engine_local.checkpoint import save_checkpoint

        algo = self.config.algorithm
        for step in range(first, algo.total_steps):
            t0 = time.perf_counter()
            update_status(self.run_dir, phase="rollout", step=step)
            tasks = sampler.next(algo.train_batch_size)
            records = self.rollout(step, tasks)
            t1 = time.perf_counter()
            update_status(self.run_dir, phase="train", step=step)
            train = self.train(policy, records, step)
            t2 = time.perf_counter()
            update_status(self.run_dir, phase="sync", step=step)
            sync = self._sync(policy)
            t3 = time.perf_counter()
            metrics = {**rollout_metrics(records), **train, **sync}
            if (algo.save_freq > 0 and (step + 1) % algo.save_freq == 0) or (
                step + 1 == algo.total_steps
            ):
                update_status(self.run_dir, phase="checkpoint", step=step)
                save_checkpoint(self.run_dir, step, policy, sampler, {"metrics": metrics})
            t4 = time.perf_counter()
            metrics.update(
                {
                    "time/rollout_s": t1 - t0,
                    "time/train_s": t2 - t1,
                    "time/sync_s": t3 - t2,
                    "time/checkpoint_s": t4 - t3,
                    "time/step_s": t4 - t0,
                }
            )
            append_metrics(self.run_dir, step, metrics)
            for sink in sinks:
                sink.log(step, metrics)
            update_status(self.run_dir, phase="rollout", step=step, metrics=metrics)
            print(format_step(step, algo.total_steps, metrics), flush=True)
            reason = next((f.pause_reason for f in self._filters() if f.pause_reason), None)
            if reason is not None:
                self._pause(step, policy, sampler, metrics, reason)
                return True
        return False

    def _pause(
        self,
        step: int,
        policy: Policy,
        sampler: TaskSampler,
        metrics: dict[str, float],
        reason: str,
    ) -> None:
        """A reward filter asked to stop: checkpoint this step (unless done), phase paused."""
        from swerl_engine_local.checkpoint import checkpoint_dir, save_checkpoint

        if not (checkpoint_dir(self.run_dir, step) / "state.json").is_file():
            save_checkpoint(self.run_dir, step, policy, sampler, {"metrics": metrics})
        message = (
            f"paused after step {step + 1}: {reason}. The checkpoint of step {step + 1} is "
            f"saved; continue with `swerl run --resume {self.run_dir}`"
        )
        update_status(self.run_dir, phase="paused", step=step, message=message)
        log.warning("%s", message)
        print(f"trainer: {message}", flush=True)


def _select(batch: Any, idx: Any) -> Any:
    from swerl_engine_local.policy import Batch

    keep = idx.tolist()
    return Batch(
        input_ids=batch.input_ids[idx],
        attention_mask=batch.attention_mask[idx],
        response_start=[batch.response_start[i] for i in keep],
        response_len=[batch.response_len[i] for i in keep],
        mask=batch.mask[idx],
        rollout_logprobs=batch.rollout_logprobs[idx],
    )


def _advantages(live: list[TrialItem]) -> dict[str, float]:
    """GRPO advantage of each live trial: against its group's trials that count in the group
    statistics; 0 for a masked trial. A trial trained on but left out of the statistics is
    measured against its group's mean and std all the same (verl's conventions)."""
    import torch

    from swerl_engine_local import algo as A

    out = dict.fromkeys((t.trial_id for t in live), 0.0)
    counted = [t for t in live if t.in_group_stats]
    if counted:
        rewards = torch.tensor([float(t.reward or 0.0) for t in counted])
        adv = A.group_advantages(rewards, [t.group for t in counted])
        out.update({t.trial_id: float(a) for t, a in zip(counted, adv, strict=True)})
    for t in live:
        if t.train and not t.in_group_stats and t.reward is not None:
            peers = torch.tensor([float(p.reward or 0.0) for p in counted if p.group == t.group])
            mean, std = (peers.mean(), peers.std()) if len(peers) > 1 else (0.0, 1.0)
            out[t.trial_id] = float((torch.tensor(float(t.reward)) - mean) / (std + 1e-6))
    return out


def rollout_metrics(records: list[SampleRecord]) -> dict[str, float]:
    from swerl.trajectories import first_per_trial, summarize

    s = summarize(records)
    rewards = [t.reward for t in first_per_trial(records).values() if t.reward is not None]
    out: dict[str, float] = {
        "reward/mean": statistics.fmean(rewards) if rewards else 0.0,
        "reward/std": statistics.pstdev(rewards) if len(rewards) > 1 else 0.0,
        "reward/pass_rate": s["pass_rate"] or 0.0,
        "trials": float(s["trials"]),
        "trials/multi_turn_rate": s["multi_turn_trials"] / max(1, s["trials"]),
        "tokens/prompt": float(s["tokens"]["prompt"]),
        "tokens/sampled": float(s["tokens"]["sampled"]),
        "tokens/observation": float(s["tokens"]["observation"]),
        "exactness": s["exactness"] if s["exactness"] is not None else 0.0,
        "stitch_breaks": float(s["stitch_breaks"]),
    }
    for cause, n in s["failures"].items():
        out[f"failures/{cause}"] = float(n)
    for phase, t in s["seconds_per_phase"].items():
        out[f"trial/{phase}_s"] = t["mean"]
    return out


def format_step(step: int, total: int, m: dict[str, float]) -> str:
    fails = sum(v for k, v in m.items() if k.startswith("failures/"))
    return (
        f"step {step + 1}/{total}: reward {m['reward/mean']:.3f} (pass {m['reward/pass_rate']:.2f})"
        f"  kl {m.get('rollout_corr/kl', float('nan')):.2e}  loss {m.get('actor/loss', 0.0):.4f}"
        f"  failures {fails:g}  time rollout {m['time/rollout_s']:.1f} s"
        f" train {m['time/train_s']:.1f} s sync {m['time/sync_s']:.2f} s"
    )


def main(argv: list[str] | None = None) -> int:
    from swerl.config.load import load_config
    from swerl.errors import UserError
    from swerl.plugins import get_plugin_manager

    parser = argparse.ArgumentParser(prog="python -m swerl_engine_local.loop")
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run_dir: Path = args.run_dir
    try:
        pm = get_plugin_manager()
        loaded = load_config(run_dir / "config.yaml", env={}, pm=pm)
        Trainer(loaded, pm, run_dir).run()
    except UserError as exc:
        update_status(run_dir, phase="failed", error=str(exc))
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        update_status(run_dir, phase="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
