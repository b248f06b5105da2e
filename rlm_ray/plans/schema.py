"""The JSON schema of the plan turn, made for the run's records: the server enforces it.

A model server that constrains decoding to a JSON schema (llama.cpp's server, vLLM, OpenAI)
cannot emit a malformed plan, a shape the runtime lacks, or a field or record list the records
do not have: shapes (plans/shapes.py), record lists and field names are enums of what exists.
The reply is one of

    {"shape": "groups_with_both", "where": {...}, "group_by": ..., ...}   a shape, every slot
    {"shape": "code"}                                                    free code instead

`response_format(lists)` is the request's `response_format`; litellm and the lean HTTP path
both send it as is. Values (a date, a condition in words) stay free strings: `plan.check`
reads them against the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlm_ray.plans import shapes
from rlm_ray.plans.records import Record, fields

_TEXT = {"type": "string"}


def plan_schema(lists: Mapping[str, list[Record]], only: str | None = None) -> dict[str, Any]:
    """The schema of a reply to the plan turn, for these record lists (`only`: that shape's
    slots, or code)."""
    base = sorted({f for records in lists.values() for f in fields(records)})
    kinds = {
        shapes.FIELD: {"type": "string", "enum": base},
        shapes.LIST: {"type": "string", "enum": list(lists)},
        shapes.TEXT: _TEXT,
        shapes.TEXT_OR_NULL: {"anyOf": [_TEXT, {"type": "null"}]},
        shapes.TESTS: {
            "type": "object",
            "properties": {name: _TEXT for name in base},
            "additionalProperties": False,
        },
        shapes.LABELS: {"type": "object", "additionalProperties": _TEXT},
    }
    options = [
        _object(shape=_const(shape.name), **{name: kinds[kind] for name, kind in shape.slots})
        for shape in shapes.SHAPES
        if (only is None and (len(lists) > 1 or shapes.LIST not in dict(shape.slots).values()))
        or shape.name == only
    ]
    return {"anyOf": [*options, _object(shape=_const(shapes.CODE))]}


def response_format(lists: Mapping[str, list[Record]], only: str | None = None) -> dict[str, Any]:
    """The OpenAI-style `response_format` of the plan turn."""
    schema = plan_schema(lists, only)
    return {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}}


def _const(value: str) -> dict[str, Any]:
    return {"type": "string", "enum": [value]}


def _object(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
