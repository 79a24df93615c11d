"""Errors a user can act on. The CLI prints them without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(RuntimeError):
    """A usage mistake the user can fix: bad config, missing file, unknown name."""


class NotYetAvailable(UserError):
    """A registered component was asked for something it cannot do yet."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""``."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""
