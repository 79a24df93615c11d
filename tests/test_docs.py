"""The docs cannot drift from the code.

Fails when a generated reference is stale, when a config key, a component option, a CLI command
or a hook is undocumented, when the plugin example in the docs no longer works, or when a link
in the docs points nowhere. Fix most of these with `make docs` (python -m swerl.docgen).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import shutil
import types
import typing
from pathlib import Path

import pluggy
import pytest
from pydantic import BaseModel, Field, ValidationError

from swerl import docgen, hookimpl, hookspecs
from swerl.components import ComponentOptions, RewardFilter
from swerl.config.schema import SwerlConfig
from swerl.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def read(page: str) -> str:
    return (DOCS / page).read_text()


# --- generated pages are current --------------------------------------------------------------


def test_generated_pages_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in docgen.stale(DOCS)]
    assert not stale, f"stale generated docs: {stale}; run `make docs` and commit the result"


def test_check_mode_flags_a_hand_edit_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    assert docgen.main(["--docs", str(docs)]) == 0
    assert docgen.main(["--docs", str(docs), "--check"]) == 0

    page = docs / "reference" / "config.md"
    edited = page.read_text().replace("`run.seed`", "`run.sead`")
    page.write_text(edited)
    capsys.readouterr()
    assert docgen.main(["--docs", str(docs), "--check"]) == 1
    assert "reference/config.md is stale" in capsys.readouterr().out
    assert page.read_text() == edited  # --check wrote nothing

    assert docgen.main(["--docs", str(docs)]) == 0  # a plain run repairs it
    assert "`run.seed`" in page.read_text()


def test_generated_block_needs_its_markers(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    page = docs / "plugins.md"
    page.write_text(re.sub(r"<!-- hooks:end -->", "", page.read_text()))
    with pytest.raises(ValueError, match="markers"):
        docgen.render_all(docs)


# --- config reference -------------------------------------------------------------------------


def _model_of(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _model_of(arg)) is not None:
            return found
    return None


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key path of a config model, `[]` for lists of sections (walked independently)."""
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        sub = _model_of(field.annotation)
        if sub is not None:
            is_list = typing.get_origin(field.annotation) is list
            keys += config_keys(sub, f"{key}[]." if is_list else f"{key}.")
    return keys


def missing_config_keys(page: str) -> list[str]:
    return [k for k in config_keys(SwerlConfig) if f"| `{k}` |" not in page]


def test_every_config_key_is_in_the_config_reference() -> None:
    keys = config_keys(SwerlConfig)
    assert {"model.path", "logging.wandb.enabled", "filters[].name"} <= set(keys)
    missing = missing_config_keys(read("reference/config.md"))
    assert not missing, f"config keys missing from docs/reference/config.md: {missing}"


def test_every_component_option_is_in_the_config_reference() -> None:
    page = read("reference/config.md")
    pm = PluginManager(env={}).load()
    missing = []
    for kind, where in [("scaffold", "scaffold"), ("sandbox", "sandbox"), ("engine", "engine"),
                        ("filter", "filters[]")]:  # fmt: skip
        for name, reg in pm.registry(kind).items():
            if f"### {kind} `{name}`" not in page:
                missing.append(f"{kind} {name}")
            for option in reg.options_model().model_fields:
                if f"| `{where}.options.{option}` |" not in page:
                    missing.append(f"{kind} {name}: {option}")
    assert not missing, f"missing from docs/reference/config.md: {missing}"


def test_every_config_key_and_component_option_has_a_description() -> None:
    assert docgen.undocumented() == [], "give these a Field(description=...)"


def test_undocumented_names_an_option_without_description() -> None:
    class Opts(ComponentOptions):
        limit: int = Field(3, description="Documented.")
        quiet: bool = False

    class Quiet(RewardFilter):
        name = "quiet"
        summary = "a filter with one undocumented option"
        Options = Opts

    @hookimpl
    def swerl_register_filters(register: typing.Callable[[type], None]) -> None:
        register(Quiet)

    pm = PluginManager(entry_points=False)
    pm.register_plugin(
        types.SimpleNamespace(swerl_register_filters=swerl_register_filters), "quiet"
    )
    assert docgen.undocumented(pm) == ["filter quiet: options.quiet"]
    assert "| `filters[].options.limit` | `int` | `3` | Documented. |" in docgen.config_reference(
        pm
    )


# --- CLI reference ----------------------------------------------------------------------------


def typer_command_paths() -> list[str]:
    """Command paths from typer's own registry (not through docgen's walk)."""
    from swerl.cli import app

    def walk(typer_app: typing.Any, prefix: str) -> list[str]:
        paths = []
        for info in typer_app.registered_commands:
            name = info.name or info.callback.__name__.replace("_", "-")
            paths.append(f"{prefix} {name}")
        for group in typer_app.registered_groups:
            paths.append(f"{prefix} {group.name}")
            paths += walk(group.typer_instance, f"{prefix} {group.name}")
        return paths

    return walk(app, "swerl")


def missing_cli_commands(page: str) -> list[str]:
    return [p for p in typer_command_paths() if f"## `{p}`" not in page]


def test_every_cli_command_is_in_the_cli_reference() -> None:
    paths = typer_command_paths()
    assert {"swerl check", "swerl plan", "swerl config show"} <= set(paths)
    missing = missing_cli_commands(read("reference/cli.md"))
    assert not missing, f"commands missing from docs/reference/cli.md: {missing}"


def test_cli_reference_lists_each_commands_options() -> None:
    page = read("reference/cli.md")
    section = page.split("## `swerl check`")[1].split("\n## ")[0]
    assert "--config" in section and "--json" in section
    assert "configs/smoke_cpu.yaml" in section  # the default is shown


# --- hooks ------------------------------------------------------------------------------------


def hook_names() -> list[str]:
    """Hook names as pluggy sees them (independent of docgen)."""
    pm = pluggy.PluginManager("swerl")
    pm.add_hookspecs(hookspecs)
    return sorted(name for name in vars(pm.hook) if name.startswith("swerl_"))


def missing_hooks(page: str) -> list[str]:
    """Hook signatures without a heading of their own in ``page``."""
    missing = []
    for name in hook_names():
        spec = getattr(hookspecs, name)
        signature = f"{name}({', '.join(inspect.signature(spec).parameters)})"
        if not re.search(rf"^#+ `{re.escape(signature)}`$", page, re.M):
            missing.append(signature)
    return missing


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    assert "swerl_preflight_checks" in hook_names()
    missing = missing_hooks(read("plugins.md"))
    assert not missing, f"hooks missing from docs/plugins.md (as headings): {missing}"


# --- a reference that loses an entry fails twice: stale, and missing --------------------------


def _drop_line(text: str, pattern: str) -> str:
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert hits, f"nothing matches {pattern!r}"
    del lines[hits[0]]
    return "".join(lines)


@pytest.mark.parametrize(
    ("page", "pattern", "missing", "expected"),
    [
        ("reference/config.md", r"^\| `rollout\.max_turns` \|", missing_config_keys,
         "rollout.max_turns"),
        ("reference/config.md", r"^\| `filters\[\]\.name` \|", missing_config_keys,
         "filters[].name"),
        ("reference/cli.md", r"^## `swerl config show`$", missing_cli_commands,
         "swerl config show"),
        ("plugins.md", r"^### `swerl_register_filters\(", missing_hooks,
         "swerl_register_filters(register)"),
    ],
    ids=["config-key", "config-list-key", "cli-command", "hook"],
)  # fmt: skip
def test_a_reference_missing_an_entry_is_caught(
    tmp_path: Path, page: str, pattern: str, missing: typing.Any, expected: str
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    target = docs / page
    target.write_text(_drop_line(target.read_text(), pattern))
    assert target in docgen.stale(docs), "docgen --check must flag the page"
    assert missing(target.read_text()) == [expected]


def _python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page, re.S)


def test_plugin_example_in_the_docs_registers_and_validates(tmp_path: Path) -> None:
    page = read("plugins.md")
    example = next(b for b in _python_blocks(page) if "@hookimpl" in b)
    module_file = tmp_path / "swerl_filter_length_example.py"
    module_file.write_text(example)
    spec = importlib.util.spec_from_file_location("swerl_filter_length_example", module_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    testing = next(b for b in _python_blocks(page) if "register_plugin" in b)
    exec(testing, {"my_plugin_module": module})  # the "Testing a plugin" snippet, as written

    pm = PluginManager(entry_points=False)
    pm.register_plugin(module, name="length")
    reg = pm.get("filter", "length")
    options = reg.options_model().model_validate({"max_tokens": 10})
    assert options.model_dump() == {"max_tokens": 10}
    with pytest.raises(ValidationError):
        reg.options_model().model_validate({"max_tokens": 0})


# --- links and the site -----------------------------------------------------------------------


def test_links_in_docs_and_readme_resolve() -> None:
    files = docgen.doc_files(DOCS)
    assert ROOT / "README.md" in files
    assert docgen.broken_links(files) == []


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## Part two\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md) [ok](a.md#part-two) [ok](#b) [web](https://example.org)\n"
        "[gone](c.md) [bad anchor](a.md#part-three) `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n# B\n"
    )
    problems = docgen.broken_links([page])
    assert len(problems) == 2
    assert "c.md (no such file)" in problems[0]
    assert "a.md#part-three" in problems[1]


def test_every_page_is_in_the_site_navigation() -> None:
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == set(docgen.NAV), "add new pages to docgen.NAV (the site's order)"


def test_run_training_follows_the_flow_a_user_lives_through() -> None:
    """Preflight · Inference stack · Backends · Results & artifacts · Scaling up, in this order;
    the other run-training pages sit between them, and the section is one block of the nav."""
    flow = ["preflight", "inference-stack", "backends", "results", "scaling-up"]
    section = [p for p in docgen.NAV if p.startswith("run-training/")]
    order = [Path(p).stem for p in section]
    assert [o for o in order if o in flow] == flow
    assert order[0] == "preflight" and order[-1] == "scaling-up"
    first = docgen.NAV.index(section[0])
    assert docgen.NAV[first : first + len(section)] == section


def test_docs_build_without_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What `nox -s docs -- --check --site DIR` does: nothing stale, no finding, a full site."""
    site = tmp_path / "site"
    rc = docgen.main(["--docs", str(DOCS), "--check", "--site", str(site)])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(out) == 1, out
    assert out[0] == f"docgen: rendered {len(docgen.NAV)} pages to {site}/ (open {site}/index.html)"


def test_site_problems_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    assert docgen.site_problems(docs) == []
    (docs / "orphan.md").write_text("# Orphan\n\n```bash\necho never closed\n")
    (docs / "quickstart.md").write_text(
        read("quickstart.md") + "\nSee [the config](../configs/smoke_cpu.yaml).\n"
    )
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "smoke_cpu.yaml").write_text("mode: sync\n")
    problems = docgen.site_problems(docs)
    assert len(problems) == 3, problems
    assert "orphan.md: not in the navigation" in problems[0]
    assert "orphan.md:3: code fence never closed" in problems[1]
    assert "../configs/smoke_cpu.yaml leaves docs/" in problems[2]
    capsys.readouterr()
    assert docgen.main(["--docs", str(docs), "--check"]) == 1
    assert "not in the navigation" in capsys.readouterr().out


def test_unclosed_fence() -> None:
    assert docgen.unclosed_fence("a\n```bash\nx\n```\n~~~\n```\n~~~\n") is None
    assert docgen.unclosed_fence("a\n````\n```\nstill code\n") == 2
    assert docgen.unclosed_fence("```\n```python\n") == 1  # a fence with info does not close


def test_site_renders_every_page_with_anchors_and_html_links(tmp_path: Path) -> None:
    written = docgen.build_site(DOCS, tmp_path)
    assert {str(p.relative_to(tmp_path)) for p in written} == {
        str(Path(p).with_suffix(".html")) for p in docgen.NAV
    }
    index = (tmp_path / "index.html").read_text()
    assert 'href="quickstart.html"' in index and 'href="quickstart.md"' not in index
    config = (tmp_path / "reference" / "config.html").read_text()
    assert 'id="component-options"' in config
    preflight = (tmp_path / "run-training" / "preflight.html").read_text()
    assert 'href="../plugins.html"' in preflight
    # grouped navigation, the current page marked, previous/next links, the search script
    assert "<li>Run training<ul>" in preflight and "<li>Reference<ul>" in preflight
    assert 'href="../run-training/preflight.html" class="here"' in preflight
    assert 'href="../concepts.html">← Concepts</a>' in preflight
    assert '<script src="../search.js"></script>' in preflight
    assert 'data-root=".."' in preflight and 'data-root="."' in index


def test_site_search_indexes_every_section(tmp_path: Path) -> None:
    import json

    docgen.build_site(DOCS, tmp_path)
    script = (tmp_path / "search.js").read_text()
    data = script.split("\n", 1)[0].removeprefix("var SWERL_SEARCH = ").removesuffix(";")
    entries = json.loads(data)
    urls = {e["u"] for e in entries}
    assert {str(Path(p).with_suffix(".html")) for p in docgen.NAV} <= urls
    hit = next(
        e
        for e in entries
        if e["u"] == "run-training/preflight.html#head-divisibility-tensor-and-sequence-parallel"
    )
    assert hit["t"] == "Preflight: swerl check › Head divisibility (tensor and sequence parallel)"
    assert "num_key_value_heads" in hit["x"] and "`" not in hit["x"]
    assert "SWERL_SEARCH[i]" in script  # the search code follows the index
