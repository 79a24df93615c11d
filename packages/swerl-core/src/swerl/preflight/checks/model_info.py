"""Read what preflight needs from a Hugging Face model folder, without importing transformers.

Multimodal and some MoE configs (Qwen3.5, Qwen2.5-VL, ...) keep the language model's numbers
under ``text_config``; a value is taken from the top level first, then from there.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Bytes per element for the dtypes found in config.json and safetensors headers.
DTYPE_BYTES = {
    "float32": 4, "F32": 4, "float16": 2, "F16": 2, "bfloat16": 2, "BF16": 2,
    "float64": 8, "F64": 8, "int8": 1, "I8": 1, "U8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "I32": 4, "I64": 8, "BOOL": 1,
}  # fmt: skip
_MAX_HEADER = 100 * 1024 * 1024  # a safetensors header larger than this is not one


class ModelConfigError(Exception):
    """config.json is missing or unusable; ``fix`` says what to do."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    raw: dict[str, Any] = field(repr=False)
    model_type: str
    num_attention_heads: int | None
    num_key_value_heads: int | None
    max_position_embeddings: int | None
    #: Keys whose value came from ``text_config`` rather than the top level.
    nested: tuple[str, ...] = ()

    def get(self, key: str) -> Any:
        """A config value from the top level, else from ``text_config``."""
        if key in self.raw:
            return self.raw[key]
        text = self.raw.get("text_config")
        return text.get(key) if isinstance(text, dict) else None

    @property
    def experts(self) -> int | None:
        """The expert count of a mixture of experts (Qwen3-MoE, DeepSeek, Mixtral keys); None for
        a dense model."""
        for key in ("num_experts", "n_routed_experts", "num_local_experts"):
            value = self.get(key)
            if isinstance(value, int) and value > 1:
                return value
        return None

    @property
    def rope_scaled(self) -> bool:
        """The model declares RoPE scaling (YaRN and the like), so it may serve past max_pos."""
        for key in ("rope_scaling", "rope_parameters"):
            value = self.get(key)
            if isinstance(value, dict) and value.get("factor") not in (None, 1, 1.0):
                return True
        return False


def _positive_int(info_raw: dict[str, Any], key: str, where: Path) -> tuple[int | None, bool]:
    """(value, nested) for ``key``; raises if present but not a positive integer."""
    nested = False
    value = info_raw.get(key)
    if value is None and isinstance(info_raw.get("text_config"), dict):
        value = info_raw["text_config"].get(key)
        nested = value is not None
    if value is None:
        return None, False
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        name = f"text_config.{key}" if nested else key
        raise ModelConfigError(
            f"{where}: {name} must be a positive integer, got {value!r}",
            "fix the model's config.json or point model.path at an intact model folder",
        )
    return value, nested


def load_model_info(path: Path) -> ModelInfo:
    """Parse ``<path>/config.json``; raise :class:`ModelConfigError` saying what is wrong."""
    folder = path.expanduser()
    shown = folder if folder.is_absolute() else Path.cwd() / folder
    fix_missing = (
        "set model.path to a local Hugging Face model folder that holds config.json "
        "(the CPU smoke model is built by `make setup`)"
    )
    if not folder.exists():
        raise ModelConfigError(f"model.path {shown} does not exist", fix_missing)
    if not folder.is_dir():
        raise ModelConfigError(f"model.path {shown} is a file, not a model folder", fix_missing)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelConfigError(f"{shown} has no config.json", fix_missing)
    try:
        raw = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelConfigError(
            f"cannot read {shown / 'config.json'}: {exc}",
            "check the file's permissions or re-download the model",
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelConfigError(
            f"{shown / 'config.json'} is not JSON (line {exc.lineno}: {exc.msg})",
            "re-download the model or repair config.json",
        ) from None
    if not isinstance(raw, dict):
        raise ModelConfigError(
            f"{shown / 'config.json'} holds a {type(raw).__name__}, not a JSON object",
            "re-download the model or repair config.json",
        )
    where = shown / "config.json"
    heads, heads_nested = _positive_int(raw, "num_attention_heads", where)
    kv, kv_nested = _positive_int(raw, "num_key_value_heads", where)
    max_pos, pos_nested = _positive_int(raw, "max_position_embeddings", where)
    nested_config = raw.get("text_config")
    text: dict[str, Any] = nested_config if isinstance(nested_config, dict) else {}
    model_type = str(raw.get("model_type") or text.get("model_type") or "?")
    nested = tuple(
        name
        for name, flag in (
            ("num_attention_heads", heads_nested),
            ("num_key_value_heads", kv_nested),
            ("max_position_embeddings", pos_nested),
        )
        if flag
    )
    return ModelInfo(
        path=shown,
        raw=raw,
        model_type=model_type,
        num_attention_heads=heads,
        # Hugging Face's default: no GQA unless the config says so.
        num_key_value_heads=kv if kv is not None else heads,
        max_position_embeddings=max_pos,
        nested=nested,
    )


# --- size ---------------------------------------------------------------------------------------


def _safetensors_params(file: Path) -> int:
    """Parameters in one safetensors file, from its JSON header only (no tensor data read)."""
    with file.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError("truncated header")
        (size,) = struct.unpack("<Q", head)
        if size > _MAX_HEADER:
            raise ValueError("header too large")
        header = json.loads(fh.read(size))
    return sum(
        math.prod(entry.get("shape", []))
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict)
    )


def _config_params(info: ModelInfo) -> int | None:
    """A rough parameter count from the architecture numbers (dense or MoE decoder)."""
    h, layers, vocab = (
        info.get("hidden_size"),
        info.get("num_hidden_layers"),
        info.get("vocab_size"),
    )
    heads = info.num_attention_heads
    if not all(isinstance(v, int) and v > 0 for v in (h, layers, vocab, heads)):
        return None
    assert isinstance(h, int) and isinstance(layers, int) and isinstance(vocab, int)
    assert heads is not None
    kv = info.num_key_value_heads or heads
    head_dim = info.get("head_dim") or h // heads
    attn = 2 * h * heads * head_dim + 2 * h * kv * head_dim
    experts = info.experts
    inter = info.get("intermediate_size") or 4 * h
    if experts is not None:
        moe_inter = info.get("moe_intermediate_size") or inter
        shared = info.get("shared_expert_intermediate_size") or 0
        mlp = 3 * h * (experts * moe_inter + shared)
    else:
        mlp = 3 * h * inter
    tied = info.get("tie_word_embeddings")
    embeddings = vocab * h * (1 if tied else 2)
    return int(layers * (attn + mlp) + embeddings)


def estimate_params(info: ModelInfo) -> tuple[int | None, str]:
    """(parameter count, how it was found): safetensors headers, else weight-file bytes, else
    the architecture in config.json."""
    folder = info.path
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        try:
            return sum(_safetensors_params(f) for f in shards), f"{len(shards)} safetensors file(s)"
        except (OSError, ValueError) as exc:
            del exc  # fall through to the cruder estimates
    bins = sorted(folder.glob("*.bin"))
    if bins:
        dtype = str(info.get("torch_dtype") or info.get("dtype") or "bfloat16")
        per = DTYPE_BYTES.get(dtype, 2)
        total = sum(f.stat().st_size for f in bins)
        return total // per, f"{len(bins)} .bin file(s) at {per} bytes per parameter"
    params = _config_params(info)
    return params, "estimated from config.json (no weight files found)"
