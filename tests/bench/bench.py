"""``nox -s bench``: the gateway's added latency and trial throughput, on the real CPU stack.

Boots one inference stack the way ``swerl rollout`` does (vLLM CPU policy server → swerl
gateway → LiteLLM proxy, supervised, logs in ``runs/<bench id>/logs/``), then

(a) sends one claude-code-like conversation call by call both to the gateway and straight to
    vLLM's chat endpoint, interleaved (bench_latency.py), and
(b) runs the same real claude-code trials at each concurrency (bench_throughput.py), and with
    ``--oracle`` the same trials with Harbor's oracle agent (sandbox only, no model).

It prints tables and writes every number to ``runs/<bench id>.json``. Nothing here is a
pass/fail test: the numbers are ratios measured side by side in one run on whatever machine this
is, and the JSON records how loaded that machine was.

    .venv/bin/nox -s bench -- --calls 40 --levels 1,2,4 -n 2 --oracle
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from bench_latency import run_latency
from bench_throughput import run_throughput
from benchlib import machine_load, table

from swerl.testing import free_ports

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TASKS = ["fix-add", "fix-clamp", "fix-evens", "fix-reverse"]
#: vLLM parses tool calls on its own chat endpoint only with these (the latency baseline).
TOOL_PARSER_ARGS = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
PHASES = ["env_setup", "agent_setup", "agent_run", "verifier", "teardown", "total"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="base run config (default: built in, CPU)")
    p.add_argument("--calls", type=int, default=40, help="timed calls per arm (a)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per arm first (a)")
    p.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every call (a)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="task names (b)")
    p.add_argument("-n", type=int, default=2, help="trials per task and level (b)")
    p.add_argument("--levels", default="1,2,4", help="concurrencies (b)")
    p.add_argument("--max-turns", type=int, default=4, help="agent turns per trial (b)")
    p.add_argument("--max-output-tokens", type=int, default=256, help="per model call (b)")
    p.add_argument("--oracle", action="store_true", help="(b) also with Harbor's oracle agent")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    args.tasks = [x.strip() for x in args.tasks.split(",") if x.strip()]
    if not args.levels or min(args.levels) < 1:
        p.error("--levels must list positive integers, e.g. 1,2,4")
    return args


def bench_config(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """The run config of the benchmark: ``--config`` or the built-in CPU one, fresh ports."""
    if args.config:
        data = yaml.safe_load(args.config.read_text()) or {}
    else:
        data = {
            "model": {"path": str(ROOT / "models/tiny-qwen2"), "dtype": "float32"},
            "rollout": {"max_prompt_length": 3072, "max_response_length": 512},
            "algorithm": {"train_batch_size": 2, "n_resp": 1},
            "trainer": {"n_gpus_per_node": 0},
            "tasks": {"path": str(ROOT / "tasks")},
            "scaffold": {
                "name": "claude-code",
                "options": {"tools": ["Bash"], "bare": True, "system_prompt": ""},
            },
            "sandbox": {"name": "docker"},
            "engine": {"name": "local", "options": {"enforce_eager": True}},
        }
    proxy, gateway, policy = free_ports(3)
    data["run"] = {**data.get("run", {}), "name": "bench", "output_dir": str(run_dir.parent)}
    data["ports"] = {"proxy": proxy, "gateway": gateway, "policy": policy}
    data.setdefault("rollout", {})["max_turns"] = args.max_turns
    data.setdefault("tasks", {})["include"] = args.tasks
    scaffold = data.setdefault("scaffold", {"name": "claude-code"})
    if scaffold.get("name") == "claude-code":
        scaffold.setdefault("options", {})["max_output_tokens"] = args.max_output_tokens
    engine = data.setdefault("engine", {"name": "local"})
    if engine.get("name") == "local":
        opts = engine.setdefault("options", {})
        extra = [a for a in TOOL_PARSER_ARGS if a not in opts.get("policy_args", [])]
        opts["policy_args"] = [*opts.get("policy_args", []), *extra]
    return data


def preflight(loaded: Any, args: argparse.Namespace) -> None:
    """Say what `make setup` step is missing before booting anything for minutes."""
    config = loaded.config
    if config.engine.name != "local":
        sys.exit(f"bench: engine {config.engine.name!r}: only the local (CPU) engine is benched")
    python = loaded.options["engine"].policy_python
    python = python if python.is_absolute() else ROOT / python
    if not python.exists():
        sys.exit(f"bench: {python} is missing: run `make setup` (step policy-env)")
    if not (Path(config.model.path) / "config.json").exists():
        sys.exit(f"bench: no model at {config.model.path}: run `make setup` (step model)")
    if not args.skip_throughput:
        image = getattr(loaded.options.get("sandbox"), "base_image", "swerl-base:latest")
        res = subprocess.run(
            ["docker", "image", "inspect", image], capture_output=True, check=False, timeout=30
        )
        if res.returncode != 0:
            sys.exit(
                f"bench: no docker engine with {image}: run `make setup` (or --skip-throughput)"
            )


def git_head() -> str | None:
    res = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return res.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    from swerl.boot import Supervisor
    from swerl.config.load import load_config
    from swerl.launch import NOT_FOR_ROLLOUT, find_tasks
    from swerl.plan import build_plan, new_run_id
    from swerl.plugins import get_plugin_manager
    from swerl.rollout import new_api_key

    args = parse_args(argv)
    run_id = new_run_id("bench")
    run_dir = ROOT / "runs" / run_id
    run_dir.mkdir(parents=True)
    config_path = run_dir / "bench-config.yaml"
    config_path.write_text(yaml.safe_dump(bench_config(args, run_dir), sort_keys=False))
    pm = get_plugin_manager()
    loaded = load_config(config_path, pm=pm)
    preflight(loaded, args)
    config = loaded.config
    tasks = find_tasks(loaded, None)

    env = dict(os.environ)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault(config.proxy.master_key_env, new_api_key())
    plan = build_plan(loaded, pm, run_id=run_id, env=env, base_dir=ROOT)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(loaded.resolved(), sort_keys=False))
    policy_url = f"http://127.0.0.1:{config.ports.policy}"
    gateway_url = f"http://127.0.0.1:{config.ports.gateway}"

    result: dict[str, Any] = {
        "run_id": run_id,
        "git": git_head(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": config.model.path,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"before": machine_load()},
    }
    skip = set(NOT_FOR_ROLLOUT) | ({"litellm-proxy"} if args.skip_throughput else set())
    print(f"bench {run_id}: logs in {run_dir / 'logs'}", flush=True)
    with Supervisor(run_dir / "logs", env=env) as sup:
        for spec in plan.processes:
            if spec.name in skip:
                continue
            t0 = time.monotonic()
            print(f"starting {spec.name} ...", flush=True)
            sup.start(spec)
            print(f"  {spec.name} ready in {time.monotonic() - t0:.0f} s", flush=True)
        if not args.skip_latency:
            result["machine"]["latency_start"] = machine_load()
            result["latency"] = run_latency(
                policy_url=policy_url,
                gateway_url=gateway_url,
                served_name=config.model.served_name,
                model_len=config.rollout.model_len,
                calls=args.calls,
                warmup=args.warmup,
                max_tokens=args.max_tokens,
                temperature=config.rollout.temperature,
                top_p=config.rollout.top_p,
                seed=args.seed,
                log=lambda s: print(s, flush=True),
            )
            result["machine"]["latency_end"] = machine_load()
        if not args.skip_throughput:
            agents = ["claude-code", *(["oracle"] if args.oracle else [])]
            for agent in agents:
                result["machine"][f"{agent}_start"] = machine_load()
                result["throughput" if agent == "claude-code" else "oracle"] = run_throughput(
                    loaded,
                    pm,
                    levels=args.levels,
                    agent=agent,
                    tasks=tasks,
                    n=args.n,
                    run_id=run_id,
                    run_dir=run_dir,
                    api_key=env[config.proxy.master_key_env],
                    gateway_url=gateway_url,
                    log=lambda s: print(s, flush=True),
                )
                result["machine"][f"{agent}_end"] = machine_load()
        dead = sup.dead()
        if dead:
            result["died"] = [p.spec.name for p in dead]
    result["machine"]["after"] = machine_load()
    out = ROOT / "runs" / f"{run_id}.json"
    out.write_text(json.dumps(result, indent=2))
    print()
    print(report(result))
    print(f"\nnumbers: {out}")
    return 1 if result.get("died") else 0


def report(result: dict[str, Any]) -> str:
    """The tables a person reads; every number is also in the JSON."""
    parts = []
    m = result["machine"]["before"]
    parts.append(
        f"machine: {m['cpus']} CPUs, load average {m['load_1m']:.2f} / {m['load_5m']:.2f} / "
        f"{m['load_15m']:.2f} (1/5/15 min) at the start; model {result['model']}"
    )
    lat = result.get("latency")
    if lat:
        pt = lat["prompt_tokens"]
        parts.append(
            f"\n(a) gateway latency per call, ms: {lat['calls']} calls in "
            f"{lat['conversations']} conversation(s), prompts {pt['min']:.0f}-{pt['max']:.0f} "
            f"tokens, max_tokens {lat['max_tokens']}, arms interleaved\n"
            f"    baseline: {lat['baseline']}"
        )
        gi = lat["gateway_internal"]
        rows = [
            ["vLLM chat, direct", *_pcts(lat["vllm_ms"])],
            ["swerl gateway", *_pcts(lat["gateway_ms"])],
            ["added (gateway - direct, per call)", *_pcts(lat["added_ms"])],
            ["  gateway: its own vLLM call", *_pcts(gi["backend_ms"])],
            ["  gateway: render (template+ids)", *_pcts(gi["render_ms"])],
            ["  gateway: all but its vLLM call", *_pcts(gi["outside_backend_ms"])],
        ]
        parts.append(table(["", "p50", "p99", "mean"], rows))
        ct = lat["completion_tokens_mean"]
        parts.append(
            f"sampled ids per call (mean): gateway {ct['gateway']:.1f}, vLLM {ct['vllm']:.1f}; "
            f"equal on {lat['equal_length_calls']}/{lat['calls']} calls; "
            f"stitched calls {lat['stitched_calls']}; exactness {lat['exactness']}"
        )
    for key in ("throughput", "oracle"):
        tp = result.get(key)
        if not tp:
            continue
        parts.append(
            f"\n(b) trial throughput: {tp['label']}\n"
            f"    tasks {', '.join(tp['tasks'])} x {tp['n']} per level; phases: mean seconds per "
            "trial; tok/s: sampled ids per wall second; load: 1-min load average at the end"
        )
        rows = []
        for lv in tp["levels"]:
            ph = lv["seconds_per_phase"]
            fails = ", ".join(f"{k} {v}" for k, v in lv["failures"].items()) or "-"
            rows.append(
                [
                    lv["concurrency"],
                    lv["trials"],
                    lv["wall_s"],
                    lv["trials_per_min"],
                    lv["speedup"],
                    *(ph.get(p) for p in PHASES),
                    lv["reward_mean"],
                    lv["multi_turn_trials"],
                    lv["sampled_tokens_per_s"],
                    lv["load_1m_at_end"],
                    fails,
                ]
            )
        headers = [
            "conc",
            "trials",
            "wall s",
            "trials/min",
            "x",
            *PHASES,
            "reward",
            "multi-turn",
            "tok/s",
            "load",
            "failures",
        ]
        parts.append(table(headers, rows, digits=2))
    return "\n".join(parts)


def _pcts(d: dict[str, Any]) -> list[Any]:
    return [d["p50"], d["p99"], d["mean"]]


if __name__ == "__main__":
    sys.exit(main())
