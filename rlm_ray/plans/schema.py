"""The JSON schema of the plan turn, made for the run's records: the server enforces it.

A model server that constrains decoding to a JSON schema (llama.cpp's server, vLLM, OpenAI)
cannot emit a malformed plan, a field the records lack or a step the language lacks: record
lists and field names are enums of what `records.record_lists` found. The reply is one of

    {"approach": "plan", "from": ..., "where": ..., ..., "needs": [...]}   (every key, in order)
    {"approach": "code"}                                                   free code instead

`response_format(lists)` is the request's `response_format`; litellm and the lean HTTP path
both send it as is. Values (a date, a label) stay free strings: `plan.check` reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlm_ray.plans.plan import EXTRACTED, LABEL, RESULTS
from rlm_ray.plans.records import Record, fields

_TEXT = {"type": "string"}
_NULL = {"type": "null"}


def plan_schema(lists: Mapping[str, list[Record]]) -> dict[str, Any]:
    """The schema of a reply to the plan turn, for these record lists."""
    base = sorted({f for records in lists.values() for f in fields(records)})
    every = base + [name for name in (LABEL, EXTRACTED) if name not in base]
    field = {"type": "string", "enum": base}
    any_field = {"type": "string", "enum": every}
    tests = {
        "type": "object",
        "properties": {name: _TEXT for name in every},
        "additionalProperties": False,
    }
    properties = {
        "approach": {"type": "string", "enum": ["plan"]},
        "from": {"type": "string", "enum": list(lists)},
        "where": tests,
        "keep_if": _nullable(_object(field=field, condition=_TEXT)),
        "label": _nullable(
            _object(field=field, labels={"type": "object", "additionalProperties": _TEXT})
        ),
        "extract": _nullable(_object(field=field, question=_TEXT)),
        "join": _nullable(
            _object(**{"from": {"type": "string", "enum": list(lists)}}, key=field, **{"in": field})
        ),
        "group_by": _nullable(any_field),
        "result": {"type": "string", "enum": list(RESULTS)},
        "of": _nullable(any_field),
        "needs": {"type": "array", "items": tests},
    }
    plan = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    code = _object(approach={"type": "string", "enum": ["code"]})
    return {"anyOf": [plan, code]}


def response_format(lists: Mapping[str, list[Record]]) -> dict[str, Any]:
    """The OpenAI-style `response_format` of the plan turn."""
    schema = plan_schema(lists)
    return {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}}


def _object(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, _NULL]}
