"""Declarative run specs: pydantic models loaded from YAML or TOML.

A run spec names a run, its data, and a mapping of stages (run in the order of their ``needs``).
Every component inside it is written as ``{name: <registered name>, <setting>: <value>, ...}``; the
settings are validated against the component's own config model, so an error names the full path of
the offending field, e.g. ``stages.pretrain.encoder.depth: Input should be a valid integer (got 'six')``.

A spec that needs something only the user has (a directory of their files) declares it under
``settings`` and writes ``${name}`` where it is used; ``--set settings.name=VALUE`` gives it, and a
spec run without it fails naming the setting.
"""

from __future__ import annotations

import difflib
import json
import re
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import tomllib
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from specclip_core.data.inputs import check_regular_file
from specclip_core.errors import ReaderError, SpecCLIPError, SpecError, UnknownComponentError

NESTED_ERROR = "specclip_nested"


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def _registry(info: ValidationInfo):
    from specclip_core.components import get_registry

    return (info.context or {}).get("registry") or get_registry()


def _known_modality(name: str, info: ValidationInfo) -> str:
    registry = _registry(info)
    try:
        registry.get("modality", name)
    except UnknownComponentError as error:
        raise ValueError(str(error)) from None
    return name


ModalityName = Annotated[str, AfterValidator(_known_modality)]


def _existing_path(value: str, info: ValidationInfo) -> str:
    if (info.context or {}).get("check_paths") and not Path(value).exists():
        raise ValueError(f"{value}: no such file or directory (relative paths are relative to {Path.cwd()})")
    return value


InputPath = Annotated[str, AfterValidator(_existing_path)]
"""A file or directory a stage reads: it must exist when a spec file is loaded (:func:`load_spec`, so
``specclip validate`` and ``run`` name it before anything runs); :func:`validate_spec` checks it on request."""
"""A registered modality name or alias, checked when the spec is validated."""


def problems_of(error: ValidationError) -> list[tuple[str, str]]:
    """(dotted path, message) for every problem in a pydantic error, nested component errors expanded."""
    out: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        path = ".".join(str(p) for p in item["loc"])
        if item["type"] == NESTED_ERROR:
            for sub_path, message in item["ctx"]["problems"]:
                out.append((".".join(p for p in (path, sub_path) if p), message))
            continue
        message = item["msg"]
        if item["type"] not in ("missing", "extra_forbidden", "value_error") and "input" in item:
            shown = repr(item["input"])
            message += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
        if item["type"] == "extra_forbidden":
            message = "unknown key (not a field of this section)"
        out.append((path, message))
    return out


class ComponentSpec(BaseModel):
    """``{name: ..., **settings}`` for one registered component of kind ``kind``."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = ""
    name: str = Field(description="registered name of the component")
    _config: BaseModel | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _validate_settings(self, info: ValidationInfo) -> ComponentSpec:
        registry = _registry(info)
        try:
            component = registry.get(self.kind, self.name)
        except UnknownComponentError as error:
            raise PydanticCustomError(NESTED_ERROR, "{summary}", {"summary": str(error), "problems": [("name", str(error))]})
        try:
            self._config = component.validate(self.settings(), context=info.context)
        except ValidationError as error:
            problems = problems_of(error)
            raise PydanticCustomError(
                NESTED_ERROR, "{summary}", {"summary": f"invalid settings for {self.kind} {self.name!r}", "problems": problems}
            )
        except SpecError as error:
            raise PydanticCustomError(NESTED_ERROR, "{summary}", {"summary": str(error), "problems": error.problems})
        return self

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def config(self) -> BaseModel | None:
        return self._config

    def build(self) -> Any:
        from specclip_core.components import get_registry

        return get_registry().get(self.kind, self.name).build(self._config)


def _component_spec(kind: str) -> type[ComponentSpec]:
    return type(f"{kind.capitalize()}Spec", (ComponentSpec,), {"kind": kind, "__module__": __name__})


EncoderSpec = _component_spec("encoder")
TokenizerSpec = _component_spec("tokenizer")
ProjectionSpec = _component_spec("projection")
DecoderSpec = _component_spec("decoder")
HeadSpec = _component_spec("head")
ObjectiveSpec = _component_spec("objective")


class TrainSpec(SpecModel):
    """Settings of the one training loop (:class:`specclip_core.train.Trainer`)."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1, description="per process (per GPU under torchrun)")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_fraction: float = Field(0.05, ge=0, lt=1, description="linear warm-up, as a fraction of all steps")
    min_lr_ratio: float = Field(0.01, ge=0, le=1, description="cosine floor as a fraction of lr")
    grad_clip: float | None = Field(1.0, gt=0)
    patience: int | None = Field(5, ge=1, description="early stopping: epochs without validation improvement")
    min_delta: float = Field(0.0, ge=0)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    drop_last: bool = Field(False, description="drop the last incomplete training batch of each epoch")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    find_unused_parameters: bool = False


class DataSpec(SpecModel):
    """Where a stage's spectra come from: a registered dataset (fetched on demand), a store path, or
    the store an earlier stage wrote (e.g. an ``ingest`` stage)."""

    dataset: str | None = None
    store: InputPath | None = None
    stage: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSpec:
        if sum(v is not None for v in (self.dataset, self.store, self.stage)) != 1:
            raise ValueError("give exactly one of 'dataset' (a registered dataset name), 'store' (a path) or 'stage' (an earlier stage that writes a store)")
        return self


class StageSpec(BaseModel):
    """One stage: ``kind`` picks a registered stage; its other keys are that stage's settings."""

    model_config = ConfigDict(extra="allow")
    kind: str = Field(description="registered stage kind (specclip list stage)")
    needs: list[str] = Field(default_factory=list, description="stages whose outputs this one reads (the stage that writes its data, and stages its settings name, are added)")
    data: DataSpec | None = Field(None, description="this stage's spectra, instead of the spec's top-level data")
    _config: BaseModel | None = PrivateAttr(default=None)
    _stage: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _validate_settings(self, info: ValidationInfo) -> StageSpec:
        registry = _registry(info)
        try:
            component = registry.get("stage", self.kind)
        except UnknownComponentError as error:
            raise PydanticCustomError(NESTED_ERROR, "{summary}", {"summary": str(error), "problems": [("kind", str(error))]})
        try:
            self._config = component.validate(dict(self.model_extra or {}), context=info.context)
        except ValidationError as error:
            raise PydanticCustomError(
                NESTED_ERROR, "{summary}", {"summary": f"invalid {self.kind} stage", "problems": problems_of(error)}
            )
        self._stage = component.build(self._config)
        return self

    @property
    def config(self) -> BaseModel | None:
        return self._config

    @property
    def stage(self) -> Any:
        """The :class:`~specclip_core.interfaces.Stage` built from these settings."""
        return self._stage


class Setting(SpecModel):
    """Something the user gives a spec (``--set settings.<name>=VALUE``), written ``${name}`` where used."""

    description: str = ""
    value: Any = None


def _nested(problems: list[tuple[str, str]], summary: str) -> PydanticCustomError:
    return PydanticCustomError(NESTED_ERROR, "{summary}", {"summary": summary, "problems": problems})


def order_stages(stages: Mapping[str, StageSpec], data: DataSpec | None) -> tuple[list[str], dict[str, list[str]], list[tuple[str, str]]]:
    """Stage names in an order where each comes after what it needs (file order where free), each
    stage's complete needs (its own, the stage writing its data, those its settings name), and problems."""
    problems: list[tuple[str, str]] = []
    needs: dict[str, list[str]] = {}
    for name, stage in stages.items():
        wanted = [(need, f"stages.{name}.needs") for need in stage.needs]
        source = stage.data or data
        if stage.stage is not None and stage.stage.requires_data and source is not None and source.stage is not None:
            where = f"stages.{name}.data.stage" if stage.data is not None else "data.stage"
            wanted.append((source.stage, where))
        if stage.stage is not None:
            wanted += [(need, f"stages.{name}") for need in stage.stage.needs()]
        needs[name] = []
        for need, where in wanted:
            if need not in stages:
                problems.append((where, f"{need!r} is not a stage of this spec (stages: {', '.join(stages)})"))
            elif need == name:
                problems.append((where, f"stage {name!r} cannot need itself"))
            elif need not in needs[name]:
                needs[name].append(need)
    order: list[str] = []
    waiting = list(stages)
    while waiting:
        ready = next((n for n in waiting if all(need in order for need in needs[n])), None)
        if ready is None:
            problems.append(("stages", f"stages need each other in a circle: {', '.join(waiting)}"))
            order += waiting
            break
        order.append(ready)
        waiting.remove(ready)
    return order, needs, problems


def missing_data(stages: Mapping[str, StageSpec], data: DataSpec | None) -> list[tuple[str, str]]:
    """A problem for every stage that reads spectra but is given none, here or at the top level."""
    return [
        (f"stages.{name}.data", "no data given here or at the top level")
        for name, stage in stages.items()
        if stage.data is None and data is None and stage.stage is not None and stage.stage.requires_data
    ]


def _data_columns(source: DataSpec, stages: Mapping[str, StageSpec]) -> tuple[list[str], str] | None:
    """The label columns of a stage's data and what they come from, where known without running anything."""
    from specclip_core.data.schema import cached_store

    if source.stage is not None:
        writer = stages.get(source.stage)
        columns = writer.stage.labels_written() if writer is not None and writer.stage is not None else None
        return None if columns is None else (columns, f"the store stage {source.stage!r} writes")
    store = cached_store(source.store if source.store is not None else source.dataset)
    if store is None:
        return None
    return list(store.label_columns), f"store {source.store}" if source.store is not None else f"dataset {source.dataset!r}"


def label_problems(stages: Mapping[str, StageSpec], data: DataSpec | None) -> list[tuple[str, str]]:
    """A problem for every label column a stage reads that its data is known not to have (a store on
    disk, a dataset in the cache, what an earlier stage declares it writes); silent where unknown."""
    problems: list[tuple[str, str]] = []
    for name, stage in stages.items():
        source = stage.data or data
        wanted = stage.stage.labels_read() if stage.stage is not None else {}
        known = _data_columns(source, stages) if wanted and source is not None else None
        if known is None:
            continue
        columns, origin = known
        for setting, labels in wanted.items():
            for label in labels:
                if label not in columns:
                    close = difflib.get_close_matches(label, columns, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    problems.append((f"stages.{name}.{setting}", f"{label!r} is not a label column of {origin}; {hint}its columns: {', '.join(columns)}"))
    return problems


class RunSpec(SpecModel):
    """A whole run: data, seed and an ordered mapping of stage name -> stage."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the run's name (default run directory: runs/<name>)")
    description: str = Field("", description="free text")
    seed: int = Field(0, description="seeds every stage (with the stage's name) and the data splits' shuffles")
    run_dir: str | None = Field(None, description="default: runs/<name>")
    threads: int | None = Field(None, ge=1, description="CPU threads of torch and BLAS/OpenMP (default: SPECCLIP_THREADS, else the CPUs this process may use that other work does not keep busy at the start; never more than those CPUs)")
    settings: dict[str, Setting] = Field(default_factory=dict, description="values the user gives (--set settings.NAME=VALUE), used as ${NAME}")
    data: DataSpec | None = Field(None, description="the spectra of every stage that reads spectra and names none itself")
    stages: dict[str, StageSpec] = Field(min_length=1, description="stage name -> stage; run in the order of their needs")

    @model_validator(mode="after")
    def _check_order(self) -> RunSpec:
        order, needs, problems = order_stages(self.stages, self.data)
        problems += missing_data(self.stages, self.data) + label_problems(self.stages, self.data)
        if problems:
            raise _nested(problems, "bad stages")
        for name, stage in self.stages.items():
            stage.needs[:] = needs[name]
        self.stages = {name: self.stages[name] for name in order}
        return self

    def data_for(self, stage_name: str) -> DataSpec | None:
        return self.stages[stage_name].data or self.data

    def dump(self) -> dict[str, Any]:
        """The spec as plain data, settings included, in a form that validates back to an equal spec."""
        return json.loads(self.model_dump_json(exclude_none=True))


MAX_SPEC_VALUES = 100_000
"""The most values (scalars, lists and mappings) a YAML spec may hold once its aliases are expanded."""


def _duplicate_key(node: yaml.MappingNode) -> str | None:
    """A problem naming a key written twice in one mapping (YAML would silently keep the last), if any."""
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in lines:
            return f"line {line}: key {key_node.value!r} is given twice in one mapping (first at line {lines[key_node.value]})"
        lines[key_node.value] = line
    return None


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes ``root`` holds with every alias expanded (each shared node counted once per use);
    linear in the distinct nodes. Raises ValueError on an alias that contains itself or a key given twice."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ValueError(f"line {node.start_mark.line + 1}: an alias that contains itself (a recursive anchor)")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            duplicate = _duplicate_key(node)
            if duplicate:
                raise ValueError(duplicate)
            total += sum(size(key_node) + size(value) for key_node, value in node.value)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load``, refusing a document whose aliases expand it beyond :data:`MAX_SPEC_VALUES`
    values (measured on the parsed nodes, before anything is built from them)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = _expanded_size(node)
        if values > MAX_SPEC_VALUES:
            raise ValueError(f"its aliases expand it to {values:,} values; a spec may hold at most {MAX_SPEC_VALUES:,}")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_spec_text(text: str, suffix: str, source: str = "<spec>") -> dict[str, Any]:
    """A spec's text (YAML, or TOML for a ``.toml`` suffix) as a mapping; SpecError naming ``source`` otherwise."""
    kind = "toml" if suffix == ".toml" else "yaml"
    try:
        data = tomllib.loads(text) if kind == "toml" else _load_yaml(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError) as error:
        raise SpecError(source, [("", f"cannot parse {kind}: {error}")]) from None
    except RecursionError:
        raise SpecError(source, [("", f"cannot parse {kind}: nested too deeply")]) from None
    if not isinstance(data, Mapping):
        raise SpecError(source, [("", f"expected a mapping at the top level, got {type(data).__name__}")])
    return dict(data)


def _stages_as_far_as_valid(data: Mapping[str, Any], context: dict[str, Any] | None) -> tuple[dict[str, StageSpec], DataSpec | None] | None:
    """Each stage validated alone (a stage that fails keeps only its ``needs`` and ``data``), and the top-level data."""

    def valid(model: type[BaseModel], value: Any) -> Any:
        try:
            return model.model_validate(value, context=context)
        except ValidationError:
            return None

    raw = data.get("stages")
    if not isinstance(raw, Mapping):
        return None
    stages: dict[str, StageSpec] = {}
    for name, item in raw.items():
        stage = valid(StageSpec, item) if isinstance(item, Mapping) else None
        if stage is None:
            item = item if isinstance(item, Mapping) else {}
            needs = item.get("needs") if isinstance(item.get("needs"), list) else []
            stage = StageSpec.model_construct(kind=str(item.get("kind")), needs=[str(n) for n in needs], data=valid(DataSpec, item.get("data")))
        stages[str(name)] = stage
    top = data.get("data")
    return stages, valid(DataSpec, top) if top is not None else None


def validate_spec(data: Mapping[str, Any], source: str = "<spec>", registry=None, check_paths: bool = False) -> RunSpec:
    """Validate plain data as a :class:`RunSpec`; raise :class:`SpecError` with field paths, every
    problem at once: fields, stages' settings, needs, data and the labels the data lacks (and, with
    ``check_paths``, every input path that does not exist)."""
    context = {"registry": registry} if registry else {}
    spec, problems = _validated(data, context)
    if check_paths:  # a second pass: what fails only because a path is missing
        problems += [p for p in _validated(data, {**context, "check_paths": True}, partial=False)[1] if p not in problems]
    if problems:
        raise SpecError(source, problems)
    return spec


def _validated(data: Mapping[str, Any], context: dict[str, Any], partial: bool = True) -> tuple[RunSpec | None, list[tuple[str, str]]]:
    """The spec, or None and every problem of ``data``; with ``partial``, also the problems found by
    validating each stage alone when the spec as a whole fails (needs, data, labels)."""
    try:
        return RunSpec.model_validate(dict(data), context=context or None), []
    except ValidationError as error:
        problems = problems_of(error)
    found = _stages_as_far_as_valid(data, context or None) if partial else None
    if found is not None:
        stages, top = found
        problems += [p for p in order_stages(stages, top)[2] + missing_data(stages, top) + label_problems(stages, top) if p not in problems]
    return None, problems


def find_spec(name_or_path: str | Path) -> Path:
    """A spec file by path, or by the name of a spec that the registry or a plugin ships."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".toml") or path.exists():
        try:
            check_regular_file(path)
        except ReaderError as error:
            raise SpecCLIPError(f"{path}: cannot be read as a spec: {error.reason}") from None
        return path
    known = registered_specs()
    if str(name_or_path) in known:
        return known[str(name_or_path)]
    raise SpecCLIPError(f"no spec file or registered spec called {str(name_or_path)!r}; registered: {', '.join(sorted(known))}")


def registered_spec_sources() -> dict[str, tuple[Path, str]]:
    """Name -> (path, distribution that ships it) of every run spec a plugin registers."""
    from specclip_core.plugins import distribution_of, get_plugin_manager

    out: dict[str, tuple[Path, str]] = {}
    for impl in get_plugin_manager().hook.specclip_register_specs.get_hookimpls():
        distribution = " ".join(filter(None, distribution_of(impl.plugin_name)))
        for item in impl.function() or []:
            name = Path(item).stem
            if name in out:
                raise SpecCLIPError(f"run spec {name!r} is registered twice: by {out[name][1]} ({out[name][0]}) and by {distribution} ({item})")
            out[name] = (Path(item), distribution)
    return out


def registered_specs() -> dict[str, Path]:
    """Name -> path of every run spec the plugins register."""
    return {name: path for name, (path, _) in registered_spec_sources().items()}


def merge_spec_data(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` laid over ``base``: mappings merge key by key, anything else (lists too) replaces,
    and a key set to null is removed (a stage, or a setting back to its default)."""
    merged = dict(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_spec_data(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_spec_text(path: Path) -> str:
    """A spec file's text: a regular file (a FIFO cannot hang), UTF-8 (a byte-order mark is allowed)."""
    try:
        check_regular_file(path)
        raw = path.read_bytes()
    except ReaderError as error:
        raise SpecError(str(path), [("", error.reason)]) from None
    except OSError as error:
        raise SpecError(str(path), [("", f"cannot read: {error.strerror}")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SpecError(str(path), [("", f"not UTF-8 text: byte 0x{raw[error.start]:02x} at line {line} (offset {error.start}); save the spec as UTF-8")]) from None


def read_spec_data(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A spec file's data, with ``extends: <spec name or path>`` resolved: the named spec's data with this
    file's laid over it (:func:`merge_spec_data`). Relative paths are relative to the extending file."""
    data = parse_spec_text(read_spec_text(path), path.suffix.lower(), str(path))
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise SpecError(str(path), [("extends", f"expected a spec name or path, got {type(base).__name__}")])
    candidate = path.parent / base
    try:
        base_path = (candidate if candidate.is_file() else find_spec(base)).resolve()
    except SpecCLIPError as error:
        raise SpecError(str(path), [("extends", str(error))]) from None
    if base_path in seen or base_path == path.resolve():
        raise SpecError(str(path), [("extends", f"{base!r} extends itself through {' -> '.join(p.name for p in seen)}")])
    return merge_spec_data(read_spec_data(base_path, (*seen, path.resolve())), data)


PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_settings(data: Mapping[str, Any], source: str = "<spec>") -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    """``data`` with every ``${name}`` replaced by the value of setting ``name`` (a setting given as
    a plain value by ``--set settings.name=VALUE`` counts as its value), the problems (unset or
    undeclared settings, naming them) and the fields left without a value. A placeholder that is the
    whole string takes the value's own type."""
    declared = data.get("settings") or {}
    if not isinstance(declared, Mapping):
        raise SpecError(source, [("settings", f"expected a mapping of setting name -> {{description, value}}, got {type(declared).__name__}")])
    settings = {name: dict(entry) if isinstance(entry, Mapping) else {"value": entry} for name, entry in declared.items()}
    problems: list[tuple[str, str]] = []
    unset: dict[str, list[str]] = {}
    undeclared: list[str] = []

    def value_of(name: str, where: str) -> Any:
        if name not in settings:
            problems.append((where, f"${{{name}}} names no setting (declared: {', '.join(settings) or 'none'})"))
            undeclared.append(where)
            return None
        value = settings[name].get("value")
        if value is None:
            unset.setdefault(name, []).append(where)
        return value

    def substitute(node: Any, where: str) -> Any:
        if isinstance(node, str):
            whole = PLACEHOLDER.fullmatch(node)
            if whole:
                return value_of(whole[1], where)
            return PLACEHOLDER.sub(lambda m: str(value_of(m[1], where)), node)
        if isinstance(node, Mapping):
            return {key: substitute(value, f"{where}.{key}" if where else str(key)) for key, value in node.items()}
        if isinstance(node, list):
            return [substitute(value, f"{where}.{i}") for i, value in enumerate(node)]
        return node

    resolved = {key: substitute(value, key) for key, value in data.items() if key != "settings"}
    for name, places in unset.items():
        what = settings[name].get("description") or "no description"
        problems.append((f"settings.{name}", f"not set ({what}); give it with --set settings.{name}=VALUE (used at {', '.join(places)})"))
    if settings:
        resolved["settings"] = settings
    return resolved, problems, undeclared + [place for places in unset.values() for place in places]


def _set_target(data: dict[str, Any], dotted: str, problems: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The mapping in which ``--set dotted=...`` sets its last key (made where missing), or None after
    adding a problem naming the key: an empty part, or a part that holds something other than a mapping."""
    *parents, leaf = dotted.split(".")
    if not all(parents) or not leaf:
        problems.append((dotted, f"--set {dotted}: expected KEY or KEY.SUBKEY... with no empty part"))
        return None
    node = data
    for depth, key in enumerate(parents):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            where = ".".join(parents[: depth + 1])
            problems.append((dotted, f"--set {dotted}: {where} is {reprlib.repr(node)} ({type(node).__name__}), not a mapping with keys"))
            return None
    return node


def load_spec(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None, check_paths: bool = True) -> RunSpec:
    """Load (resolving ``extends``), merge ``overrides`` (dotted keys), fill in ``settings`` and
    validate a spec from a file or a registered name; with ``check_paths`` (the default) every input
    path must exist."""
    path = find_spec(name_or_path)
    data = read_spec_data(path)
    set_problems = []
    for dotted, value in (overrides or {}).items():
        node = _set_target(data, dotted, set_problems)
        if node is None:
            continue
        *parents, leaf = dotted.split(".")
        if parents == ["settings"] and isinstance(node.get(leaf), Mapping):
            node[leaf] = {**node[leaf], "value": value}  # --set settings.NAME=VALUE keeps the description
        else:
            node[leaf] = value
    resolved, problems, unset = resolve_settings(data, str(path))
    problems = set_problems + problems
    try:
        spec = validate_spec(resolved, str(path), check_paths=check_paths)
    except SpecError as error:  # leave out what only an unset setting's missing value caused
        problems += [(where, message) for where, message in error.problems if not any(_within(where, place) for place in unset)]
    if problems:
        raise SpecError(str(path), problems)
    return spec


def _within(path: str, place: str) -> bool:
    """Whether field ``path`` is ``place``, inside it, or its parent (``data`` for ``data.store``)."""
    return path == place or path.startswith(place + ".") or place.rpartition(".")[0] == path


def components_used(config: BaseModel | None) -> set[tuple[str, str]]:
    """(kind, name) of the registered components that validated settings name: every component spec
    (encoder, head, objective, ...) and every modality name (as a value or a key)."""
    from specclip_core.components import get_registry

    registry = get_registry()
    found: set[tuple[str, str]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, ComponentSpec):
            found.add((value.kind, value.name))
            walk(value.config)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
            for item in (value.model_extra or {}).values():
                walk(item)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                walk(item)
        elif isinstance(value, str) and registry.is_modality(value):
            found.add(("modality", registry.get("modality", value).name))

    walk(config)
    return found


def json_schema() -> dict[str, Any]:
    """JSON schema of a run spec for editors, with every registered stage and component spelled out."""
    from specclip_core.components import get_registry

    registry = get_registry()
    schema = RunSpec.model_json_schema()
    defs = schema.setdefault("$defs", {})

    def variants(kind: str, key: str) -> list[dict[str, Any]]:
        out = []
        for name in registry.names(kind):
            component = registry.get(kind, name)
            sub = component.config.model_json_schema(ref_template="#/$defs/{model}") if component.config else {"type": "object"}
            defs.update(sub.pop("$defs", {}))
            sub.setdefault("properties", {})[key] = {"const": name}
            sub.setdefault("required", []).append(key)
            sub["additionalProperties"] = False
            sub["description"] = component.description
            out.append(sub)
        return out

    stage_variants = variants("stage", "kind")
    for variant in stage_variants:
        variant["properties"].update(
            needs={"type": "array", "items": {"type": "string"}}, data={"$ref": "#/$defs/DataSpec"}
        )
    defs["StageSpec"] = {"oneOf": stage_variants, "title": "StageSpec"}
    for kind in ("encoder", "tokenizer", "projection", "decoder", "head", "objective"):
        title = f"{kind.capitalize()}Spec"
        if title in defs:
            defs[title] = {"oneOf": variants(kind, "name"), "title": title}
    return schema
