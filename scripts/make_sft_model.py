"""Warm-start the tiny CPU policy so that it drives claude-code through several real tool turns.

A random tiny model never writes a tool call, so claude-code stops after one turn and the CPU
path has no agent behaviour to learn from. This script teaches the tiny model a short routine on
the repository's tasks, with the prompts it will really see:

1. **Record.** claude-code runs every task through the real stack (Docker sandbox, Harbor,
   claude-code with the run config's scaffold options, LiteLLM, the swerl gateway), but the
   policy server is the scripted fake (``swerl.fake_policy`` with a ``Dialogue``): it reads the
   code (``cat``), applies a fix (the reference fix, or a plausible wrong one), runs the visible
   tests and answers in one line that depends on what the tests printed. The gateway records
   the exact ids claude-code's turns render to, real tool results included, as for any rollout.
2. **Fine-tune** the base model (``models/tiny-qwen2``) on those sequences: loss on the sampled
   (mask 1) ids only, fp32, seeded, one sequence a step, with a random date in claude-code's
   date reminder (it changes every day, and the model must not care).
3. **Save** weights next to the base model's own config (untied embeddings: vLLM's weight
   reload needs them), tokenizer and generation config, plus a stamp; a second run with the
   same inputs does nothing.

Sampled at temperature 1.0 through vLLM, the result makes several tool calls per trial and picks
the right fix about as often as the wrong one, so rewards vary: what RL needs to show learning.
``--right-share 0.3`` shows each wrong fix more often than the right one (7 to 3); with
``--steps 3000`` the result writes every task's right fix but picks it seldom (the fix turn
is right in 6-31 % of valid samples, per task): a weak start with room to rise on every task
(``models/tiny-qwen2-weak``, the learning run's start; at 600 steps it could not write two
tasks' longer right fixes at all).
The recorded transcripts are kept in ``--work`` (keyed by what they depend on), so a change to
the training recipe alone does not record again.

Usage: python scripts/make_sft_model.py models/tiny-qwen2-sft [--base models/tiny-qwen2]
           [--config configs/smoke_cpu.yaml] [--right-share 0.5] [--steps 600] [--seed 0]
           [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Bump when the recipe changes so that existing models are rebuilt.
RECIPE = "swerl-tiny-sft/2"
STAMP = "swerl_sft_model.json"
BASE_STAMP = "swerl_tiny_model.json"
TRANSCRIPTS = "transcripts.jsonl"
#: Files copied from the base model unchanged (the weights are the only thing that changes).
BASE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")

#: Training recipe (measured: see README's "A tiny model can be taught" and the report in
#: sft_log.json): one sequence a step, AdamW, 10 warm-up steps, linear decay to 10 %.
STEPS = 600
LR = 2e-3
BATCH = 1
WARMUP = 10
CLIP = 1.0


@dataclass(frozen=True)
class TaskScript:
    """What the scripted agent does on one task: files to read, the right and a wrong fix."""

    files: tuple[str, ...]
    right: str
    wrong: str


#: The repository's tasks (tasks/). The right fix does what solution/solve.sh does; the wrong one
#: is a plausible edit that the hidden tests reject.
TASKS: dict[str, TaskScript] = {
    "fix-add": TaskScript(
        ("/app/calc.py",),
        "sed -i 's/a - b/a + b/' /app/calc.py",
        "sed -i 's/a - b/b - a/' /app/calc.py",
    ),
    "fix-cart-total": TaskScript(
        ("/app/money.py", "/app/cart.py"),
        "sed -i 's/\\* 10)/* 100)/' /app/money.py && "
        "sed -i 's/return f.*/return money.to_text(total)/' /app/cart.py",
        "sed -i 's/\\* 10)/* 100)/' /app/money.py",
    ),
    "fix-clamp": TaskScript(
        ("/app/geometry.py",),
        "sed -i 's/max(hi, min(value, lo))/max(lo, min(value, hi))/' /app/geometry.py",
        "sed -i 's/max(hi, min(value, lo))/min(lo, max(value, hi))/' /app/geometry.py",
    ),
    "fix-evens": TaskScript(
        ("/app/seq.py",),
        "sed -i 's/range(lo, hi)/range(lo, hi + 1)/' /app/seq.py",
        "sed -i 's/range(lo, hi)/range(lo + 1, hi + 1)/' /app/seq.py",
    ),
    "fix-mean-empty": TaskScript(
        ("/app/stats.py",),
        "sed -i 's|return sum(values) / len(values)|"
        "return sum(values) / len(values) if values else None|' /app/stats.py",
        "sed -i 's|/ len(values)|/ max(len(values), 1)|' /app/stats.py",
    ),
    "fix-reverse": TaskScript(
        ("/app/textutil.py",),
        "sed -i 's/len(words) - 1 : 0 : -1/::-1/' /app/textutil.py",
        "sed -i 's/ - 1 : 0 : -1/ : 0 : -1/' /app/textutil.py",
    ),
    "fix-slugify": TaskScript(
        ("/app/slug.py",),
        "sed -i 's/title.lower())$/title.lower()).strip(\"-\")/' /app/slug.py",
        "sed -i 's/title.lower())$/title.lower()).rstrip(\"-\")/' /app/slug.py",
    ),
    "fix-timeout-default": TaskScript(
        ("/app/config.py",),
        'sed -i \'s/"timeout": 3,/"timeout": 30,/\' /app/config.py',
        'sed -i \'s/"timeout": 3,/"timeout": 300,/\' /app/config.py',
    ),
}
#: Two ways to look at the code: some variety in what the model does and in what it then sees.
READ = ("cat {files}",)
#: claude-code drops a leading `cd <its cwd> &&` from commands, so none is written here.
TEST = "python3 -m unittest 2>&1 | tail -n 1"
#: The last answer depends on the test output (unittest ends with OK or FAILED).
FINAL: dict[str, list[list[str]]] = {
    "when": [
        [r"\nOK\b", "The tests pass now."],
        [r"FAILED|Error", "The tests still fail."],
        [r".", "Done."],
    ]
}


def log(msg: str) -> None:
    print(f"make_sft_model: {msg}", flush=True)


# -- the scripted conversations ----------------------------------------------------------------


def tool_call(command: str) -> str:
    """A Bash call as the tiny model's chat template writes one (hermes format)."""
    call = {"name": "Bash", "arguments": {"command": command}}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


def conversations(task_names: list[str]) -> list[dict[str, Any]]:
    """Every scripted conversation: per task, each way of reading × (right fix, wrong fix).

    A conversation is picked by the task's first file name, which its instruction names.
    """
    out = []
    for name in task_names:
        script = TASKS[name]
        for read in READ:
            for fix in (script.right, script.wrong):
                out.append(
                    {
                        "match": f"`{script.files[0]}`",
                        "task": name,
                        "right": fix == script.right,
                        "replies": [
                            tool_call(read.format(files=" ".join(script.files))),
                            tool_call(fix),
                            tool_call(TEST),
                            FINAL,
                        ],
                    }
                )
    return out


def branches_per_task() -> int:
    return len(READ) * 2


# -- recording through the real stack ----------------------------------------------------------


def boot(sup: Any, specs: list[Any]) -> None:
    """Start the processes together, then wait for each one's health URL.

    None of them needs another to start (the gateway and LiteLLM connect on the first request),
    so starting them at once saves the sum of their start-up times (about a minute).
    """
    from dataclasses import replace

    from swerl.boot import BootError, http_ok, log_tail

    procs = [(sup.start(replace(spec, health=None)), spec) for spec in specs]
    started = time.monotonic()
    waiting = [(p, s) for p, s in procs if s.health]
    while waiting:
        for proc, spec in list(waiting):
            if not proc.alive():
                raise BootError(
                    f"{spec.name} exited before it was ready; last lines of {proc.log_path}:\n"
                    + log_tail(proc.log_path)
                )
            if http_ok(spec.health):
                waiting.remove((proc, spec))
            elif time.monotonic() - started > spec.ready_timeout_s:
                raise BootError(f"{spec.name} did not answer {spec.health} in time")
        time.sleep(0.5)


def record(config_path: Path, base: Path, work: Path, concurrency: int) -> list[dict[str, Any]]:
    """Run every scripted conversation once through claude-code; return the trajectory records.

    The run config's scaffold, sandbox and task settings are used as they are (the prompts must
    be the ones the policy will see); the policy server is the scripted fake.
    """
    import asyncio
    from dataclasses import asdict

    import yaml

    from swerl.boot import Supervisor
    from swerl.config.load import parse_config
    from swerl.launch import NOT_FOR_ROLLOUT, find_tasks
    from swerl.plan import ProcessSpec, build_plan
    from swerl.plugins import get_plugin_manager
    from swerl.preflight.checks.host import free_ports
    from swerl.rollout import Rollout, new_api_key, plan_trials
    from swerl.trajectories import TrajectoryWriter

    data = yaml.safe_load(config_path.read_text())
    proxy, gateway, policy = free_ports(3)
    data["run"] = {**data.get("run", {}), "name": "sft-record", "output_dir": str(work.resolve())}
    data["model"] = {**data["model"], "path": str(base.resolve())}
    data["ports"] = {"proxy": proxy, "gateway": gateway, "policy": policy}
    data["rollout"] = {**data.get("rollout", {}), "max_concurrent_samples": concurrency}
    pm = get_plugin_manager()
    loaded = parse_config(yaml.safe_dump(data), source=str(config_path), pm=pm)
    tasks = [t for t in find_tasks(loaded, None) if t.name in TASKS]
    if not tasks:
        raise SystemExit(f"make_sft_model: error: none of the config's tasks is in {sorted(TASKS)}")

    env = dict(os.environ)
    key_env = loaded.config.proxy.master_key_env
    env[key_env] = new_api_key()
    plan = build_plan(loaded, pm, env=env)
    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(loaded.resolved(), sort_keys=False))
    dialogue = run_dir / "dialogue.json"
    dialogue.write_text(json.dumps({"conversations": conversations([t.name for t in tasks])}))
    fake = ProcessSpec(
        name="policy-server",
        argv=[
            sys.executable,
            "-m",
            "swerl.fake_policy",
            "--port",
            str(policy),
            "--served-name",
            loaded.config.model.served_name,
            "--max-model-len",
            str(loaded.config.rollout.model_len),
            "--tokenizer",
            str(base.resolve()),
            "--dialogue",
            str(dialogue),
        ],
        health=f"http://127.0.0.1:{policy}/health",
        ready_timeout_s=120.0,
    )
    trials = plan_trials(tasks, branches_per_task())
    log(
        f"recording {len(trials)} scripted claude-code trials ({len(tasks)} tasks); "
        f"logs in {run_dir}"
    )
    writer = TrajectoryWriter(run_dir / "trajectories" / "rollout.jsonl")
    done = 0

    def progress(records: Any) -> None:
        nonlocal done
        done += 1
        head = records[0]
        cause = f", {head.failure_cause}" if head.failure_cause else ""
        log(f"  trial {done}/{len(trials)} {head.task}: reward {head.reward}{cause}")

    with Supervisor(run_dir / "logs", env=env) as sup:
        specs = [s for s in plan.processes if s.name not in NOT_FOR_ROLLOUT]
        boot(sup, [fake if s.name == "policy-server" else s for s in specs])
        log(f"  stack up ({', '.join(s.name for s in specs)})")
        rollout = Rollout(
            loaded,
            pm,
            run_id=plan.run_id,
            run_dir=run_dir,
            api_key=env[key_env],
            gateway_url=f"http://127.0.0.1:{gateway}",
            writer=writer,
        )
        try:
            records = asyncio.run(rollout.run(trials, on_done=progress))
        finally:
            writer.close()
    return [asdict(r) for r in records]


def checked_examples(records: list[dict[str, Any]], tokenizer: Any) -> list[Example]:
    """The records to learn from, in a fixed order; each one's reward must agree with the fix it
    applied (a mismatch means the task changed under its script in TASKS; the sample is dropped)."""
    examples = examples_from_records(records)
    kept = []
    for ex in examples:
        script = TASKS.get(ex.task)
        if script is None:
            continue
        said = tokenizer.decode(ex.response_ids, skip_special_tokens=False)
        right = tool_call(script.right) in said
        if ex.reward != (1.0 if right else 0.0):
            which = "right" if right else "wrong"
            log(f"warning: {ex.task}: the {which} fix got reward {ex.reward}; sample dropped")
            continue
        kept.append(ex)
    missing = sorted({r["task"] for r in records} - {ex.task for ex in kept})
    if missing:
        raise SystemExit(
            f"make_sft_model: error: no usable recording of {', '.join(missing)}; see the trial "
            "logs above (and TASKS in this script if a task changed)"
        )
    # Trials finish in any order; training order must not depend on it.
    return sorted(kept, key=lambda ex: (ex.task, ex.prompt_ids, ex.response_ids))


def weighted(examples: list[Example], right_share: float) -> list[Example]:
    """The examples repeated so that right-fix samples (reward 1) make ``right_share`` of them.

    The recordings hold one right and one wrong fix per way of reading a task, so 0.5 returns
    them unchanged; 0.2 repeats each wrong one four times. The share is rounded to a fraction
    with a denominator of at most 10.
    """
    from fractions import Fraction

    if not 0.0 < right_share < 1.0:
        raise SystemExit(
            f"make_sft_model: error: --right-share must be in (0, 1), not {right_share}"
        )
    share = Fraction(right_share).limit_denominator(10)
    n_right, n_wrong = share.numerator, share.denominator - share.numerator
    out: list[Example] = []
    for ex in examples:
        out.extend([ex] * (n_right if ex.reward == 1.0 else n_wrong))
    return out


# -- training data ------------------------------------------------------------------------------


@dataclass
class Example:
    """One recorded sample: the first prompt, then sampled (mask 1) and observation (mask 0) ids."""

    task: str
    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]
    reward: float | None = None

    def turns(self) -> list[tuple[int, int]]:
        """(start, end) in ``response_ids`` of each run of sampled ids: one per model call."""
        runs, start = [], None
        for i, m in enumerate([*self.loss_mask, 0]):
            if m and start is None:
                start = i
            elif not m and start is not None:
                runs.append((start, i))
                start = None
        return runs


def examples_from_records(records: list[dict[str, Any]]) -> list[Example]:
    """The samples worth learning from: no failure, every trained id the sampled one."""
    out = []
    for r in records:
        if r.get("failure_cause") or not r.get("response_ids") or r.get("exactness") != 1.0:
            continue
        if len(r["response_ids"]) != len(r["loss_mask"]):
            raise ValueError(
                f"trial {r.get('trial_id')}: response_ids and loss_mask differ in length"
            )
        out.append(
            Example(r["task"], r["prompt_ids"], r["response_ids"], r["loss_mask"], r.get("reward"))
        )
    return out


def token_labels(prompt_ids: list[int], ex: Example) -> tuple[list[int], list[int]]:
    """Input ids and labels of one sequence: the label is the id itself where the model sampled
    it (mask 1) and -100 (no loss) on the prompt and on every observation id."""
    ids = prompt_ids + ex.response_ids
    labels = [-100] * len(prompt_ids) + [
        t if m == 1 else -100 for t, m in zip(ex.response_ids, ex.loss_mask, strict=True)
    ]
    return ids, labels


DATE = r"(Today's date is )\d{4}-\d{2}-\d{2}"


class Dates:
    """Re-render a prompt with another date in claude-code's date reminder.

    claude-code puts today's date into every first user message, so a model trained on one
    day's prompts would meet an unseen prompt tomorrow. The prompt is decoded, the date replaced
    and the text encoded again with the gateway's tokenizer (which produced the ids from text in
    the first place, so the round trip is checked to be exact first).
    """

    def __init__(self, tokenizer: Any, seed: int) -> None:
        import random

        self.tok = tokenizer
        self.rng = random.Random(seed)
        self._text: dict[int, str] = {}

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def text_of(self, prompt_ids: list[int]) -> str | None:
        key = hash(tuple(prompt_ids))
        if key not in self._text:
            import re

            text = self.tok.decode(prompt_ids, skip_special_tokens=False)
            ok = re.search(DATE, text) and self.encode(text) == prompt_ids
            self._text[key] = text if ok else ""
        return self._text[key] or None

    def random_date(self) -> str:
        r = self.rng
        return f"{r.randint(2025, 2035)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"

    def shift(self, prompt_ids: list[int]) -> list[int]:
        """The prompt with a random date (unchanged when it holds no date reminder)."""
        import re

        text = self.text_of(prompt_ids)
        if text is None:
            return prompt_ids
        return self.encode(re.sub(DATE, lambda m: m.group(1) + self.random_date(), text))


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors of (ids, labels) rows; padding gets no attention and no loss."""
    import torch

    n = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), n), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), n), dtype=torch.long)
    for i, (ids, labs) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(labs)] = torch.tensor(labs)
        attention[i, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def shared_prefix(rows: list[tuple[list[int], list[int]]]) -> int:
    """Length of the prefix every row starts with and that holds no label (minus one id, so
    that each row keeps the position that predicts its first own id)."""
    first = rows[0][0]
    n = min(len(ids) for ids, _ in rows)
    i = 0
    while i < n and all(ids[i] == first[i] for ids, _ in rows):
        i += 1
    labelled = min(
        next((j for j, lab in enumerate(labs) if lab != -100), len(labs)) for _, labs in rows
    )
    return max(min(i, labelled) - 1, 0)


def sft_loss(
    model: Any, rows: list[tuple[list[int], list[int]]], pad_id: int, device: str = "cpu"
) -> Any:
    """Mean next-token cross-entropy over the labelled positions only.

    Two savings, neither of which changes the loss or its gradient: the prefix that all rows
    share (claude-code's system prompt and tool schema: about 800 of some 1,300 ids) runs once
    for the whole batch and the rows continue from its keys and values; and the output layer
    runs only where there is a label (about a tenth of the positions).
    """
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache

    p = shared_prefix(rows) if len(rows) > 1 else 0
    rest = [(ids[p:], labels[p:]) for ids, labels in rows]
    batch = {k: v.to(device) for k, v in collate(rest, pad_id).items()}
    attention = batch["attention_mask"]
    cache = None
    if p:
        prefix = torch.tensor([rows[0][0][:p]], device=device)
        past = model.model(input_ids=prefix, use_cache=True).past_key_values
        n = len(rows)
        cache = DynamicCache(
            ddp_cache_data=[
                (layer.keys.expand(n, -1, -1, -1), layer.values.expand(n, -1, -1, -1))
                for layer in past.layers
            ],
            config=model.config,
        )
        ones = torch.ones((n, p), dtype=attention.dtype, device=device)
        attention = torch.cat([ones, attention], dim=1)
    hidden = model.model(
        input_ids=batch["input_ids"],
        attention_mask=attention,
        past_key_values=cache,
        use_cache=cache is not None,
    ).last_hidden_state
    target = batch["labels"][:, 1:]
    keep = target != -100
    logits = model.lm_head(hidden[:, :-1][keep])
    return F.cross_entropy(logits, target[keep])


@dataclass
class TrainResult:
    steps: int
    seconds: float
    losses: list[float]


def train(
    model: Any,
    examples: list[Example],
    dates: Dates | None,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    pad_id: int,
    device: str = "cpu",
    warmup: int = 0,
    clip: float = 0.0,
    beta2: float = 0.999,
    final_lr: float = 0.1,
    on_step: Any = None,
) -> TrainResult:
    """AdamW on shuffled mini-batches (every example once per epoch), linear warm-up, then
    linear decay to ``final_lr`` × ``lr``."""
    import random

    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, beta2))

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return 1.0 - (1.0 - final_lr) * (s - warmup) / max(steps - warmup, 1)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    order: list[int] = []
    losses = []
    started = time.monotonic()
    for step in range(1, steps + 1):
        rows = []
        for _ in range(batch_size):
            if not order:
                order = list(range(len(examples)))
                rng.shuffle(order)
            ex = examples[order.pop()]
            prompt = dates.shift(ex.prompt_ids) if dates else ex.prompt_ids
            rows.append(token_labels(prompt, ex))
        loss = sft_loss(model, rows, pad_id, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
        if on_step:
            on_step(step, losses[-1], time.monotonic() - started)
    model.eval()
    return TrainResult(steps, time.monotonic() - started, losses)


# -- checking what was learnt ----------------------------------------------------------------------


def sample(
    model: Any, prompt: list[int], n: int, max_new: int, eos: int, gen: Any
) -> list[list[int]]:
    """``n`` continuations of ``prompt`` at temperature 1.0, no top-k or top-p (as vLLM)."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(torch.tensor([prompt] * n, device=device), use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1]
        seqs: list[list[int]] = [[] for _ in range(n)]
        done = [False] * n
        for _ in range(max_new):
            probs = torch.softmax(logits.float(), dim=-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(1)
            for i, t in enumerate(nxt.tolist()):
                if not done[i]:
                    seqs[i].append(t)
                    done[i] = t == eos
            if all(done):
                break
            out = model(nxt.view(n, 1).to(device), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1]
    return seqs


def turn_accuracy(
    model: Any, examples: list[Example], *, n: int, seed: int, eos: int
) -> dict[str, Any]:
    """How the model continues each recorded history, ``n`` samples at temperature 1.0.

    Per turn: the share of samples that are one of the recorded continuations of that history
    (``valid``), and among those the share that lead to reward 1 (``right``: on the fix turn,
    how often the right fix is picked; 0.5 is what the recordings hold). ``fix_turn_by_task``:
    the same two for each task's fix turn (the turn with more than one recorded continuation),
    where a task whose right fix the model cannot write shows ``right`` 0: RL cannot raise it.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    branches: dict[tuple[int, ...], dict[tuple[int, ...], float]] = {}
    turn_of: dict[tuple[int, ...], int] = {}
    task_of: dict[tuple[int, ...], str] = {}
    for ex in examples:
        for j, (a, b) in enumerate(ex.turns()):
            history = tuple(ex.prompt_ids + ex.response_ids[:a])
            target = tuple(ex.response_ids[a:b])
            seen = branches.setdefault(history, {})
            seen[target] = max(seen.get(target, 0.0), float(ex.reward or 0.0))
            turn_of[history] = j
            task_of[history] = ex.task
    valid: dict[int, list[float]] = {}
    right: dict[int, list[float]] = {}
    fix_turns: dict[str, list[float]] = {}  # task -> [valid samples, samples, right ones]
    for history, targets in branches.items():
        longest = max(len(t) for t in targets)
        outs = [tuple(o) for o in sample(model, list(history), n, longest + 8, eos, gen)]
        hits = [o for o in outs if o in targets]
        j = turn_of[history]
        valid.setdefault(j, []).append(len(hits) / n)
        if len(targets) > 1:
            good = sum(targets[o] for o in hits)
            counts = fix_turns.setdefault(task_of[history], [0, 0, 0.0])
            counts[0], counts[1], counts[2] = counts[0] + len(hits), counts[1] + n, counts[2] + good
            if hits:
                right.setdefault(j, []).append(good / len(hits))
    report: dict[str, Any] = {}
    for j in sorted(valid):
        report[f"turn{j + 1}_valid"] = round(sum(valid[j]) / len(valid[j]), 3)
        if j in right:
            report[f"turn{j + 1}_right"] = round(sum(right[j]) / len(right[j]), 3)
    report["fix_turn_by_task"] = {
        task: {"valid": round(written / total, 3), "right": round(good / max(written, 1), 3)}
        for task, (written, total, good) in sorted(fix_turns.items())
    }
    return report


def load_transcripts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- inputs, stamp, output -------------------------------------------------------------------------


def inputs_digest(config_path: Path) -> str:
    """What the recordings depend on: the scripts, the tasks' files, the scaffold settings."""
    import yaml

    data = yaml.safe_load(config_path.read_text()) or {}
    h = hashlib.sha256()
    relevant = {k: data.get(k) for k in ("scaffold", "tasks")}
    relevant["max_turns"] = (data.get("rollout") or {}).get("max_turns")
    h.update(json.dumps(relevant, sort_keys=True, default=str).encode())
    h.update(json.dumps(conversations(sorted(TASKS)), sort_keys=True).encode())
    root = Path((data.get("tasks") or {}).get("path", "tasks"))
    for name in sorted(TASKS):
        task = root / name
        for f in sorted(task.rglob("*")) if task.is_dir() else []:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def stamp_for(args: argparse.Namespace) -> dict[str, Any]:
    """The stamp a finished model carries; computed without importing anything heavy."""
    base_stamp = args.base / BASE_STAMP
    return {
        "recipe": RECIPE,
        "base": json.loads(base_stamp.read_text()) if base_stamp.is_file() else None,
        "inputs": inputs_digest(args.config),
        "seed": args.seed,
        "steps": args.steps,
        "lr": args.lr,
        "batch": args.batch,
        # Only when it differs from the recordings' own share, so that models built before the
        # option existed stay up to date.
        **({"right_share": args.right_share} if args.right_share != 0.5 else {}),
    }


def save(model: Any, base: Path, out: Path) -> None:
    """The trained weights beside the base model's own files (same names, fp32)."""
    from safetensors.torch import save_file

    for name in BASE_FILES:
        shutil.copy(base / name, out / name)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder, e.g. models/tiny-qwen2-sft")
    parser.add_argument("--base", type=Path, default=Path("models/tiny-qwen2"))
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("configs/smoke_cpu.yaml"),
        help="run config whose scaffold and tasks the recordings use",
    )
    parser.add_argument(
        "--work", type=Path, default=Path(".cache/sft"), help="recordings are kept here"
    )
    parser.add_argument(
        "--transcripts", type=Path, help="train on these recorded samples instead of recording"
    )
    parser.add_argument("--record-only", action="store_true")
    parser.add_argument("--concurrency", type=int, default=4, help="trials at a time")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--clip", type=float, default=CLIP)
    parser.add_argument("--beta2", type=float, default=0.999)
    parser.add_argument("--final-lr", type=float, default=0.1)
    parser.add_argument(
        "--right-share",
        type=float,
        default=0.5,
        help="share of the right fix among the training samples (0.5: as recorded, one right "
        "and one wrong per task; 0.2: each wrong one seen four times as often, a weaker start)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-dates", action="store_true", help="keep the recorded dates")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="sample every recorded turn every N steps and report (tuning)",
    )
    parser.add_argument("--eval-samples", type=int, default=16)
    parser.add_argument("--report", type=Path, help="write losses and evaluations here (JSON)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    return parser.parse_args(argv)


def up_to_date(args: argparse.Namespace) -> bool:
    """Whether ``args.out`` holds a model built from exactly these inputs (cheap: no torch)."""
    stamp = args.out / STAMP
    return stamp.is_file() and json.loads(stamp.read_text()) == stamp_for(args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out

    if not (args.base / "config.json").is_file():
        print(
            f"make_sft_model: error: no base model in {args.base} (run make_tiny_model.py)",
            file=sys.stderr,
        )
        return 2
    want = stamp_for(args)
    if out.exists() and not args.force and not args.record_only:
        if up_to_date(args):
            log(f"{out} is up to date; nothing to do")
            return 0
        if not (out / STAMP).is_file():
            print(
                f"make_sft_model: error: {out} is not a model built by this script; pass "
                "--force to replace it",
                file=sys.stderr,
            )
            return 1

    started = time.monotonic()
    cached = args.work / want["inputs"] / TRANSCRIPTS
    if args.transcripts:
        records = load_transcripts(args.transcripts)
    elif cached.is_file():
        log(f"using the recordings in {cached}")
        records = load_transcripts(cached)
    else:
        records = record(args.config, args.base, args.work / want["inputs"], args.concurrency)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        tmp.rename(cached)
        log(f"recorded {len(records)} samples in {time.monotonic() - started:.0f} s: {cached}")
    if args.record_only:
        return 0
    recorded_s = time.monotonic() - started

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(str(args.base))
    examples = weighted(checked_examples(records, tok), args.right_share)
    model = AutoModelForCausalLM.from_pretrained(str(args.base), dtype=torch.float32)
    if model.config.tie_word_embeddings:
        log(
            "note: the base model ties its embeddings; vLLM's reload_weights would then "
            "serve stale logits"
        )
    dates = None if args.no_dates else Dates(tok, args.seed)
    lengths = [len(e.prompt_ids) + len(e.response_ids) for e in examples]
    log(
        f"fine-tuning on {len(examples)} samples ({min(lengths)}-{max(lengths)} ids, "
        f"{sum(sum(e.loss_mask) for e in examples)} trained ids): {args.steps} steps of "
        f"{args.batch} on {args.device} with {torch.get_num_threads()} threads"
    )
    evals: list[dict[str, Any]] = []

    def on_step(step: int, loss: float, secs: float) -> None:
        if step % args.log_every == 0 or step == 1:
            eta = secs / step * (args.steps - step)
            log(f"  step {step}/{args.steps} loss {loss:.4f} ({secs:.0f} s, ~{eta:.0f} s left)")
        if args.eval_every and step % args.eval_every == 0:
            model.eval()
            acc = turn_accuracy(model, examples, n=args.eval_samples, seed=1, eos=tok.eos_token_id)
            model.train()
            evals.append({"step": step, "loss": loss, **acc})
            log(f"  eval {evals[-1]}")

    res = train(
        model,
        examples,
        dates,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch,
        seed=args.seed,
        pad_id=tok.pad_token_id,
        device=args.device,
        warmup=args.warmup,
        clip=args.clip,
        beta2=args.beta2,
        final_lr=args.final_lr,
        on_step=on_step,
    )
    tail = res.losses[-50:]
    final_loss = sum(tail) / len(tail)
    report = {
        "examples": len(examples),
        "steps": res.steps,
        "train_s": round(res.seconds, 1),
        "step_s": round(res.seconds / max(res.steps, 1), 3),
        "record_s": round(recorded_s, 1),
        "loss_first": res.losses[0],
        "loss_last50": final_loss,
        "losses_every10": res.losses[::10],
        "evals": evals,
    }
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    if final_loss > 0.1:
        log(
            f"warning: the loss is still {final_loss:.3f}; the model may not have learnt "
            "the routine"
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename at the end: an interrupted run leaves nothing that a
    # later one would mistake for a finished model.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp_dir.chmod(0o755)
    try:
        save(model, args.base, tmp_dir)
        (tmp_dir / "sft_log.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp_dir / STAMP).write_text(json.dumps(want, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp_dir.rename(out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log(
        f"wrote {out}: {res.steps} steps in {res.seconds:.0f} s ({report['step_s']} s a step), "
        f"loss {res.losses[0]:.2f} -> {final_loss:.4f}; {time.monotonic() - started:.0f} s in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
