"""A typed facade over pluggy: the only module that touches ``pm.hook``.

Plugins are pip packages with an entry point in the group ``swerl``; swerl's own built-in
components load through the same path. Loading is lazy (first use) and idempotent.

Environment:
  ``SWERL_LOAD_PLUGINS=a,b``     load only these entry points (empty: none)
  ``SWERL_DISABLE_PLUGINS=a,b``  never load these entry points
  ``SWERL_PLUGIN_MODULES=m,m:attr``  also load these modules as plugins (not installed as entry
      points: a plugin under development, or :func:`swerl.testing.fakes.Fakes` in processes a
      test cannot reach, such as verl's Ray workers); ``m:attr`` takes attribute ``attr`` of
      module ``m``, called if it is callable

A plugin that fails to import or declares an unknown hook is skipped with a warning naming its
package and how to fix it; selecting one of its components in a config is then a hard error that
says why.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

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
    #: What the entry point loads (``module`` or ``module:attr``).
    module: str
    status: str  # loaded | failed | disabled
    hooks: list[str] = field(default_factory=list)
    #: The plugin's module file once loaded, else where its distribution is installed.
    location: str = ""
    error: str = ""
    components: list[str] = field(default_factory=list)
    #: The entry point as its package declares it: ``name = value`` in the group ``swerl``.
    entry_point: str = ""
    #: How the distribution is installed: ``site-packages`` or ``editable from <path>``.
    origin: str = ""
    #: For a plugin that failed or is disabled: what to do about it.
    hint: str = ""


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
        # By name, then by distribution: which of two same-named entry points wins is stable.
        for ep in sorted(md.entry_points(group=PROJECT), key=_ep_order):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            info = PluginInfo(ep.name, dist, version, ep.value, "loaded")
            info.entry_point = f"{ep.name} = {ep.value}"
            info.location, info.origin = _installed_at(ep.dist)
            if ep.name in self._infos:
                first = self._infos[ep.name].dist
                # Shown by `swerl plugins` under its own key; the first one keeps the name.
                self._infos[f"{ep.name} ({dist})"] = info
                self._fail(
                    info,
                    f"{first} already provides an entry point named '{ep.name}'",
                    f"uninstall one of {first} and {dist}, or rename the entry point in "
                    f"[project.entry-points.{PROJECT}] of {dist}'s pyproject.toml",
                )
                continue
            self._infos[ep.name] = info
            if ep.name in deny or (allow is not None and ep.name not in allow):
                info.status = "disabled"
                info.hint = (
                    f"listed in SWERL_DISABLE_PLUGINS; remove '{ep.name}' from it to load it"
                    if ep.name in deny
                    else f"not in SWERL_LOAD_PLUGINS; add '{ep.name}' to it to load it"
                )
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                self._fail(
                    info,
                    f"failed to import {ep.value}: {type(exc).__name__}: {exc}",
                    import_hint(exc, info),
                )
                continue
            info.location = getattr(module, "__file__", "") or info.location
            self._register(module, info)
        for spec in sorted(_split_env(self._env.get("SWERL_PLUGIN_MODULES")) or ()):
            self._load_module_plugin(spec)
        return self

    def _load_module_plugin(self, spec: str) -> None:
        """Load one ``SWERL_PLUGIN_MODULES`` entry (``module`` or ``module:attr``)."""
        info = PluginInfo(spec, "<SWERL_PLUGIN_MODULES>", "", spec, "loaded")
        info.origin = "SWERL_PLUGIN_MODULES"
        if spec in self._infos:
            self._fail(info, f"an entry point named '{spec}' is already loaded")
            return
        self._infos[spec] = info
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
            plugin: Any = module
            if attr:
                plugin = getattr(module, attr)
                if callable(plugin) and not isinstance(plugin, type):
                    plugin = plugin()
        except Exception as exc:
            self._fail(
                info,
                f"failed to load {spec} from SWERL_PLUGIN_MODULES: {type(exc).__name__}: {exc}",
                "name an importable module, or module:attribute, in SWERL_PLUGIN_MODULES",
            )
            return
        info.location = getattr(module, "__file__", "") or ""
        self._register(plugin, info)

    def register_plugin(self, plugin: Any, name: str, dist: str = "<inline>") -> None:
        """Register an object or module as a plugin (tests and inline plugins)."""
        self.load()
        if name in self._infos and self._infos[name].status == "loaded":
            raise UserError(f"a plugin named '{name}' is already registered")
        info = PluginInfo(name, dist, "", getattr(plugin, "__name__", repr(plugin)), "loaded")
        info.origin = "registered in-process"
        module = sys.modules.get(getattr(plugin, "__module__", None) or "")
        info.location = getattr(plugin, "__file__", None) or getattr(module, "__file__", "") or ""
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
            self._fail(info, f"implements an unknown hook (misspelled?): {exc}", hook_hint(plugin))
            return
        info.hooks = sorted(c.name for c in self._pm.get_hookcallers(plugin) or [])
        self._registries = None

    def _fail(self, info: PluginInfo, error: str, hint: str = "") -> None:
        info.status, info.error = "failed", error
        info.hint = hint or (
            f"fix the plugin or report it to the maintainers of {info.dist}; "
            f"SWERL_DISABLE_PLUGINS={info.name} skips it meanwhile"
        )
        log.warning(
            "plugin '%s' (%s %s) skipped: %s. Fix: %s",
            info.name,
            info.dist,
            info.version,
            error,
            info.hint,
        )

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
                    self._fail(
                        info,
                        f"{hook_name} raised {type(exc).__name__}: {exc}",
                        f"a bug in {info.dist} ({info.module}): fix it or report it to its "
                        f"maintainers; SWERL_DISABLE_PLUGINS={info.name} skips it meanwhile",
                    )
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
            if info.hint:
                msg += f" Fix: {info.hint}."
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


def _ep_order(ep: md.EntryPoint) -> tuple[str, str]:
    return ep.name, ep.dist.name if ep.dist else ""


def _installed_at(dist: md.Distribution | None) -> tuple[str, str]:
    """(where the distribution is installed, how: ``site-packages`` or ``editable from X``)."""
    if dist is None:
        return "", ""
    where = str(dist.locate_file(""))
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except (OSError, ValueError):
        direct = None
    if isinstance(direct, dict) and str(direct.get("url", "")).startswith("file://"):
        path = unquote(urlparse(direct["url"]).path)
        editable = bool((direct.get("dir_info") or {}).get("editable"))
        return where, f"{'editable' if editable else 'installed'} from {path}"
    return where, "site-packages"


def import_hint(exc: BaseException, info: PluginInfo) -> str:
    """What to do about a plugin whose entry point failed to import."""
    module, _, attr = info.module.partition(":")
    reinstall = f"pip install --force-reinstall {info.dist}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        if module == exc.name or module.startswith(exc.name + "."):
            return (
                f"the entry point `{info.entry_point or info.name}` of {info.dist} names a module "
                f"that is not installed: check [project.entry-points.{PROJECT}] in its "
                f"pyproject.toml (and the package's files), then reinstall it ({reinstall})"
            )
        top = exc.name.split(".")[0]
        return (
            f"{info.dist} needs the module '{exc.name}', which is not installed: install it "
            f"(often `pip install {top}`) or reinstall {info.dist} with its dependencies "
            f"({reinstall})"
        )
    if isinstance(exc, AttributeError) and attr:
        return (
            f"{module} has no attribute '{attr}': fix the entry point "
            f"`{info.entry_point or info.name}` in {info.dist}'s pyproject.toml"
        )
    return ""


def hook_hint(plugin: Any) -> str:
    """Which of the plugin's ``swerl_*`` functions is not a hook, and the closest real one."""
    real = [n for n in dir(hookspecs) if n.startswith(f"{PROJECT}_")]
    wrong = [n for n in dir(plugin) if n.startswith(f"{PROJECT}_") and n not in real]
    fixes = []
    for name in wrong:
        close = difflib.get_close_matches(name, real, n=1, cutoff=0.6)
        fixes.append(f"rename {name} to {close[0]}" if close else f"{name} is not a hook")
    return "; ".join(fixes) + f" (the hooks: {', '.join(real)})" if fixes else ""


_DEFAULT: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (loaded on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PluginManager()
    return _DEFAULT.load()
