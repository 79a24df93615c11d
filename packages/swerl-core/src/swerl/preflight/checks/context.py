"""What every check needs, computed once: the config, the report, the engine, the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swerl.preflight.checks.model_info import ModelConfigError, ModelInfo, load_model_info

if TYPE_CHECKING:
    from swerl.components import Component
    from swerl.config.schema import SwerlConfig
    from swerl.plugins import PluginManager
    from swerl.preflight.report import Report


@dataclass
class Context:
    config: SwerlConfig
    report: Report
    pm: PluginManager
    #: The selected engine class, or None if it is not registered (the loader reports that).
    engine: type[Component] | None
    #: The model's config.json, or None when it could not be read (see ``model_error``).
    model: ModelInfo | None
    model_error: ModelConfigError | None
    #: Returns (GPUs visible to this process, how that was found).
    gpu_count: Callable[[], tuple[int, str]] | None = None

    @classmethod
    def build(
        cls,
        config: SwerlConfig,
        report: Report,
        *,
        pm: PluginManager | None = None,
        gpu_count: Callable[[], tuple[int, str]] | None = None,
    ) -> Context:
        if pm is None:
            from swerl.plugins import get_plugin_manager

            pm = get_plugin_manager()
        reg = pm.registry("engine").get(config.engine.name)
        model: ModelInfo | None = None
        error: ModelConfigError | None = None
        try:
            model = load_model_info(Path(config.model.path))
        except ModelConfigError as exc:
            error = exc
        engine = reg.cls if reg is not None else None
        return cls(config, report, pm, engine, model, error, gpu_count)

    @property
    def uses_gpus(self) -> bool:
        """Whether the engine trains on GPUs (unknown engines are assumed to)."""
        return bool(getattr(self.engine, "uses_gpus", True))

    @property
    def engine_name(self) -> str:
        return self.config.engine.name
