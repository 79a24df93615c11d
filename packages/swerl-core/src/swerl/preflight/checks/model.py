"""Checks on the policy model: its config.json, head counts against TP and SP, and lengths."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swerl.preflight.checks.context import Context


def check_model(ctx: Context) -> None:
    """model.path is a local model folder whose config.json gives heads and positions."""
    if ctx.model_error is not None:
        ctx.report.fail("model", ctx.model_error.detail, ctx.model_error.fix)
        return
    m = ctx.model
    assert m is not None
    if m.num_attention_heads is None:
        ctx.report.warn(
            "model",
            f"{m.path}/config.json ({m.model_type}) has no num_attention_heads "
            "(nor text_config.num_attention_heads): head divisibility cannot be checked",
            "check that model.path is a decoder language model in Hugging Face layout",
        )
        return
    parts = [
        f"{m.num_attention_heads} attention heads",
        f"{m.num_key_value_heads} KV heads",
        f"max_position_embeddings {m.max_position_embeddings or 'not set'}",
    ]
    where = " (from text_config)" if m.nested else ""
    ctx.report.passed("model", f"{m.path} ({m.model_type}): {', '.join(parts)}{where}")


def _heads(ctx: Context, name: str) -> tuple[int, int] | None:
    """(attention heads, KV heads), or None after a skip row when they are unknown."""
    m = ctx.model
    if m is None or m.num_attention_heads is None or m.num_key_value_heads is None:
        ctx.report.skip(name, "the model's head counts are unknown (see the model row)")
        return None
    return m.num_attention_heads, m.num_key_value_heads


def check_tensor_parallel(ctx: Context) -> None:
    """vLLM splits attention heads over TP ranks, and KV heads too or replicates them.

    vLLM requires ``heads % tp == 0``. For KV heads it partitions when ``kv % tp == 0`` and
    replicates each KV head on ``tp // kv`` ranks when ``tp % kv == 0`` (``QKVParallelLinear``;
    so 2 KV heads at TP=4 run, with the KV cache stored twice: a warning, not a failure); any
    other pair fails when the server starts.
    """
    name = "tensor parallel"
    heads_kv = _heads(ctx, name)
    if heads_kv is None:
        return
    heads, kv = heads_kv
    tp = ctx.config.rollout.tensor_parallel_size
    key = f"rollout.tensor_parallel_size={tp}"
    fix = f"set rollout.tensor_parallel_size to one of {_valid_sizes(heads, kv)}"
    if heads % tp:
        ctx.report.fail(name, f"num_attention_heads={heads} is not divisible by {key}", fix)
        return
    if kv % tp == 0:
        ctx.report.passed(name, f"{key} splits {heads} attention heads and {kv} KV heads evenly")
        return
    if tp % kv == 0:
        ctx.report.warn(
            name,
            f"num_key_value_heads={kv} is not divisible by {key}: vLLM replicates each KV "
            f"head on {tp // kv} GPUs, so every KV-cache entry is stored {tp // kv} times",
            f"use rollout.tensor_parallel_size<={kv} and a larger data_parallel_size, "
            "unless the weights need the extra GPUs",
        )
        return
    ctx.report.fail(
        name,
        f"num_key_value_heads={kv} is not divisible by {key}, and {tp} is not a multiple of "
        f"{kv}: vLLM can neither split nor replicate the KV heads",
        fix,
    )


def _valid_sizes(heads: int, kv: int) -> str:
    """The parallel sizes that satisfy both rules (heads divide; KV heads divide or repeat)."""
    sizes = [n for n in range(1, heads + 1) if heads % n == 0 and (kv % n == 0 or n % kv == 0)]
    return ", ".join(map(str, sizes))


def check_sequence_parallel(ctx: Context) -> None:
    """verl's Ulysses rule (``verl/models/transformers/monkey_patch.py``): attention heads must
    divide by the SP size; KV heads must divide by it, or divide it (verl then repeats them)."""
    name = "sequence parallel"
    sp = ctx.config.trainer.sequence_parallel_size
    if sp == 1:
        ctx.report.passed(name, "trainer.sequence_parallel_size=1 (off)")
        return
    heads_kv = _heads(ctx, name)
    if heads_kv is None:
        return
    heads, kv = heads_kv
    key = f"trainer.sequence_parallel_size={sp}"
    if heads % sp:
        ctx.report.fail(
            name,
            f"num_attention_heads={heads} is not divisible by {key}",
            f"set trainer.sequence_parallel_size to one of {_valid_sizes(heads, kv)}",
        )
        return
    if kv % sp == 0:
        ctx.report.passed(name, f"{key} splits {heads} attention heads and {kv} KV heads")
        return
    if sp % kv == 0:
        ctx.report.passed(
            name,
            f"{key} splits {heads} attention heads; verl repeats the {kv} KV heads "
            f"{sp // kv}x to match",
        )
        return
    ctx.report.fail(
        name,
        f"num_key_value_heads={kv} is not divisible by {key}, and {sp} is not a multiple of "
        f"{kv} (verl asserts one of them)",
        f"set trainer.sequence_parallel_size to one of {_valid_sizes(heads, kv)}",
    )


def check_lengths(ctx: Context) -> None:
    """A trajectory (prompt + response) must fit the model's positions and vLLM's max_model_len."""
    name = "lengths"
    r = ctx.config.rollout
    total = r.max_prompt_length + r.max_response_length
    sum_text = (
        f"rollout.max_prompt_length + max_response_length = "
        f"{r.max_prompt_length} + {r.max_response_length} = {total}"
    )
    if r.max_model_len is not None and total > r.max_model_len:
        ctx.report.fail(
            name,
            f"{sum_text} exceeds rollout.max_model_len={r.max_model_len}",
            f"raise rollout.max_model_len to {total} (or unset it), or shorten the prompt/response",
        )
        return
    m = ctx.model
    max_pos = m.max_position_embeddings if m is not None else None
    if max_pos is None:
        why = "unknown (see the model row)" if m is None else "not in config.json"
        ctx.report.skip(name, f"{sum_text}; the model's max_position_embeddings is {why}")
        return
    assert m is not None
    length, what = (
        (r.max_model_len, f"rollout.max_model_len={r.max_model_len}")
        if r.max_model_len is not None
        else (total, sum_text)
    )
    if length <= max_pos:
        ctx.report.passed(name, f"{what} <= max_position_embeddings {max_pos}")
        return
    detail = f"{what} exceeds the model's max_position_embeddings={max_pos}"
    if m.rope_scaled:
        ctx.report.warn(
            name,
            f"{detail}; the model declares RoPE scaling, which may allow it",
            "check that the model's rope_scaling covers this length, or shorten "
            "rollout.max_prompt_length / max_response_length",
        )
        return
    ctx.report.fail(
        name,
        detail,
        f"shorten rollout.max_prompt_length / max_response_length to at most {max_pos} in total",
    )
