"""The result of ``swerl check``: one row per check (pass / warn / fail / skip) with a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from swerl.components import ComponentOptions
    from swerl.config.load import LoadedConfig


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    source: str = ""


_STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


class Report:
    """Collects checks. Plugins call :meth:`passed`, :meth:`warn`, :meth:`fail`, :meth:`skip`."""

    def __init__(self, loaded: LoadedConfig | None = None) -> None:
        self.checks: list[Check] = []
        self.loaded = loaded
        #: Set by the plugin manager to the plugin whose checks are running.
        self.source = ""

    def options(self, key: str) -> ComponentOptions | None:
        """Validated options of the component at ``key`` ("scaffold", "filters.0", ...)."""
        return self.loaded.options.get(key) if self.loaded else None

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> Check:
        if status in (Status.WARN, Status.FAIL) and not fix:
            raise ValueError(f"check '{name}' is {status} without a fix")
        check = Check(name, Status(status), detail, fix, self.source)
        self.checks.append(check)
        return check

    def passed(self, name: str, detail: str) -> Check:
        return self.add(name, Status.PASS, detail)

    def warn(self, name: str, detail: str, fix: str) -> Check:
        return self.add(name, Status.WARN, detail, fix)

    def fail(self, name: str, detail: str, fix: str) -> Check:
        return self.add(name, Status.FAIL, detail, fix)

    def skip(self, name: str, detail: str) -> Check:
        return self.add(name, Status.SKIP, detail)

    def by_name(self, name: str) -> list[Check]:
        return [c for c in self.checks if c.name == name]

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(c.status is s for c in self.checks) for s in Status}

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.failed,
            "counts": self.counts(),
            "checks": [asdict(c) | {"status": c.status.value} for c in self.checks],
        }

    def render(self, console: Console) -> None:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="swerl check", show_lines=False, expand=True)
        table.add_column("", no_wrap=True)
        table.add_column("check", ratio=1, overflow="fold")
        table.add_column("detail / fix", ratio=3, overflow="fold")
        for c in self.checks:
            style = _STYLE[c.status]
            name = c.name if c.source in ("", "core") else f"{c.name} [dim]({c.source})[/]"
            detail = escape(c.detail) + (f"\n[cyan]fix:[/] {escape(c.fix)}" if c.fix else "")
            table.add_row(f"[{style}]{c.status.value}[/]", name, detail)
        console.print(table)
        counts = self.counts()
        verdict = "[bold red]FAIL[/]" if self.failed else "[bold green]OK[/]"
        console.print(
            f"{verdict}: {counts['pass']} pass, {counts['warn']} warn, "
            f"{counts['fail']} fail, {counts['skip']} skip"
        )
