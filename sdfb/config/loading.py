"""Reading recipes: YAML files plus `a.b=value` overrides, validated
into a RunConfig, with errors naming keys.

Precedence is defaults < YAML file < command-line overrides. Validation happens before any work starts.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sdfb.config.sections import ConfigError, RunConfig


def config_hash(section: BaseModel | dict | list | str | int | float | None) -> str:
    """A short stable hash of a config section (or any JSON-able value)."""
    payload = section.model_dump(mode="json") if isinstance(section, BaseModel) else section
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def _merge_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Like `_set_dotted`, but a mapping is merged into the section already there (an experiment's
    `rollout: {sampling: {n: 4}}` changes n and keeps the recipe's other rollout settings)."""
    if not isinstance(value, dict):
        _set_dotted(tree, dotted, value)
        return
    for key, inner in value.items():
        _merge_dotted(tree, f"{dotted}.{key}", inner)


def merged_tree(tree: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """A copy of `tree` with `updates` (dotted key -> value) merged in;
    mappings merge into existing sections."""
    merged = copy.deepcopy(tree)
    for key, value in updates.items():
        _merge_dotted(merged, key, copy.deepcopy(value))
    return merged


def parse_override(item: str) -> tuple[str, Any]:
    """Parse `a.b=value`; the value is read as YAML so numbers, booleans and lists keep their types."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example --set rollout.batch_size=8")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return []
        model = field.annotation
    return list(model.model_fields)


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not isinstance(p, int))
        key = ".".join(str(p) for p in loc) or "<root>"
        if item["type"] == "extra_forbidden":
            known = _known_keys(RunConfig, loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"
            lines.append(f"  {key}: unknown key{hint}")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "invalid configuration:\n" + "\n".join(lines)


def build_config(
    tree: dict[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    updates: dict[str, Any] | None = None,
) -> RunConfig:
    """Validate a config tree plus `updates` (dotted key -> value) and then `a.b=value` overrides; raises
    ConfigError naming every bad key."""
    merged = merged_tree(tree or {}, updates or {})
    for item in overrides:
        key, value = parse_override(item)
        _set_dotted(merged, key, value)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


def load_tree(path: str | Path) -> dict[str, Any]:
    """A YAML file's mapping, unvalidated; ConfigError when it is missing, not YAML or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; pass --config configs/demo.yaml or another recipe"
        )
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}")
    return loaded or {}


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML recipe (or none, for the defaults) and apply overrides."""
    return build_config(load_tree(path) if path is not None else {}, overrides)
