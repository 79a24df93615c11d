"""Entry point: registers the veomni Engine component."""

from __future__ import annotations

from swerl import hookimpl
from swerl.components import Register


@hookimpl
def swerl_register_engines(register: Register) -> None:
    from swerl_engine_veomni.component import VeomniEngine

    register(VeomniEngine)
