"""Entry point: registers the is-token RewardFilter component."""

from __future__ import annotations

from swerl import hookimpl
from swerl.components import Register


@hookimpl
def swerl_register_filters(register: Register) -> None:
    from swerl_is_token.component import TokenIS

    register(TokenIS)
