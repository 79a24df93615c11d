"""The trainer's copy of the policy: fp32 transformers model, AdamW, logprobs of recorded samples.

A batch of samples (prompt ids + response ids) is padded on the right into one tensor; the
logprob of response token ``j`` of sample ``i`` is read from the logits at position
``len(prompt_i) + j - 1``. Weights are written as one ``model.safetensors`` with the model's own
(Hugging Face) parameter names, which is what the policy server reloads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

WEIGHTS = "model.safetensors"


@dataclass
class Batch:
    """Padded tensors of one batch; ``mask`` is the loss mask (1: a sampled token)."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    response_start: list[int]  # per sample, len(prompt)
    response_len: list[int]
    mask: torch.Tensor  # [B, R] float
    rollout_logprobs: torch.Tensor  # [B, R]


def make_batch(samples: list[Any], pad_id: int = 0) -> Batch:
    """Samples with ``prompt_ids``, ``response_ids``, ``loss_mask``, ``logprobs`` → a Batch."""
    import torch

    seqs = [list(s.prompt_ids) + list(s.response_ids) for s in samples]
    width = max(len(s) for s in seqs)
    resp = max(len(s.response_ids) for s in samples)
    n = len(samples)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, resp), dtype=torch.float32)
    rollout = torch.zeros((n, resp), dtype=torch.float32)
    for i, (seq, s) in enumerate(zip(seqs, samples, strict=True)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        r = len(s.response_ids)
        mask[i, :r] = torch.tensor(s.loss_mask, dtype=torch.float32)
        rollout[i, :r] = torch.tensor(s.logprobs, dtype=torch.float32)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        response_start=[len(s.prompt_ids) for s in samples],
        response_len=[len(s.response_ids) for s in samples],
        mask=mask,
        rollout_logprobs=rollout,
    )


class Policy:
    """The model being trained and its optimizer."""

    def __init__(
        self,
        path: Path,
        *,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        grad_clip: float = 1.0,
        reference: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.path = path
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        # No dropout in these models; eval mode keeps every forward deterministic.
        self.model.eval()
        #: The frozen starting weights (for the KL loss), loaded from ``path`` when asked for:
        #: a resumed run's reference is still the model it started from.
        self.reference = None
        if reference:
            self.reference = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
            self.reference.eval().requires_grad_(False)
        self.grad_clip = grad_clip
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay
        )

    def logprobs(self, batch: Batch) -> torch.Tensor:
        """[B, R] logprobs of the response tokens under the current weights (with grad)."""
        return self._logprobs(self.model, batch)

    def ref_logprobs(self, batch: Batch) -> torch.Tensor:
        """[B, R] logprobs under the reference (starting) weights, without grad."""
        import torch

        if self.reference is None:
            raise RuntimeError("this Policy was made without a reference model (reference=True)")
        with torch.no_grad():
            return self._logprobs(self.reference, batch)

    @staticmethod
    def _logprobs(model: Any, batch: Batch) -> torch.Tensor:
        import torch

        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        logits = out.logits.float()
        width = batch.mask.shape[1]
        rows = []
        for i, (start, r) in enumerate(zip(batch.response_start, batch.response_len, strict=True)):
            pred = logits[i, start - 1 : start - 1 + r]
            targets = batch.input_ids[i, start : start + r]
            lp = torch.log_softmax(pred, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            rows.append(torch.nn.functional.pad(lp, (0, width - r)))
        return torch.stack(rows)

    def step(self, loss: torch.Tensor) -> float:
        """Backward, clip, AdamW step; returns the gradient norm before clipping."""
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return float(norm)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}

    def save_weights(self, folder: Path) -> Path:
        """Write ``folder/model.safetensors`` atomically (temp file + rename)."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / WEIGHTS
        tmp = folder / f".{WEIGHTS}.tmp"
        save_file(self.state_dict(), str(tmp), metadata={"format": "pt"})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def load_weights(self, path: Path) -> None:
        from safetensors.torch import load_file

        missing, unexpected = self.model.load_state_dict(load_file(str(path)), strict=True)
        assert not missing and not unexpected
