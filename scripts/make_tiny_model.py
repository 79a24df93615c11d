"""Build the tiny random Qwen2 policy that the CPU smoke path serves and trains.

No model weights can be downloaded where swerl is developed, so the policy is random and its
tokenizer is trained here, offline, on the Python standard library's own source (present on every
machine). The choices that matter downstream:

* head_dim 64 (hidden 256 / 4 heads): vLLM's CPU attention needs it; 2 KV heads keep GQA in play.
* untied input and output embeddings: vLLM's ``reload_weights`` keeps the old output layer when
  they are tied, so a weight sync would silently serve stale logits.
* a ChatML chat template with hermes-style tool calls (``<tool_call>{json}</tool_call>``), which
  vLLM's hermes parser and the swerl gateway both read.
* max_position_embeddings 4096 covers configs/smoke_cpu.yaml (3072 prompt + 512 response).

``--arch qwen3_moe`` builds the same-sized mixture of experts instead (8 experts of width 128,
top-2, every layer sparse; per-head q/k norms, no attention biases; the Hub's per-expert weight
names): the model that exercises the veomni engine's router replay
(configs/gpu_1gpu_veomni_moe.yaml).

The same seed on the same Python gives byte-identical files. A second run with the same seed does
nothing (it reads a stamp file before importing anything heavy); --force rebuilds.

Usage: python scripts/make_tiny_model.py models/tiny-qwen2 [--seed 0] [--arch qwen2] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

#: Bump when the recipe changes so that existing models are rebuilt.
RECIPE = "swerl-tiny-qwen2/1"
STAMP = "swerl_tiny_model.json"

VOCAB_SIZE = 4096
INIT_STD = 0.02
CORPUS_BYTES = 3_000_000
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]
ARCH = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 4096,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
#: --arch qwen3_moe: the MLP of every layer becomes a routed mixture of small experts.
MOE = {"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 128}
ARCHS = ("qwen2", "qwen3_moe")

# ChatML, as Qwen2.5 renders it: tools go into the system turn; assistant tool calls and tool
# results are wrapped in the tags the hermes parser looks for; consecutive tool results share one
# user turn. Every newline is an explicit string, so trim_blocks/lstrip_blocks cannot change it.
CHAT_TEMPLATE = r"""
{%- set sys = messages[0].content if messages and messages[0].role == 'system' else none %}
{%- if tools %}
  {{- '<|im_start|>system\n' }}
  {%- if sys %}{{- sys + '\n\n' }}{% endif %}
  {{- '# Tools\n\nYou may call one or more functions. ' }}
  {{- 'Their signatures are inside <tools></tools>:\n<tools>' }}
  {%- for tool in tools %}{{- '\n' + (tool | tojson) }}{% endfor %}
  {{- '\n</tools>\n\nTo call a function, answer with a JSON object ' }}
  {{- 'inside <tool_call></tool_call> tags:\n<tool_call>\n' }}
  {{- '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}
{%- elif sys %}
  {{- '<|im_start|>system\n' + sys + '<|im_end|>\n' }}
{%- endif %}
{%- for m in messages %}
  {%- if m.role == 'system' and loop.first %}
  {%- elif m.role == 'assistant' %}
    {{- '<|im_start|>assistant' }}
    {%- if m.content %}{{- '\n' + m.content }}{% endif %}
    {%- for call in m.tool_calls or [] %}
      {%- set fn = call.function if call.function is defined else call %}
      {%- set args = fn.arguments if fn.arguments is string else (fn.arguments | tojson) %}
      {{- '\n<tool_call>\n{"name": "' + fn.name + '", "arguments": ' + args + '}\n</tool_call>' }}
    {%- endfor %}
    {{- '<|im_end|>\n' }}
  {%- elif m.role == 'tool' %}
    {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
      {{- '<|im_start|>user' }}
    {%- endif %}
    {{- '\n<tool_response>\n' + m.content + '\n</tool_response>' }}
    {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{% endif %}
  {%- else %}
    {{- '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{% endif %}
""".strip()


def log(msg: str) -> None:
    print(f"make_tiny_model: {msg}", flush=True)


def corpus_files() -> list[str]:
    """Standard-library sources, in a fixed order, up to CORPUS_BYTES."""
    stdlib = Path(os.__file__).parent
    files, total = [], 0
    for path in sorted(stdlib.glob("*.py")):
        files.append(str(path))
        total += path.stat().st_size
        if total >= CORPUS_BYTES:
            break
    return files


def train_tokenizer(out: Path) -> dict[str, int]:
    """Train byte-level BPE and write tokenizer.json + tokenizer_config.json; return special ids.

    The files are written by hand rather than through transformers: importing transformers costs
    10-20 s here, and the plain `PreTrainedTokenizerFast` class reads on transformers 4 and 5 alike
    (the vLLM CPU environment pins its own transformers).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train(corpus_files(), trainer)
    bpe.save(str(out / "tokenizer.json"))
    ids = {tok: bpe.token_to_id(tok) for tok in SPECIAL_TOKENS}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "additional_special_tokens": SPECIAL_TOKENS[3:],
        "model_max_length": ARCH["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    write_json(out / "tokenizer_config.json", config)
    return ids | {"vocab_size": bpe.get_vocab_size()}


def build_model(out: Path, tok: dict[str, int], seed: int, arch: str = "qwen2") -> int:
    """Write config.json, generation_config.json and random float32 weights; return #params.

    Weights are drawn with numpy (N(0, 0.02) for matrices, zero biases, unit norms, as
    transformers initialises Qwen2) so that no torch import is needed.
    """
    moe = arch == "qwen3_moe"
    import numpy as np
    from safetensors.numpy import save_file

    vocab, hidden, inter = tok["vocab_size"], ARCH["hidden_size"], ARCH["intermediate_size"]
    q_dim = ARCH["num_attention_heads"] * ARCH["head_dim"]
    kv_dim = ARCH["num_key_value_heads"] * ARCH["head_dim"]
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * INIT_STD).astype(np.float32)

    weights = {"model.embed_tokens.weight": normal(vocab, hidden)}
    for i in range(ARCH["num_hidden_layers"]):
        p = f"model.layers.{i}."
        weights |= {
            p + "input_layernorm.weight": np.ones(hidden, np.float32),
            p + "self_attn.q_proj.weight": normal(q_dim, hidden),
            p + "self_attn.k_proj.weight": normal(kv_dim, hidden),
            p + "self_attn.v_proj.weight": normal(kv_dim, hidden),
            p + "self_attn.o_proj.weight": normal(hidden, q_dim),
            p + "post_attention_layernorm.weight": np.ones(hidden, np.float32),
        }
        if moe:
            weights[p + "self_attn.q_norm.weight"] = np.ones(ARCH["head_dim"], np.float32)
            weights[p + "self_attn.k_norm.weight"] = np.ones(ARCH["head_dim"], np.float32)
            weights[p + "mlp.gate.weight"] = normal(MOE["num_experts"], hidden)
            width = MOE["moe_intermediate_size"]
            for e in range(MOE["num_experts"]):
                x = f"{p}mlp.experts.{e}."
                weights[x + "gate_proj.weight"] = normal(width, hidden)
                weights[x + "up_proj.weight"] = normal(width, hidden)
                weights[x + "down_proj.weight"] = normal(hidden, width)
        else:
            for name, dim in (("q", q_dim), ("k", kv_dim), ("v", kv_dim)):
                weights[f"{p}self_attn.{name}_proj.bias"] = np.zeros(dim, np.float32)
            weights[p + "mlp.gate_proj.weight"] = normal(inter, hidden)
            weights[p + "mlp.up_proj.weight"] = normal(inter, hidden)
            weights[p + "mlp.down_proj.weight"] = normal(hidden, inter)
    weights["model.norm.weight"] = np.ones(hidden, np.float32)
    weights["lm_head.weight"] = normal(vocab, hidden)  # untied: see the module docstring
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)

    eos, pad = tok["<|im_end|>"], tok["<|endoftext|>"]
    config: dict[str, object] = {
        "architectures": ["Qwen3MoeForCausalLM" if moe else "Qwen2ForCausalLM"],
        "model_type": arch,
        "vocab_size": vocab,
        **ARCH,
        "hidden_act": "silu",
        "attention_dropout": 0.0,
        "initializer_range": INIT_STD,
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": ARCH["num_hidden_layers"],
        "bos_token_id": None,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "torch_dtype": "float32",  # transformers 4 reads this key, 5 reads "dtype"
        "dtype": "float32",
    }
    if moe:
        config |= MOE | {
            "attention_bias": False,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "norm_topk_prob": True,
            "output_router_logits": False,
            "router_aux_loss_coef": 0.001,
        }
    write_json(out / "config.json", config)
    write_json(out / "generation_config.json", {"eos_token_id": eos, "pad_token_id": pad})
    return sum(w.size for w in weights.values())


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def stamp_for(seed: int, arch: str = "qwen2") -> dict[str, object]:
    # the architecture only when it is not the default, so that existing models stay up to date
    return {"recipe": RECIPE, "seed": seed} | ({"arch": arch} if arch != "qwen2" else {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder, e.g. models/tiny-qwen2")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    parser.add_argument("--arch", choices=ARCHS, default="qwen2", help="model type (default qwen2)")
    parser.add_argument("--force", action="store_true", help="rebuild even if it is there")
    args = parser.parse_args(argv)
    out: Path = args.out
    want = stamp_for(args.seed, args.arch)

    stamp = out / STAMP
    if out.exists() and not args.force:
        have = json.loads(stamp.read_text()) if stamp.is_file() else None
        if have == want:
            log(f"{out} is up to date (seed {args.seed}); nothing to do")
            return 0
        what = f"was built with {have}" if have else "is not a model built by this script"
        print(
            f"make_tiny_model: error: {out} {what}; pass --force to rebuild it (wanted {want})",
            file=sys.stderr,
        )
        return 1

    started = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename at the end: an interrupted build leaves nothing that a
    # later run would mistake for a finished model.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)
    try:
        log(f"training a {VOCAB_SIZE}-token BPE tokenizer on the Python standard library")
        tok = train_tokenizer(tmp)
        log(f"building a random {args.arch} (seed {args.seed})")
        params = build_model(tmp, tok, args.seed, args.arch)
        write_json(tmp / STAMP, want)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    log(
        f"wrote {out}: vocab {tok['vocab_size']}, {params / 1e6:.1f}M params, {size:.1f} MB, "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
