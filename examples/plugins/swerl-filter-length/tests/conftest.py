"""Tests of swerl-filter-length with swerl.testing: the plugin alone, fakes for every other part.

swerl-core's pytest plugin provides the fixtures (pm, cfg, load, check, rollout, ...); they
test the entry point named here.
"""

import pytest


@pytest.fixture
def plugin_under_test() -> str:
    return "length"
