"""(a) What the gateway adds per call, against calling the same vLLM server directly.

The same claude-code-like conversation (bench_conversation.py) is sent, call by call, to

* ``gateway``: the swerl gateway's ``/v1/chat/completions`` (render with the chat template,
  ``/v1/completions`` with token ids to vLLM, hermes tool-call parsing, per-trial records), and
* ``vllm``: vLLM's own ``/v1/chat/completions`` on the same server, with the same messages and
  tools (vLLM renders the same template and parses with its own hermes parser:
  ``--enable-auto-tool-choice --tool-call-parser hermes``).

That baseline is what an agent would call without swerl: messages and tools in, a parsed
assistant message out. It is the fair one because both sides then do the same work; the gateway
moves rendering and parsing out of vLLM and adds one loopback hop. The other possible baseline,
vLLM's ``/v1/completions`` with the token ids, is exactly the gateway's own backend call: the
gateway times it per call in the same run (``backend_ms`` of its session records), so the
report also gives "gateway minus its own vLLM call".

Each step sends one request both ways, in strictly alternating order (drift, a warm prefix
cache and whoever goes first cancel out). The conversation follows the gateway's replies, so
the gateway stitches every call onto the last, as in a real trial; a new conversation (a new
session) starts when the next prompt would not fit the model. Sampling is fixed (the gateway's
RL temperature for both, ``max_tokens`` fixed, a seed per vLLM request); a random tiny model
almost never samples its end-of-turn id, so both sides sample ``max_tokens`` ids, and the report
counts the calls where they did not.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bench_conversation import TOOLS, follow, start
from benchlib import alternating_order, describe, paired_differences

ARMS = ("gateway", "vllm")
BASELINE = (
    "vLLM /v1/chat/completions on the same server (same messages and tools; vLLM renders the "
    "chat template and parses hermes tool calls itself)"
)


class BenchError(RuntimeError):
    """A call failed; the benchmark stops (a number from a failing stack would mislead)."""


class Client:
    """One keep-alive HTTP connection per arm, so both pay the same client cost."""

    def __init__(self, base_url: str, timeout_s: float = 600.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout_s = timeout_s
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=payload, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                if attempt == 2:
                    raise
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data.decode(errors="replace")

    def close(self) -> None:
        self.conn.close()


def chat_body(
    served_name: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
) -> dict[str, Any]:
    return {
        "model": served_name,
        "messages": messages,
        "tools": TOOLS,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "seed": seed,
        "stream": False,
    }


def run_latency(
    *,
    policy_url: str,
    gateway_url: str,
    served_name: str,
    model_len: int,
    calls: int = 40,
    warmup: int = 2,
    max_tokens: int = 32,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Send ``warmup + calls`` steps both ways and return the numbers (see the module doc)."""
    clients = {"gateway": Client(gateway_url), "vllm": Client(policy_url)}
    rows: list[dict[str, Any]] = []
    sessions: list[str] = []
    conversation = 0
    key = f"bench-latency-{seed}-{conversation}"
    sessions.append(key)
    messages = start()
    step_in_conv = 0
    try:
        for step in range(warmup + calls):
            body = chat_body(
                served_name,
                messages,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed + step,
            )
            headers = {"x-swerl-trial": key}
            order = alternating_order(step, *ARMS)
            took: dict[str, float] = {}
            data: dict[str, Any] = {}
            for arm in order:
                t0 = time.perf_counter()
                status, data[arm] = clients[arm].request(
                    "POST", "/v1/chat/completions", body, headers
                )
                took[arm] = (time.perf_counter() - t0) * 1000
                if status != 200:
                    raise BenchError(f"{arm} answered {status} at step {step}: {data[arm]!r:.500}")
            usage = {arm: data[arm].get("usage") or {} for arm in ARMS}
            if step >= warmup:
                rows.append(
                    {
                        "step": step - warmup,
                        "first": order[0],
                        "session": key,
                        "call": step_in_conv + 1,
                        "gateway_ms": took["gateway"],
                        "vllm_ms": took["vllm"],
                        "gateway_prompt_tokens": usage["gateway"].get("prompt_tokens"),
                        "vllm_prompt_tokens": usage["vllm"].get("prompt_tokens"),
                        "gateway_completion_tokens": usage["gateway"].get("completion_tokens"),
                        "vllm_completion_tokens": usage["vllm"].get("completion_tokens"),
                    }
                )
                if len(rows) % 10 == 0:
                    log(f"latency: {len(rows)}/{calls} calls")
            reply = data["gateway"]["choices"][0]["message"]
            step_in_conv += 1
            used = int(usage["gateway"].get("total_tokens") or 0)
            # The next prompt: this one, the reply, the glue and one observation (< 200 ids).
            if used + 200 + max_tokens > model_len:
                conversation += 1
                key = f"bench-latency-{seed}-{conversation}"
                sessions.append(key)
                messages, step_in_conv = start(), 0
            else:
                messages = follow(messages, reply, step_in_conv)
        records = collect_sessions(clients["gateway"], sessions)
        gateway_stats = clients["gateway"].request("GET", "/stats")[1]
    finally:
        for c in clients.values():
            c.close()
    return summarize_latency(rows, records, gateway_stats, max_tokens=max_tokens, warmup=warmup)


def collect_sessions(client: Client, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The gateway's records of the benchmark's sessions, removed from the gateway."""
    out = {}
    for key in keys:
        status, body = client.request("DELETE", f"/sessions/{key}")
        if status == 200:
            out[key] = body
    return out


def turns_by_call(record: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {t["call"]: t for s in record.get("samples", []) for t in s.get("turns", [])}


def summarize_latency(
    rows: list[dict[str, Any]],
    records: dict[str, dict[str, Any]],
    gateway_stats: dict[str, Any] | None,
    *,
    max_tokens: int,
    warmup: int,
) -> dict[str, Any]:
    """Latency per arm, the paired difference, and the gateway's own breakdown per call."""
    turns = {key: turns_by_call(rec) for key, rec in records.items()}
    for row in rows:
        turn = turns.get(row["session"], {}).get(row["call"])
        row["render_ms"] = turn["render_ms"] if turn else None
        row["backend_ms"] = turn["backend_ms"] if turn else None
        row["stitched"] = turn["stitched"] if turn else None
    g = [r["gateway_ms"] for r in rows]
    v = [r["vllm_ms"] for r in rows]
    with_turn = [r for r in rows if r["backend_ms"] is not None]
    equal = [r for r in rows if r["gateway_completion_tokens"] == r["vllm_completion_tokens"]]
    exact = [rec.get("exactness") for rec in records.values() if rec.get("exactness") is not None]
    return {
        "baseline": BASELINE,
        "calls": len(rows),
        "warmup_calls": warmup,
        "max_tokens": max_tokens,
        "conversations": len(records),
        "order": "strictly alternating per call (gateway first on even calls)",
        "gateway_ms": describe(g),
        "vllm_ms": describe(v),
        "added_ms": describe(paired_differences(g, v)),
        "added_ms_equal_length_calls": describe([r["gateway_ms"] - r["vllm_ms"] for r in equal]),
        "equal_length_calls": len(equal),
        "gateway_internal": {
            # The gateway's own timing of its /v1/completions call to the same vLLM.
            "backend_ms": describe([r["backend_ms"] for r in with_turn]),
            "render_ms": describe([r["render_ms"] for r in with_turn]),
            # Client-side gateway time minus its backend call: render, parse, records, one hop.
            "outside_backend_ms": describe([r["gateway_ms"] - r["backend_ms"] for r in with_turn]),
            "self_reported": (gateway_stats or {}).get("latency_ms"),
        },
        "prompt_tokens": describe(
            [float(r["gateway_prompt_tokens"]) for r in rows if r["gateway_prompt_tokens"]]
        ),
        "completion_tokens_mean": {
            "gateway": describe([float(r["gateway_completion_tokens"] or 0) for r in rows])["mean"],
            "vllm": describe([float(r["vllm_completion_tokens"] or 0) for r in rows])["mean"],
        },
        "stitched_calls": sum(1 for r in rows if r["stitched"]),
        "exactness": min(exact) if exact else None,
        "per_call": rows,
    }
