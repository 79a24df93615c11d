"""Load ``config.yaml``: parse, apply env overrides, validate, and collect every error at once.

Each error names the file, the line, the key path, and where it helps a "did you mean".
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError

from swerl.config.schema import ComponentRef, SwerlConfig
from swerl.errors import UserError, did_you_mean

if TYPE_CHECKING:
    from swerl.components import ComponentOptions
    from swerl.plugins import PluginManager

#: Environment variables that override batch knobs (the smoke and seed scripts use them).
ENV_OVERRIDES = {
    "TRAIN_BSZ": ("algorithm", "train_batch_size"),
    "N_RESP": ("algorithm", "n_resp"),
}


@dataclass
class ConfigIssue:
    path: str
    message: str
    line: int | None = None


class ConfigError(UserError):
    """Every problem found in one config file."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.path))
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: {len(self.issues)} problem(s) in the config"
        lines = []
        for issue in self.issues:
            where = f"{self.source}:{issue.line}" if issue.line else self.source
            key = f" {issue.path}:" if issue.path else ""
            lines.append(f"  {where}:{key} {issue.message}")
        return "\n".join([head, *lines])


@dataclass
class LoadedConfig:
    """A validated config plus the validated options of each selected component."""

    config: SwerlConfig
    source: Path | None
    options: dict[str, ComponentOptions]  # key path ("scaffold", "filters.0") -> options

    def resolved(self) -> dict[str, Any]:
        """The config with defaults filled in, component options included (for show/plan)."""
        data = self.config.model_dump(mode="json")
        for key, opts in self.options.items():
            node: Any = data
            for part in key.split("."):
                node = node[int(part)] if part.isdigit() else node[part]
            node["options"] = opts.model_dump(mode="json")
        return data


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map key paths to 1-based line numbers, using PyYAML's node tree."""
    index: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                index[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, str(i))
                index[sub] = item.start_mark.line + 1
                walk(item, sub)

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index
    if root is not None:
        walk(root, ())
    return index


def _lookup_line(index: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    while path:
        if path in index:
            return index[path]
        path = path[:-1]
    return None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of ``loc`` (for "did you mean")."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X] -> X, X | None -> X."""
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def _issues_from(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: tuple[str, ...],
    index: dict[tuple[str, ...], int],
) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = (*prefix, *(str(p) for p in loc))
        kind = err["type"]
        if kind == "extra_forbidden":
            owner = _model_at(model, loc)
            hint = did_you_mean(str(loc[-1]), owner.model_fields) if owner else ""
            message = f"unknown key.{hint}"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = err["msg"].removeprefix("Value error, ")
            if "input" in err and not isinstance(err["input"], dict | list):
                message += f" (got {err['input']!r})"
        issues.append(ConfigIssue(".".join(path), message, _lookup_line(index, path)))
    return issues


def _apply_env(data: dict[str, Any], env: Mapping[str, str], issues: list[ConfigIssue]) -> None:
    for var, (section, key) in ENV_OVERRIDES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            issues.append(ConfigIssue(f"{section}.{key}", f"env {var}={raw!r} is not an integer"))
            continue
        sub = data.setdefault(section, {})
        if isinstance(sub, dict):
            sub[key] = value


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    pm: PluginManager | None = None,
) -> LoadedConfig:
    """Validate config text; raise :class:`ConfigError` listing every problem."""
    env = os.environ if env is None else env
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigIssue("", f"not valid YAML: {problem}", line)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            source,
            [ConfigIssue("", f"the top level must be a mapping, got {type(data).__name__}", 1)],
        )
    index = _line_index(text)
    issues: list[ConfigIssue] = []
    _apply_env(data, env, issues)
    try:
        config = SwerlConfig.model_validate(data)
    except ValidationError as exc:
        issues += _issues_from(exc, SwerlConfig, (), index)
        # Still check the component refs that parse, so one run reports every problem.
        issues += _validate_components(_raw_refs(data), index, pm)[1]
        raise ConfigError(source, issues) from None

    options, option_issues = _validate_components(config.components(), index, pm)
    issues += option_issues
    if issues:
        raise ConfigError(source, issues)
    return LoadedConfig(config, Path(source) if source != "<config>" else None, options)


def _raw_refs(data: dict[str, Any]) -> list[tuple[str, str, ComponentRef]]:
    """Component refs from unvalidated data, skipping any that do not parse."""
    raw: list[tuple[str, str, Any]] = [
        (k, k, data.get(k)) for k in ("scaffold", "sandbox", "engine")
    ]
    filters = data.get("filters")
    if isinstance(filters, list):
        raw += [("filter", f"filters.{i}", f) for i, f in enumerate(filters)]
    refs = []
    for kind, key, value in raw:
        if isinstance(value, str) and kind == "filter":
            value = {"name": value}
        try:
            refs.append((kind, key, ComponentRef.model_validate(value)))
        except ValidationError:
            continue
    return refs


def _validate_components(
    refs: list[tuple[str, str, ComponentRef]],
    index: dict[tuple[str, ...], int],
    pm: PluginManager | None,
) -> tuple[dict[str, ComponentOptions], list[ConfigIssue]]:
    from swerl.plugins import get_plugin_manager

    pm = pm or get_plugin_manager()
    options: dict[str, ComponentOptions] = {}
    issues: list[ConfigIssue] = []
    for kind, key, ref in refs:
        prefix = tuple(key.split("."))
        registry = pm.registry(kind)
        if ref.name not in registry:
            issues.append(
                ConfigIssue(
                    f"{key}.name",
                    pm.explain_missing(kind, ref.name),
                    _lookup_line(index, (*prefix, "name")),
                )
            )
            continue
        model = registry[ref.name].options_model()
        try:
            options[key] = model.model_validate(ref.options)
        except ValidationError as exc:
            issues += _issues_from(exc, model, (*prefix, "options"), index)
    return options, issues


def load_config(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    pm: PluginManager | None = None,
) -> LoadedConfig:
    """Read and validate a config file."""
    path = Path(path)
    if not path.is_file():
        where = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(str(path), [ConfigIssue("", f"config file {where}")])
    return parse_config(path.read_text(), source=str(path), env=env, pm=pm)
