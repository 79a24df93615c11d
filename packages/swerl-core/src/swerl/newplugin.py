"""``swerl new-plugin KIND NAME``: a new plugin package from a template, ready to install and test.

The package is ``swerl-<kind>-<name>`` (import ``swerl_<kind>_<name>``): a pyproject with the one
``swerl`` entry point, a component with its options model and the base class of its kind, tests
that use :mod:`swerl.testing` and pass as generated, and a README. Templates live in
``swerl/templates/plugin/`` (``{{key}}`` placeholders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from swerl.errors import UserError
from swerl.plugins import REGISTER_HOOKS

KINDS = tuple(REGISTER_HOOKS)
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SUMMARIES = {
    "scaffold": "runs a Harbor agent pointed at the run's model endpoint",
    "sandbox": "runs each trial's tests in a local folder (no isolation)",
    "engine": "plans a trainer process (training is not written yet)",
    "filter": "drops trials whose agent made too many model calls",
}
CONFIGS = {
    "scaffold": "scaffold:\n  name: {name}\n  options: {{agent: terminus-2}}",
    "sandbox": "sandbox:\n  name: {name}\n  options: {{verifier_timeout_s: 60}}",
    "engine": "engine:\n  name: {name}\n  options: {{extra_args: []}}",
    "filter": "filters:\n  - name: {name}\n    options: {{max_turns: 20}}",
}


@dataclass(frozen=True)
class NewPlugin:
    kind: str
    name: str

    @property
    def dist(self) -> str:
        return f"swerl-{self.kind}-{self.name}"

    @property
    def module(self) -> str:
        return self.dist.replace("-", "_")

    @property
    def cls(self) -> str:
        camel = "".join(part.capitalize() for part in self.name.split("-"))
        suffix = self.kind.capitalize()
        return camel if camel.endswith(suffix) else camel + suffix

    def values(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "dist": self.dist,
            "module": self.module,
            "cls": self.cls,
            "options_cls": f"{self.cls}Options",
            "hook": REGISTER_HOOKS[self.kind],
            "summary": SUMMARIES[self.kind],
            "config": CONFIGS[self.kind].format(name=self.name),
        }

    def files(self) -> dict[str, str]:
        """Path in the package -> template file."""
        src = f"src/{self.module}"
        files = {
            "pyproject.toml": "pyproject.toml.tmpl",
            "README.md": "README.md.tmpl",
            f"{src}/__init__.py": "__init__.py.tmpl",
            f"{src}/plugin.py": "plugin.py.tmpl",
            f"{src}/component.py": f"{self.kind}.py.tmpl",
            "tests/conftest.py": "conftest.py.tmpl",
            f"tests/test_{self.kind}_{self.name.replace('-', '_')}.py": f"test_{self.kind}.py.tmpl",
        }
        if self.kind == "engine":
            files[f"{src}/train.py"] = "train.py.tmpl"
        return files


def render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{(\w+)\}\}", template)
    if left:
        raise RuntimeError(f"template placeholders without a value: {sorted(set(left))}")
    return template


def new_plugin(kind: str, name: str, parent: Path) -> Path:
    """Write the package ``swerl-<kind>-<name>`` into ``parent``; returns its folder."""
    if kind not in KINDS:
        raise UserError(f"unknown kind '{kind}': use one of {', '.join(KINDS)}")
    if not _NAME.match(name):
        raise UserError(
            f"'{name}' is not a plugin name: lowercase letters and digits, words joined by '-' "
            "(e.g. 'length' or 'max-turns'), starting with a letter"
        )
    plugin = NewPlugin(kind, name)
    root = parent / plugin.dist
    if root.exists():
        raise UserError(f"{root} exists already: pick another --dir or name, or remove it")
    templates = resources.files("swerl") / "templates" / "plugin"
    values = plugin.values()
    rendered = {
        path: render((templates / template).read_text(encoding="utf-8"), values)
        for path, template in plugin.files().items()
    }
    for path, text in rendered.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root
