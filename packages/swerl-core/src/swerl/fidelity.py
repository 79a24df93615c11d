"""Check recorded logprobs against a recomputation by the policy server.

The update is only correct if each trained token's recorded logprob is the one it was sampled
at. Ask the policy server for ``prompt_logprobs`` over each whole sample (prompt + response) and
compare at the mask-1 positions. With fp32 weights the two agree to ~1e-6 on vLLM CPU.
"""

from __future__ import annotations

from typing import Any

from swerl.trajectories import SampleRecord


async def recompute_deltas(
    policy_url: str, served_name: str, records: list[SampleRecord]
) -> dict[str, Any]:
    """Max and mean |recorded − recomputed| over every trained token of ``records``."""
    import aiohttp

    deltas: list[float] = []
    async with aiohttp.ClientSession() as http:
        for rec in records:
            if not rec.response_ids:
                continue
            body = {
                "model": served_name,
                "prompt": rec.prompt_ids + rec.response_ids,
                "max_tokens": 1,
                "prompt_logprobs": 0,
            }
            async with http.post(f"{policy_url.rstrip('/')}/v1/completions", json=body) as resp:
                resp.raise_for_status()
                recomputed = (await resp.json())["choices"][0]["prompt_logprobs"]
            start = len(rec.prompt_ids)
            for j, (tid, mask, lp) in enumerate(
                zip(rec.response_ids, rec.loss_mask, rec.logprobs, strict=True)
            ):
                if mask:
                    deltas.append(abs(recomputed[start + j][str(tid)]["logprob"] - lp))
    return {
        "tokens": len(deltas),
        "max_abs_diff": max(deltas) if deltas else None,
        "mean_abs_diff": sum(deltas) / len(deltas) if deltas else None,
    }
