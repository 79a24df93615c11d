"""A typed facade over pluggy: the only module that touches ``pm.hook``.

Plugins are pip packages with an entry point in the group ``swerl``; swerl's own built-in
components load through the same path. Loading is lazy (first use) and idempotent.

Environment:
  ``SWERL_LOAD_PLUGINS=a,b``     load only these entry points (empty: none)
  ``SWERL_DISABLE_PLUGINS=a,b``  never load these entry points

A plugin that fails to import or declares an unknown hook is skipped with a warning naming its
package; selecting one of its components in a config is then a hard error that says why.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from swerl import PROJECT, hookspecs
from swerl.components import KINDS, Component, ComponentOptions
from swerl.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from swerl.config.schema import SwerlConfig
    from swerl.preflight.report import Report

log = logging.getLogger("swerl.plugins")

REGISTER_HOOKS = {
    "scaffold": "swerl_register_scaffolds",
    "sandbox": "swerl_register_sandboxes",
    "engine": "swerl_register_engines",
    "filter": "swerl_register_filters",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class PluginInfo:
    """What ``swerl plugins`` shows about one plugin."""

    name: str
    dist: str
    version: str
    module: str
    status: str  # loaded | failed | disabled
    hooks: list[str] = field(default_factory=list)
    location: str = ""
    error: str = ""
    components: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Registration:
    """A component and the plugin that registered it."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str
    dist: str

    def options_model(self) -> type[ComponentOptions]:
        return self.cls.Options


def _split_env(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class PluginManager:
    """Loads plugins and owns the component registries."""

    def __init__(self, *, entry_points: bool = True, env: Mapping[str, str] | None = None) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._use_entry_points = entry_points
        self._env = os.environ if env is None else env
        self._loaded = False
        self._infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, dict[str, Registration]] | None = None

    # --- loading ------------------------------------------------------------------------------

    def load(self) -> PluginManager:
        """Load entry-point plugins once; later calls do nothing."""
        if self._loaded:
            return self
        self._loaded = True
        if not self._use_entry_points:
            return self
        allow = _split_env(self._env.get("SWERL_LOAD_PLUGINS"))
        deny = _split_env(self._env.get("SWERL_DISABLE_PLUGINS")) or set()
        for ep in sorted(md.entry_points(group=PROJECT), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            if ep.name in self._infos:
                first = self._infos[ep.name].dist
                log.warning(
                    "plugin '%s' from %s skipped: %s already provides an entry point of that name",
                    ep.name,
                    dist,
                    first,
                )
                continue
            info = PluginInfo(ep.name, dist, version, ep.value, "loaded")
            self._infos[ep.name] = info
            if ep.name in deny or (allow is not None and ep.name not in allow):
                info.status = "disabled"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                self._fail(info, f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
                continue
            info.location = getattr(module, "__file__", "") or ""
            self._register(module, info)
        return self

    def register_plugin(self, plugin: Any, name: str, dist: str = "<inline>") -> None:
        """Register an object or module as a plugin (tests and inline plugins)."""
        self.load()
        if name in self._infos and self._infos[name].status == "loaded":
            raise UserError(f"a plugin named '{name}' is already registered")
        info = PluginInfo(name, dist, "", getattr(plugin, "__name__", repr(plugin)), "loaded")
        self._infos[name] = info
        self._register(plugin, info)
        if info.status != "loaded":
            raise UserError(f"plugin '{name}' rejected: {info.error}")

    def unregister_plugin(self, name: str) -> None:
        self._pm.unregister(name=name)
        self._infos.pop(name, None)
        self._registries = None

    def _register(self, plugin: Any, info: PluginInfo) -> None:
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as exc:
            self._fail(info, f"rejected by the plugin manager: {exc}")
            return
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self._pm.unregister(name=info.name)
            self._fail(info, f"implements an unknown hook (misspelled?): {exc}")
            return
        info.hooks = sorted(c.name for c in self._pm.get_hookcallers(plugin) or [])
        self._registries = None

    def _fail(self, info: PluginInfo, error: str) -> None:
        info.status, info.error = "failed", error
        log.warning("plugin '%s' (%s %s) skipped: %s", info.name, info.dist, info.version, error)

    # --- registries ---------------------------------------------------------------------------

    def _build_registries(self) -> dict[str, dict[str, Registration]]:
        self.load()
        registries: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        for seen in self._infos.values():
            seen.components = []
        for kind, hook_name in REGISTER_HOOKS.items():
            hook = getattr(self._pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                info = self._infos[impl.plugin_name]

                def register(cls: type[Any], _kind: str = kind, _info: PluginInfo = info) -> None:
                    reg = self._validate(_kind, cls, _info)
                    existing = registries[_kind].get(reg.name)
                    if existing is not None:
                        raise UserError(
                            f"{_kind} '{reg.name}' is registered twice: by {existing.dist} "
                            f"(plugin '{existing.plugin}') and by {reg.dist} "
                            f"(plugin '{reg.plugin}'). Uninstall one, or disable it with "
                            f"SWERL_DISABLE_PLUGINS={reg.plugin}."
                        )
                    registries[_kind][reg.name] = reg
                    _info.components.append(f"{_kind}:{reg.name}")

                kwargs = {"register": register}
                try:
                    impl.function(**{k: kwargs[k] for k in impl.argnames})
                except UserError:
                    raise
                except Exception as exc:  # a buggy plugin loses its components, not the run
                    for reg_kind, entries in registries.items():
                        for name in [n for n, r in entries.items() if r.plugin == info.name]:
                            del registries[reg_kind][name]
                    info.components.clear()
                    self._fail(info, f"{hook_name} raised {type(exc).__name__}: {exc}")
        return registries

    @staticmethod
    def _validate(kind: str, cls: Any, info: PluginInfo) -> Registration:
        base = KINDS[kind]
        where = f"plugin '{info.name}' ({info.dist})"
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise UserError(
                f"{where} registered {cls!r} as a {kind}; it must subclass {base.__name__}"
            )
        if not isinstance(cls.name, str) or not _NAME.match(cls.name):
            raise UserError(
                f"{where} registered {cls.__name__} with name {cls.name!r}; use lowercase letters, "
                "digits, '-' and '_'"
            )
        if not (isinstance(cls.Options, type) and issubclass(cls.Options, ComponentOptions)):
            raise UserError(f"{where}: {cls.__name__}.Options must subclass ComponentOptions")
        return Registration(kind, cls.name, cls, info.name, info.dist)

    def registry(self, kind: str) -> dict[str, Registration]:
        """All registered components of one kind, by name."""
        if self._registries is None:
            self._registries = self._build_registries()
        return self._registries[kind]

    def get(self, kind: str, name: str) -> Registration:
        """The component ``name`` of ``kind``, or a :class:`UserError` that says why not."""
        registry = self.registry(kind)
        if name in registry:
            return registry[name]
        raise UserError(self.explain_missing(kind, name))

    def explain_missing(self, kind: str, name: str) -> str:
        registry = self.registry(kind)
        hint = did_you_mean(name, registry)
        msg = f"unknown {kind} '{name}'.{hint}"
        msg += f" Registered: {', '.join(sorted(registry)) or 'none'}."
        broken = [i for i in self._infos.values() if i.status == "failed"]
        disabled = [i for i in self._infos.values() if i.status == "disabled"]
        likely = [i for i in broken + disabled if name in (i.name, i.dist) or name in i.dist]
        for info in likely or broken:
            reason = info.error if info.status == "failed" else "disabled by SWERL_*_PLUGINS"
            msg += f" Plugin '{info.name}' ({info.dist}) was not loaded: {reason}."
        if not likely and not broken and not hint:
            msg += f" Is the plugin installed? e.g. pip install swerl-{kind}-{name}"
        return msg

    # --- hooks --------------------------------------------------------------------------------

    def preflight_checks(self, config: SwerlConfig, report: Report) -> None:
        """Run each plugin's checks; checks that crash become a failed row, not a traceback."""
        self.load()
        kwargs = {"config": config, "report": report}
        for impl in reversed(self._pm.hook.swerl_preflight_checks.get_hookimpls()):
            report.source = impl.plugin_name
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                info = self._infos.get(impl.plugin_name)
                dist = info.dist if info else impl.plugin_name
                report.fail(
                    f"{impl.plugin_name} checks",
                    f"the checks crashed: {type(exc).__name__}: {exc}",
                    f"report this to the maintainers of {dist}",
                )
        report.source = ""

    def infos(self) -> list[PluginInfo]:
        """Every plugin seen, loaded or not, with its components."""
        for registry in (self.registry(kind) for kind in KINDS):
            del registry  # building the registries fills PluginInfo.components
        return sorted(self._infos.values(), key=lambda i: i.name)


_DEFAULT: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (loaded on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PluginManager()
    return _DEFAULT.load()
