"""The run config: schema (``schema.py``) and loading with collected errors (``load.py``)."""

from swerl.config.load import ConfigError, load_config
from swerl.config.schema import SwerlConfig

__all__ = ["ConfigError", "SwerlConfig", "load_config"]
