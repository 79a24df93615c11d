"""The claude-code plugin alone, with stand-ins for every other component (see swerl.testing)."""

import pytest

from swerl.testing import cfg, check, load, pm  # noqa: F401  (fixtures)


@pytest.fixture
def plugin_under_test() -> str:
    return "claude-code"
