"""The correction in the local engine: hand-computed weights, rejection and metrics, the KL alarm,
and agreement with verl 0.9.1's ``rollout_corr_helper`` on the same tensors (to 1e-6)."""

from __future__ import annotations

import logging
import math

import pytest

from swerl_is_token.component import TokenIS, TokenISOptions

torch = pytest.importorskip("torch")

from swerl_is_token.correction import correct  # noqa: E402

P = "rollout_corr/"
TOL = 1e-6


def ln(x: float) -> float:
    return math.log(x)


def logprobs(ratios: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(old, rollout) with exp(old - rollout) equal to ``ratios``."""
    rollout = torch.full((len(ratios), len(ratios[0])), -1.0)
    return rollout + torch.log(torch.tensor(ratios)), rollout


def close(a, b) -> None:
    torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b), atol=TOL, rtol=0)


def weights_of(**options) -> tuple:
    ratios = [[0.5, 1.0, 3.0, 1.2], [1.0, 4.0, 9.0, 1.0]]
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    old, rollout = logprobs(ratios)
    return TokenIS(TokenISOptions(**options)).token_weights(old, rollout, mask), mask


# --- hand-computed ------------------------------------------------------------------------------


def test_token_weights_are_the_ratios_clipped_at_c_and_zero_off_the_mask():
    (w, mask_out, m), mask = weights_of(threshold=2.0)
    close(w, [[0.5, 1.0, 2.0, 1.2], [1.0, 2.0, 0.0, 0.0]])
    assert torch.equal(mask_out, mask)  # no rejection: the mask is unchanged
    assert not w.requires_grad
    # the 6 valid weights: 0.5, 1, 2, 1.2, 1, 2
    close(m[P + "rollout_is_mean"], 7.7 / 6)
    close(m[P + "rollout_is_max"], 2.0)
    close(m[P + "rollout_is_min"], 0.5)
    # clipped fraction: raw ratios above C (3 and 4; the 9 is off the mask)
    close(m[P + "rollout_is_ratio_fraction_high"], 2 / 6)
    close(m[P + "rollout_is_ratio_fraction_low"], 0.0)  # 0.5 is not below 1/C = 0.5
    mean = 7.7 / 6
    ess = 1 / (sum((x / mean) ** 2 for x in (0.5, 1, 2, 1.2, 1, 2)) / 6)
    close(m[P + "rollout_is_eff_sample_size"], ess)
    close(m[P + "kl"], -sum(ln(x) for x in (0.5, 1, 3, 1.2, 1, 4)) / 6)
    k3 = sum(r - ln(r) - 1 for r in (0.5, 1, 3, 1.2, 1, 4)) / 6
    close(m[P + "k3_kl"], k3)


def test_a_larger_c_clips_less():
    (w, _, m), _ = weights_of(threshold=3.5)
    close(w, [[0.5, 1.0, 3.0, 1.2], [1.0, 3.5, 0.0, 0.0]])
    close(m[P + "rollout_is_ratio_fraction_high"], 1 / 6)


def test_sequence_level_weight_is_the_clipped_product_on_every_token():
    (w, _, _), _ = weights_of(level="sequence", threshold=5.0)
    # row 0: 0.5 * 1 * 3 * 1.2 = 1.8; row 1: 1 * 4 = 4 (the 9 is off the mask)
    close(w, [[1.8] * 4, [4.0, 4.0, 0.0, 0.0]])
    (w, _, _), _ = weights_of(level="sequence", threshold=2.0)
    close(w, [[1.8] * 4, [2.0, 2.0, 0.0, 0.0]])


def test_token_rejection_masks_the_tokens_outside_the_band():
    (w, mask_out, m), _ = weights_of(rejection=(0.8, 1.5))
    # ratios 0.5 1 3 1.2 | 1 4 (9) (1): out of [0.8, 1.5]: 0.5, 3, 4
    assert mask_out.tolist() == [[0, 1, 0, 1], [1, 0, 0, 0]]
    close(m[P + "rollout_rs_masked_fraction"], 3 / 6)
    close(m[P + "rollout_rs_seq_masked_fraction"], 1.0)  # both sequences lost a token
    close(w, [[0.5, 1.0, 2.0, 1.2], [1.0, 2.0, 0.0, 0.0]])  # weights do not change


def test_sequence_rejection_uses_the_geometric_mean_ratio():
    # geometric means: row 0 (0.5*1*3*1.2)^(1/4) = 1.158; row 1 (1*4)^(1/2) = 2
    (_, mask_out, m), mask = weights_of(level="sequence", threshold=5.0, rejection=(0.8, 1.5))
    assert mask_out.tolist() == [[1, 1, 1, 1], [0, 0, 0, 0]]
    close(m[P + "rollout_rs_seq_masked_fraction"], 0.5)
    (_, mask_out, _), _ = weights_of(level="sequence", threshold=5.0, rejection=(0.5, 2.5))
    assert torch.equal(mask_out, mask)


def test_nothing_to_weigh_without_valid_tokens():
    old, rollout = logprobs([[2.0, 3.0]])
    mask = torch.zeros(1, 2)
    w, mask_out, m = correct(old, rollout, mask, level="token", threshold=2.0)
    assert w is None and mask_out is mask and m == {}


# --- KL alarm -----------------------------------------------------------------------------------


def step_with_kl(f: TokenIS, kl: float):
    """One step whose rollout_corr/kl is ``kl`` (rollout above old by kl on every token)."""
    old = torch.full((1, 4), -2.0)
    return f.token_weights(old, old + kl, torch.ones(1, 4))[2]


def test_alarm_after_n_consecutive_steps_warns_loudly(caplog):
    f = TokenIS(TokenISOptions(kl_alarm_threshold=1e-2, kl_alarm_steps=2))
    caplog.set_level(logging.WARNING, logger="swerl.is_token")
    streaks = []
    for kl in (0.05, 1e-3, 0.05, 0.05, 0.05, 0.0):
        m = step_with_kl(f, kl)
        close(m[P + "kl"], kl)
        streaks.append((m["is_token/kl_streak"], m["is_token/kl_alarm"]))
    assert streaks == [(1, 0), (0, 0), (1, 0), (2, 1), (3, 1), (0, 0)]
    alarms = [r.getMessage() for r in caplog.records if "KL ALARM" in r.getMessage()]
    assert len(alarms) == 2 and "above 0.01 for 2 consecutive steps" in alarms[0]
    assert f.pause_reason is None  # warns only


def test_pause_on_alarm_asks_the_loop_to_stop():
    f = TokenIS(TokenISOptions(kl_alarm_steps=1, pause_on_alarm=True))
    step_with_kl(f, 1e-3)
    assert f.pause_reason is None
    step_with_kl(f, 0.5)
    assert f.pause_reason is not None and "KL ALARM" in f.pause_reason


# --- agreement with verl ------------------------------------------------------------------------


def ragged(seed: int, batch: int = 9, length: int = 16):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[-1] = 0  # a fully masked row (a masked trajectory)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).float()
    mask[0, 2] = 0.0  # an observation token inside a response
    rollout = -3 * torch.rand(batch, length, generator=g)
    drift = 0.2 * torch.randn(batch, length, generator=g)
    big = torch.rand(batch, length, generator=g) < 0.15  # some ratios far outside any band
    drift = torch.where(big, 2.0 * torch.randn(batch, length, generator=g), drift)
    return rollout + drift, rollout, mask


@pytest.fixture(scope="module")
def rch():
    return pytest.importorskip("verl.trainer.ppo.rollout_corr_helper")


#: What the brief names, which both sides must report.
NAMED = ("kl", "k3_kl", "rollout_is_eff_sample_size", "rollout_is_mean", "rollout_is_max",
         "rollout_is_ratio_fraction_high")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"threshold": 1.5},
        {"rejection": "0.8_1.5"},
        {"level": "sequence", "threshold": 5.0},
        {"level": "sequence", "threshold": 3.0, "rejection": [0.95, 1.05]},
    ],
)
def test_weights_masks_and_metrics_equal_verls(rch, pm, load, cfg, seed, options):
    loaded = load(cfg(filters=[{"name": "is-token", "options": options}]))
    f = TokenIS(loaded.options["filters.0"])
    over = dict(o.split("=", 1) for o in f.verl_overrides(loaded.config))
    rc = "algorithm.rollout_correction."
    old, rollout, mask = ragged(seed)
    want_w, want_mask, want_m = rch.compute_rollout_correction_and_rejection_mask(
        old_log_prob=old,
        rollout_log_prob=rollout,
        response_mask=mask,
        rollout_is=over[rc + "rollout_is"],
        rollout_is_threshold=float(over[rc + "rollout_is_threshold"]),
        rollout_rs=over.get(rc + "rollout_rs"),
        rollout_rs_threshold=over.get(rc + "rollout_rs_threshold", "").strip("'") or None,
    )
    w, got_mask, got_m = f.token_weights(old, rollout, mask)
    torch.testing.assert_close(w, want_w.batch["rollout_is_weights"], atol=TOL, rtol=0)
    assert torch.equal(got_mask, want_mask)
    ours = {k: v for k, v in got_m.items() if k.startswith(P)}
    assert {P + k for k in NAMED} <= set(ours)
    assert set(ours) <= set(want_m), set(ours) - set(want_m)
    for key, value in ours.items():
        assert value == pytest.approx(want_m[key], rel=TOL, abs=TOL), key
    if "rejection" in options:
        assert 0 < got_m[P + "rollout_rs_masked_fraction"] < 1  # the band did something
