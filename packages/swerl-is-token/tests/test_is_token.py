"""is-token options, its verl overrides (checked against verl 0.9.1's own config and math) and
its preflight row."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import yaml

from swerl.config.load import ConfigError
from swerl.preflight import Status
from swerl_is_token.component import TokenISOptions

P = "algorithm.rollout_correction"


def is_token(**options):
    return {"name": "is-token", "options": options}


def overrides_for(pm, load, cfg, **options) -> list[str]:
    """The overrides of the is-token filter selected in a real config, via the registry."""
    loaded = load(cfg(filters=["stub", is_token(**options)]))
    cls = pm.get("filter", "is-token").cls
    return cls(loaded.options["filters.1"]).verl_overrides(loaded.config)


def as_dict(overrides: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides)


def verl_config_dir() -> Path | None:
    """verl's Hydra config folder, found without importing verl (import takes ~15 s)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "trainer" / "config"
    return path if path.is_dir() else None


needs_verl = pytest.mark.skipif(verl_config_dir() is None, reason="verl is not installed")


# --- options ------------------------------------------------------------------------------------


def test_bad_options_name_their_key_path(load, cfg):
    text = cfg(
        filters=[is_token(threshold=1.0, rejection="2.0_0.5", level="seq", kl_alarm_steps=0)]
    )
    with pytest.raises(ConfigError) as info:
        load(text)
    issues = {i.path: i.message for i in info.value.issues}
    assert set(issues) == {
        "filters.0.options.threshold",
        "filters.0.options.rejection",
        "filters.0.options.level",
        "filters.0.options.kl_alarm_steps",
    }
    assert "greater than 1" in issues["filters.0.options.threshold"]
    assert "0 < lo < 1 < hi" in issues["filters.0.options.rejection"]


@pytest.mark.parametrize("band", ["0.5_2.0", "0.5_2", [0.5, 2.0], (0.5, 2)])
def test_band_as_string_or_two_numbers(band):
    assert TokenISOptions(rejection=band).rejection == (0.5, 2.0)


@pytest.mark.parametrize("band", ["0.5", "a_b", [0.5], [1.2, 2.0], [0.5, 0.9], [0, 2]])
def test_bands_that_are_malformed_or_reject_on_policy_tokens_are_refused(band):
    with pytest.raises(ValueError):
        TokenISOptions(rejection=band)


def test_defaults(load, cfg):
    opts = load(cfg(filters=["is-token"])).options["filters.0"]
    assert isinstance(opts, TokenISOptions)
    assert (opts.level, opts.threshold, opts.rejection) == ("token", 2.0, None)
    assert (opts.kl_alarm_threshold, opts.kl_alarm_steps, opts.pause_on_alarm) == (1e-2, 3, False)


def test_plans_and_applies(pm):
    cls = pm.get("filter", "is-token").cls
    cls.require("plan")
    cls.require("apply")


# --- verl overrides -----------------------------------------------------------------------------


def test_default_is_token_level_truncated_is_without_rejection(pm, load, cfg):
    assert overrides_for(pm, load, cfg) == [
        f"{P}.rollout_is=token",
        f"{P}.rollout_is_threshold=2.0",
        f"{P}.bypass_mode=False",
    ]


def test_threshold_and_level_are_passed_through(pm, load, cfg):
    got = as_dict(overrides_for(pm, load, cfg, level="sequence", threshold=5))
    assert got[f"{P}.rollout_is"] == "sequence"
    assert float(got[f"{P}.rollout_is_threshold"]) == 5.0
    assert f"{P}.rollout_rs" not in got


def test_rejection_band_is_inverted_for_verls_k1_statistic(pm, load, cfg):
    got = as_dict(overrides_for(pm, load, cfg, rejection="0.8_1.5"))
    assert got[f"{P}.rollout_rs"] == "token_k1"
    lo, hi = got[f"{P}.rollout_rs_threshold"].strip("'").split("_")
    assert math.isclose(float(lo), 1 / 1.5) and math.isclose(float(hi), 1 / 0.8)
    seq = as_dict(overrides_for(pm, load, cfg, level="sequence", rejection=[0.5, 2.0]))
    assert (seq[f"{P}.rollout_rs"], seq[f"{P}.rollout_rs_threshold"]) == (
        "seq_mean_k1",
        "'0.5_2.0'",
    )


@needs_verl
def test_every_override_key_exists_in_verls_config(pm, load, cfg):
    config_dir = verl_config_dir()
    assert config_dir is not None
    keys = set(yaml.safe_load((config_dir / "algorithm" / "rollout_correction.yaml").read_text()))
    overrides = overrides_for(pm, load, cfg, rejection=(0.5, 2.0))
    used = {o.split("=", 1)[0].removeprefix(f"{P}.") for o in overrides}
    assert used == {"rollout_is", "rollout_is_threshold", "bypass_mode", "rollout_rs",
                    "rollout_rs_threshold"}  # fmt: skip
    assert used <= keys


@needs_verl
def test_overrides_compose_into_verls_trainer_config(pm, load, cfg):
    hydra = pytest.importorskip("hydra")
    config_dir = verl_config_dir()
    overrides = overrides_for(pm, load, cfg, threshold=3.0, rejection="0.8_1.5")
    with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None):
        composed = hydra.compose("ppo_trainer", overrides=overrides)
    rc = composed.algorithm.rollout_correction
    assert (rc.rollout_is, rc.rollout_is_threshold, rc.bypass_mode) == ("token", 3.0, False)
    assert rc.rollout_rs == "token_k1"
    assert isinstance(rc.rollout_rs_threshold, str)


@pytest.mark.slow
@needs_verl
def test_verl_masks_exactly_the_tokens_outside_the_band(pm, load, cfg):
    torch = pytest.importorskip("torch")
    from verl.trainer.ppo.rollout_corr_helper import compute_rollout_rejection_mask

    got = as_dict(overrides_for(pm, load, cfg, rejection="0.8_1.5"))
    ratios = torch.tensor([[0.7, 0.79, 0.81, 1.0, 1.3, 1.49, 1.51, 2.0]])  # exp(old - rollout)
    mask, _ = compute_rollout_rejection_mask(
        log_ratio=torch.log(ratios),
        response_mask=torch.ones_like(ratios),
        rollout_rs=got[f"{P}.rollout_rs"],
        rollout_rs_threshold=got[f"{P}.rollout_rs_threshold"].strip("'"),
    )
    assert mask.tolist() == [[0, 0, 1, 1, 1, 1, 0, 0]]


# --- preflight ----------------------------------------------------------------------------------


def test_preflight_row_says_what_the_correction_does(check, cfg):
    text = cfg(filters=[is_token(rejection="0.5_2.0", pause_on_alarm=True)])
    ((status, detail),) = [
        (c.status, c.detail) for c in check(text).checks if c.source == "is-token"
    ]
    assert status is Status.PASS
    assert detail == (
        "token-level IS, weights truncated at C=2, tokens with ratio outside [0.5, 2] masked; "
        "KL alarm after 3 steps above 0.01 (pauses)"
    )


def test_no_row_unless_listed(check, cfg):
    assert [c for c in check(cfg(filters=["stub"])).checks if c.source == "is-token"] == []
