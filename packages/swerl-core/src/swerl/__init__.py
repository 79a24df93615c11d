"""swerl core: hookspecs, plugin manager, config schema, preflight, launch plan, CLI.

Plugins import ``hookimpl`` from here::

    from swerl import hookimpl

    @hookimpl
    def swerl_register_filters(register):
        register(MyFilter)
"""

import pluggy

__version__ = "0.1.0"

PROJECT = "swerl"
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "__version__", "hookimpl"]
