"""Declarative run specs: pydantic models loaded from YAML or TOML.

A run spec names a run, its data, and an ordered mapping of stages. Every component inside it is
written as ``{name: <registered name>, <setting>: <value>, ...}``; the settings are validated
against the component's own config model, so an error names the full path of the offending field,
e.g. ``stages.pretrain.encoder.depth: Input should be a valid integer (got 'six')``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import tomllib
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from specclip_core.errors import SpecCLIPError, SpecError, UnknownComponentError

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
    store: str | None = None
    stage: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSpec:
        if sum(v is not None for v in (self.dataset, self.store, self.stage)) != 1:
            raise ValueError("give exactly one of 'dataset' (a registered dataset name), 'store' (a path) or 'stage' (an earlier stage that writes a store)")
        return self


class StageSpec(BaseModel):
    """One stage: ``kind`` picks a registered stage; its other keys are that stage's settings."""

    model_config = ConfigDict(extra="allow")
    kind: str
    needs: list[str] = Field(default_factory=list, description="stages whose outputs this one reads")
    data: DataSpec | None = None
    _config: BaseModel | None = PrivateAttr(default=None)

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
        return self

    @property
    def config(self) -> BaseModel | None:
        return self._config


class RunSpec(SpecModel):
    """A whole run: data, seed and an ordered mapping of stage name -> stage."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = 0
    run_dir: str | None = Field(None, description="default: runs/<name>")
    data: DataSpec | None = None
    stages: dict[str, StageSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_order(self) -> RunSpec:
        seen: list[str] = []
        for stage_name, stage in self.stages.items():
            data = stage.data or self.data
            uses_data = getattr(stage.config, "requires_data", False)
            if uses_data and data is not None and data.stage is not None and data.stage not in stage.needs:
                stage.needs.append(data.stage)
            for need in stage.needs:
                if need not in seen:
                    raise PydanticCustomError(
                        NESTED_ERROR,
                        "{summary}",
                        {
                            "summary": "bad needs",
                            "problems": [
                                (f"stages.{stage_name}.needs", f"{need!r} is not an earlier stage (earlier: {seen or 'none'})")
                            ],
                        },
                    )
            if stage.data is None and self.data is None and getattr(stage.config, "requires_data", False):
                raise PydanticCustomError(
                    NESTED_ERROR,
                    "{summary}",
                    {"summary": "no data", "problems": [(f"stages.{stage_name}.data", "no data given here or at the top level")]},
                )
            seen.append(stage_name)
        return self

    def data_for(self, stage_name: str) -> DataSpec | None:
        return self.stages[stage_name].data or self.data

    def dump(self) -> dict[str, Any]:
        """The spec as plain data, settings included, in a form that validates back to an equal spec."""
        return json.loads(self.model_dump_json(exclude_none=True))


def parse_spec_text(text: str, suffix: str, source: str = "<spec>") -> dict[str, Any]:
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as error:
        raise SpecError(source, [("", f"cannot parse {suffix.lstrip('.') or 'yaml'}: {error}")]) from None
    if not isinstance(data, Mapping):
        raise SpecError(source, [("", f"expected a mapping at the top level, got {type(data).__name__}")])
    return dict(data)


def validate_spec(data: Mapping[str, Any], source: str = "<spec>", registry=None) -> RunSpec:
    """Validate plain data as a :class:`RunSpec`; raise :class:`SpecError` with field paths."""
    try:
        return RunSpec.model_validate(dict(data), context={"registry": registry} if registry else None)
    except ValidationError as error:
        raise SpecError(source, problems_of(error)) from None


def find_spec(name_or_path: str | Path) -> Path:
    """A spec file by path, or by the name of a spec that the registry or a plugin ships."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".toml") or path.exists():
        if not path.is_file():
            raise SpecCLIPError(f"{path}: no such spec file")
        return path
    known = registered_specs()
    if str(name_or_path) in known:
        return known[str(name_or_path)]
    raise SpecCLIPError(f"no spec file or registered spec called {str(name_or_path)!r}; registered: {', '.join(sorted(known))}")


def registered_specs() -> dict[str, Path]:
    """Name -> path of every run spec shipped by the registry and the plugins."""
    from specclip_core.plugins import get_plugin_manager

    out: dict[str, Path] = {}
    for paths in get_plugin_manager().hook.specclip_register_specs():
        for item in paths or []:
            out[Path(item).stem] = Path(item)
    return out


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


def read_spec_data(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A spec file's data, with ``extends: <spec name or path>`` resolved: the named spec's data with this
    file's laid over it (:func:`merge_spec_data`). Relative paths are relative to the extending file."""
    data = parse_spec_text(path.read_text(), path.suffix.lower(), str(path))
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


def load_spec(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """Load (resolving ``extends``), merge ``overrides`` (dotted keys) and validate a spec from a file or a registered name."""
    path = find_spec(name_or_path)
    data = read_spec_data(path)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return validate_spec(data, str(path))


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
