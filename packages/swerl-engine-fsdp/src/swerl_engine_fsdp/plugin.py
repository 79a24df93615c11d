"""Entry point: registers the fsdp Engine component."""

from __future__ import annotations

from swerl import hookimpl
from swerl.components import Register


@hookimpl
def swerl_register_engines(register: Register) -> None:
    from swerl_engine_fsdp.component import FsdpEngine

    register(FsdpEngine)
