"""scripts/make_tiny_model.py --arch qwen3_moe: the tiny MoE that the veomni router-replay config
serves and trains loads in transformers with every weight used, and routes its tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_tiny_model.py"


def build(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def moe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny-qwen3-moe"
    done = build(out, "--arch", "qwen3_moe")
    assert done.returncode == 0, done.stderr
    return out


def test_moe_loads_with_every_weight_and_routes_top_2_of_8(moe: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model: Any
    model, info = AutoModelForCausalLM.from_pretrained(
        str(moe), dtype=torch.float32, output_loading_info=True
    )
    assert type(model).__name__ == "Qwen3MoeForCausalLM"
    # every tensor in the file has a place in the model, and the model initialised nothing
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)  # untied
    cfg = json.loads((moe / "config.json").read_text())
    assert (cfg["num_experts"], cfg["num_experts_per_tok"]) == (8, 2)
    ids = torch.tensor([[5, 17, 300, 41, 9, 1200]])
    out = model(ids, output_router_logits=True)
    assert out.logits.shape == (1, 6, cfg["vocab_size"])
    assert len(out.router_logits) == cfg["num_hidden_layers"]  # every layer is sparse
    assert out.router_logits[0].shape == (6, 8)
    # random routers spread the tokens over more than one expert
    assert len(set(out.router_logits[0].topk(2).indices.flatten().tolist())) > 2


def test_the_architecture_is_part_of_the_stamp(moe: Path, tmp_path: Path) -> None:
    assert json.loads((moe / "swerl_tiny_model.json").read_text())["arch"] == "qwen3_moe"
    again = build(moe, "--arch", "qwen3_moe")
    assert again.returncode == 0 and "up to date" in again.stdout
    # the dense default over an MoE folder is refused, not silently kept
    dense = build(moe)
    assert dense.returncode == 1 and "--force" in dense.stderr
