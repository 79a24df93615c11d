"""``swerl check --live``: boot the inference stack and send one request through all of it.

claude-code speaks Anthropic Messages to the LiteLLM proxy; the proxy forwards OpenAI chat to the
gateway, which calls the policy server with token ids and records them. One such request, keyed
by its own session header, must come back with token ids and one logprob per sampled id. Unlike
the plain preflight this starts processes (in ``runs/<run_id>/logs``) and stops them again.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swerl.boot import BootError, Supervisor
from swerl.preflight.report import Report

if TYPE_CHECKING:
    from swerl.config.load import LoadedConfig
    from swerl.plugins import PluginManager

NAME = "live round trip"
NOT_STARTED = {"trainer", "verl-trainer"}


def _request(url: str, *, body: dict[str, Any] | None, headers: dict[str, str], method: str) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=300) as resp:  # loopback only
        return json.loads(resp.read())


def live_check(loaded: LoadedConfig, pm: PluginManager, report: Report) -> None:
    from swerl.launch import prepare_run

    config = loaded.config
    plan, env = prepare_run(loaded, pm)
    key_env = config.proxy.master_key_env
    logs = Path(plan.run_dir) / "logs"
    session = f"live-check-{uuid.uuid4().hex[:8]}"
    try:
        with Supervisor(logs, env=env) as sup:
            boot = time.monotonic()
            for spec in plan.processes:
                if spec.name not in NOT_STARTED:
                    sup.start(spec)
            boot_s = time.monotonic() - boot
            start = time.monotonic()
            reply = _request(
                f"http://127.0.0.1:{config.ports.proxy}/v1/messages",
                body={
                    "model": config.model.served_name,
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": "Say hello."}],
                },
                headers={
                    "content-type": "application/json",
                    "x-api-key": env[key_env],
                    "anthropic-version": "2023-06-01",
                    "x-swerl-trial": session,
                },
                method="POST",
            )
            call_ms = (time.monotonic() - start) * 1000
            record = _request(
                f"http://127.0.0.1:{config.ports.gateway}/sessions/{session}",
                body=None,
                headers={},
                method="DELETE",
            )
    except BootError as exc:
        report.fail(NAME, f"the stack did not come up: {exc}", "see the log named above")
        return
    except OSError as exc:
        report.fail(
            NAME,
            f"the request through proxy → gateway → policy failed: {exc}",
            f"read the logs in {logs}",
        )
        return
    samples = record.get("samples") or []
    if not samples or not samples[0]["response_ids"]:
        report.fail(
            NAME,
            f"the gateway recorded no tokens for session {session} (reply: {str(reply)[:200]})",
            "check that the proxy forwards client headers (forward_client_headers_to_llm_api)",
        )
        return
    s = samples[0]
    sampled = sum(s["loss_mask"])
    ok = len(s["logprobs"]) == len(s["response_ids"]) and record.get("exactness") == 1.0
    detail = (
        f"Anthropic Messages → LiteLLM :{config.ports.proxy} → gateway :{config.ports.gateway} → "
        f"policy :{config.ports.policy}: {len(s['prompt_ids'])} prompt ids, {sampled} sampled ids "
        f"with logprobs, exactness {record.get('exactness')}; call {call_ms:.0f} ms, "
        f"boot {boot_s:.0f} s"
    )
    if ok:
        report.passed(NAME, detail)
    else:
        report.fail(NAME, detail, "token capture is broken: report it with the gateway log")
