"""JSON Schema of the envelope and of every event type and version, committed to the repo.

``python -m contract.events.schemas`` writes them to ``contract/events/schemas/``. Tests fail when
the committed files differ from the code, and when a change would break an existing consumer
(see :func:`breaking_changes`).

They describe what a consumer may rely on, so they are open: a reader must accept and ignore a
field it does not know (a newer producer's new optional field keeps the schema version). The
models themselves stay closed, so a producer never writes a field the contract does not name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import DEFAULT_REF_TEMPLATE

from contract.events.registry import EVENT_TYPES
from shared.envelope import Envelope

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def reader_schema(model: type[BaseModel], ref_template: str = DEFAULT_REF_TEMPLATE) -> Any:
    """A model's JSON Schema as a tolerant reader sees it: unknown fields allowed."""
    return open_objects(model.model_json_schema(ref_template=ref_template))


def open_objects(schema: Any) -> Any:
    """``schema`` without ``additionalProperties: false`` at any depth."""
    if isinstance(schema, dict):
        return {
            key: open_objects(value)
            for key, value in schema.items()
            if not (key == "additionalProperties" and value is False)
        }
    if isinstance(schema, list):
        return [open_objects(value) for value in schema]
    return schema


def generated_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for the envelope and every (event type, version)."""
    schemas = {"Envelope.json": reader_schema(Envelope)}
    for kind in EVENT_TYPES.values():
        for version, model in kind.versions.items():
            schema = reader_schema(model)
            schema["title"] = f"{kind.name} v{version}"
            schema["x-owner"] = kind.owner
            schemas[f"{kind.name}.v{version}.json"] = schema
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    return dict(schema.get("properties", {}))


def _shape(schema: dict[str, Any], definitions: dict[str, Any]) -> Any:
    """A field's type, with references resolved, for comparing two versions of a field."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _shape(definitions.get(name, {}), definitions)
    ignored = {"description", "title", "default", "examples"}
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ignored:
            continue
        if isinstance(value, dict):
            result[key] = _shape(value, definitions)
        elif isinstance(value, list):
            result[key] = [_shape(v, definitions) if isinstance(v, dict) else v for v in value]
        else:
            result[key] = value
    return result


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in ``new`` would break a consumer of ``old`` under the same schema version.

    A field removed or retyped, or an optional field made required, needs a new version;
    a new optional field does not.
    """
    problems = []
    old_props, new_props = _properties(old), _properties(new)
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, field in old_props.items():
        if name not in new_props:
            problems.append(f"field {name!r} was removed")
        elif _shape(field, old_defs) != _shape(new_props[name], new_defs):
            problems.append(f"field {name!r} changed type")
    for name in new_required - old_required:
        problems.append(f"field {name!r} is now required")
    return problems


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    wanted = generated_schemas()
    for stale in set(committed_schemas()) - set(wanted):
        (SCHEMA_DIR / stale).unlink()
    for name, schema in wanted.items():
        (SCHEMA_DIR / name).write_text(render(schema))
    print(f"wrote {len(wanted)} schemas to {SCHEMA_DIR}")


if __name__ == "__main__":
    main()
