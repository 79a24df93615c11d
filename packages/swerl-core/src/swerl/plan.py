"""``swerl plan``: the processes a run would start, with exact command lines; runs nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Env var names whose values are secrets: shown masked, never printed.
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
MASK = "***"


def mask_env(env: dict[str, str]) -> dict[str, str]:
    """Replace the values of secret-looking variables with ``***``."""
    return {k: (MASK if SECRET_NAME.search(k) and v else v) for k, v in env.items()}


@dataclass
class ProcessSpec:
    """One process of a run: what starts it and with which environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    #: Files the launcher writes before starting the process (path -> content).
    files: dict[str, str] = field(default_factory=dict)
    note: str = ""
