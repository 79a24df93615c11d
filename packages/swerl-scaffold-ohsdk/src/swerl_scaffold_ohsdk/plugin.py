"""Entry point: registers the ohsdk Scaffold component."""

from __future__ import annotations

from swerl import hookimpl
from swerl.components import Register


@hookimpl
def swerl_register_scaffolds(register: Register) -> None:
    from swerl_scaffold_ohsdk.component import OHSDK

    register(OHSDK)
