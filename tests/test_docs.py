"""Everything a plugin author or a spec writer can name is documented in docs/ (after datasette's test_docs.py).

The rules, on the markdown files of ``docs/`` with fenced code blocks left out:

- A heading *names* ``X`` when one of its code spans (text in single backticks) is ``X``, or starts
  with ``X(`` (a hook written with its arguments). The *section* of ``X`` runs from the first heading
  that names it to the next heading of the same or a higher level (its sub-headings belong to it).
  "Appears" below means: as a code span whose whole text is ``X``, inside the section named.
- Hooks: every ``specclip_*`` hookspec in :mod:`specclip_core.hookspecs` has a section in
  ``docs/hooks.md``, and each of its arguments appears in that section.
- Component kinds: every kind in :data:`specclip_core.components.KINDS` appears in the section of
  ``KINDS`` in ``docs/hooks.md``.
- Stages: every registered stage kind (core and every installed plugin, e.g. ``simulate``) has a
  section in ``docs/run-spec.md``, and every field of its config model appears in that section. A
  field whose type holds a further :class:`~specclip_core.spec.SpecModel` (``TrainSpec``,
  ``DataSpec``, ``AlignWeights``, ``Range``, ``Table1Block``, ...) brings that model's fields too:
  they must appear in the model's own section of ``docs/run-spec.md`` when it has one (a shared model,
  e.g. ``TrainSpec``), else in the stage's section. The same rule applies inside nested models.
- Run specs: every field of ``RunSpec``, ``StageSpec``, ``DataSpec``, ``Setting`` and ``TrainSpec``
  appears in that model's section of ``docs/run-spec.md``.
- Code: every ``python`` block of ``docs/writing-a-plugin.md`` and ``docs/hooks.md`` parses, and
  imports from the core only ``specclip_core.api`` (and ``specclip_core.testing``), names that exist
  there.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from specclip_core import hookspecs
from specclip_core.components import KINDS, get_registry
from specclip_core.spec import DataSpec, RunSpec, Setting, SpecModel, StageSpec, TrainSpec

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ *```.*?^ *```[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
ALLOWED_IMPORTS = ("specclip_core.api", "specclip_core.testing")


def prose(text: str) -> str:
    """Markdown without its fenced code blocks (kept as blank lines), so '# comments' are no headings."""
    return FENCE.sub(lambda m: "\n" * m[0].count("\n"), text)


def read_doc(name: str) -> str:
    return prose((DOCS / name).read_text())


def named(heading: str) -> set[str]:
    return {span.split("(")[0].strip() for span in CODE_SPAN.findall(heading)}


def section(text: str, name: str) -> str | None:
    """The section of ``name`` in ``text`` (see the module docstring), or None when no heading names it."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        found = HEADING.match(line)
        if found and name in named(found[2]):
            body = []
            for later in lines[i + 1 :]:
                heading = HEADING.match(later)
                if heading and len(heading[1]) <= len(found[1]):
                    break
                body.append(later)
            return "\n".join(body)
    return None


def spans(text: str) -> set[str]:
    return {span.strip() for span in CODE_SPAN.findall(text)}


def missing_in_section(text: str, name: str, wanted: list[str], doc: str, owner: str = "") -> list[str]:
    """What of ``wanted`` does not appear in the section of ``name``, one line each (``owner``: whose fields)."""
    body = section(text, name)
    if body is None:
        return [f"{doc}: no heading names `{name}`"]
    present = spans(body)
    whose = (lambda item: f" ({owner}.{item})") if owner else (lambda item: "")
    return [f"{doc}, section `{name}`: `{item}` is not documented{whose(item)}" for item in wanted if item not in present]


def nested_models(annotation) -> list[type[SpecModel]]:
    """The SpecModel classes a field's type holds (``TrainSpec``, ``dict[str, Range]``, ``DataSpec | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, SpecModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in nested_models(arg)]


def undocumented_fields(model: type[BaseModel], text: str, name: str, doc: str = "docs/run-spec.md", seen: tuple = ()) -> list[str]:
    """Fields of ``model`` missing from the section of ``name``, and those of the SpecModels its fields
    hold, each in its own section when it has one, else in the section of ``name``."""
    problems = missing_in_section(text, name, list(model.model_fields), doc, model.__name__)
    for field in model.model_fields.values():
        for inner in nested_models(field.annotation):
            if inner is model or inner in seen:
                continue
            where = inner.__name__ if section(text, inner.__name__) is not None else name
            problems += undocumented_fields(inner, text, where, doc, (*seen, model))
    return list(dict.fromkeys(problems))


def import_problems(source: str, where: str) -> list[str]:
    """Imports of the core in a python snippet that are not from the plugin API, or name nothing there."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [f"{where}: does not parse: {error}"]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            core = [a.name for a in node.names if a.name.startswith("specclip_core")]
            problems += [f"{where}: `import {name}`: import from specclip_core.api" for name in core]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("specclip_core"):
            if node.module not in ALLOWED_IMPORTS:
                problems.append(f"{where}: `from {node.module} import ...`: a plugin imports only {' and '.join(ALLOWED_IMPORTS)}")
                continue
            module = importlib.import_module(node.module)
            problems += [f"{where}: {node.module} has no {a.name!r}" for a in node.names if not hasattr(module, a.name)]
    return problems


HOOKS = {name: fn for name, fn in vars(hookspecs).items() if name.startswith("specclip_") and callable(fn)}
STAGES = {kind: get_registry().get("stage", kind).config for kind in get_registry().names("stage")}
SPEC_MODELS = [RunSpec, StageSpec, DataSpec, Setting, TrainSpec]


def test_every_hookspec_is_found():
    assert len(HOOKS) >= 7 and "specclip_register_components" in HOOKS


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hook_is_documented(hook):
    arguments = list(inspect.signature(HOOKS[hook]).parameters)
    problems = missing_in_section(read_doc("hooks.md"), hook, arguments, "docs/hooks.md")
    assert not problems, f"hook {hook} is undocumented:\n" + "\n".join(problems)


@pytest.mark.parametrize("kind", list(KINDS))
def test_component_kind_is_documented(kind):
    problems = missing_in_section(read_doc("hooks.md"), "KINDS", [kind], "docs/hooks.md")
    assert not problems, f"component kind {kind!r} is undocumented:\n" + "\n".join(problems)


def test_plugin_stages_are_included():
    assert {"ingest", "pretrain", "align", "heads", "evaluate", "report", "neighbours", "simulate"} <= set(STAGES)


@pytest.mark.parametrize("kind", sorted(STAGES))
def test_stage_and_its_settings_are_documented(kind):
    config = STAGES[kind]
    text = read_doc("run-spec.md")
    problems = undocumented_fields(config, text, kind) if config else missing_in_section(text, kind, [], "docs/run-spec.md")
    assert not problems, f"stage {kind!r} is undocumented:\n" + "\n".join(problems)


@pytest.mark.parametrize("model", SPEC_MODELS, ids=lambda m: m.__name__)
def test_run_spec_fields_are_documented(model):
    problems = undocumented_fields(model, read_doc("run-spec.md"), model.__name__)
    assert not problems, f"{model.__name__} is undocumented:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", ["writing-a-plugin.md", "hooks.md"])
def test_code_snippets_import_only_the_plugin_api(doc):
    blocks = PYTHON_BLOCK.findall((DOCS / doc).read_text())
    assert blocks, f"docs/{doc} has no python block"
    problems = [p for i, block in enumerate(blocks) for p in import_problems(block, f"docs/{doc}, python block {i + 1}")]
    assert not problems, "\n".join(problems)


# The checker can fail: it reports what a document leaves out.

FAKE_DOC = prose(
    """# Top

## `specclip_register_things(things)`

Takes `things`.

```yaml
# `specclip_register_nothing` (a comment in a code block, not a heading)
```

## `Outer`

`a` and `inner`.

### `Shared`

`c`

## `Lonely`

`a`
"""
)


class Shared(SpecModel):
    c: int = 0


class Inner(SpecModel):
    d: int = 0


class Outer(SpecModel):
    a: int = 0
    b: int = 0
    inner: Inner = Inner()
    shared: dict[str, Shared] = {}


def test_the_checker_reports_a_missing_hook_and_a_missing_argument():
    assert missing_in_section(FAKE_DOC, "specclip_register_things", ["things"], "fake.md") == []
    assert missing_in_section(FAKE_DOC, "specclip_register_things", ["things", "more"], "fake.md") == [
        "fake.md, section `specclip_register_things`: `more` is not documented"
    ]
    assert missing_in_section(FAKE_DOC, "specclip_register_nothing", [], "fake.md") == [
        "fake.md: no heading names `specclip_register_nothing`"
    ]


def test_the_checker_reports_missing_fields_nested_ones_included():
    assert undocumented_fields(Outer, FAKE_DOC, "Outer", "fake.md") == [
        "fake.md, section `Outer`: `b` is not documented (Outer.b)",
        "fake.md, section `Outer`: `shared` is not documented (Outer.shared)",
        "fake.md, section `Outer`: `d` is not documented (Inner.d)",
    ]
    assert undocumented_fields(Shared, FAKE_DOC, "Shared", "fake.md") == []
    assert undocumented_fields(Shared, FAKE_DOC, "Lonely", "fake.md") == ["fake.md, section `Lonely`: `c` is not documented (Shared.c)"]


def test_the_checker_reports_a_field_missing_from_the_real_docs():
    class Fake(SpecModel):
        not_documented_anywhere: int = 0

    problems = undocumented_fields(Fake, read_doc("run-spec.md"), "ingest")
    assert problems == ["docs/run-spec.md, section `ingest`: `not_documented_anywhere` is not documented (Fake.not_documented_anywhere)"]


def test_the_checker_reports_bad_imports():
    assert import_problems("from specclip_core.api import Stage, NoSuchThing\nfrom specclip_core.spec import TrainSpec\n", "x") == [
        "x: specclip_core.api has no 'NoSuchThing'",
        "x: `from specclip_core.spec import ...`: a plugin imports only specclip_core.api and specclip_core.testing",
    ]
