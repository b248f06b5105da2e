"""The JSON schema of the plan turn, made for the run's records: the server enforces it.

A model server that constrains decoding to a JSON schema (llama.cpp's server, vLLM, OpenAI)
cannot emit a malformed plan, a shape the runtime lacks, or a field or record list the records
do not have: shapes (plans/shapes.py), record lists and field names are enums of what exists.
The reply is one of

    {"shape": "groups_with_both", "where": {...}, "group_by": ..., ...}   a shape, every slot
    {"shape": "code"}                                                    free code instead

`response_format(lists)` is the request's `response_format`; litellm and the lean HTTP path
both send it as is. The slots are grounded (plans/grounding.py): a condition's field is one of
the fields of free text, a group's one of the fields of values, and an exact test (`where`, a
date) can hold only a value the query names, so `where` is `{}` when it names none; a condition
(and the two of `groups_with_both` / `changed`, the kind of name of `most_common_name`) is a run
of the query's own words. Labels and their meanings stay free strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlm_ray.plans import grounding, shapes
from rlm_ray.plans.records import Record, fields

_TEXT = {"type": "string"}


def plan_schema(
    lists: Mapping[str, list[Record]], only: str | None = None, query: str = ""
) -> dict[str, Any]:
    """The schema of a reply to the plan turn, for these record lists and the user's `query`
    (`only`: that shape's slots, or code)."""
    base = _union(lists, fields)
    named = _named(lists, query)
    runs = grounding.query_words(query)
    words = _enum(runs) if runs else _TEXT
    kinds = {
        shapes.FIELD: _enum(base),
        shapes.TEXT_FIELD: _enum(_union(lists, grounding.text_fields) or base),
        shapes.VALUE_FIELD: _enum(_union(lists, grounding.value_fields) or base),
        shapes.VALUE: _enum(sorted({v for vs in named.values() for v in vs})) if named else _TEXT,
        shapes.LIST: _enum(list(lists)),
        shapes.TEXT: _TEXT,
        shapes.TEXT_OR_NULL: {"anyOf": [_TEXT, {"type": "null"}]},
        shapes.WORDS: words,
        shapes.WORDS_OR_NULL: {"anyOf": [words, {"type": "null"}]},
        shapes.TESTS: {
            "type": "object",
            "properties": {name: _enum(vs) for name, vs in named.items()},
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


def response_format(
    lists: Mapping[str, list[Record]], only: str | None = None, query: str = ""
) -> dict[str, Any]:
    """The OpenAI-style `response_format` of the plan turn."""
    schema = plan_schema(lists, only, query)
    return {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema}}


def _union(lists: Mapping[str, list[Record]], pick: Any) -> list[str]:
    return sorted({f for records in lists.values() for f in pick(records)})


def _named(lists: Mapping[str, list[Record]], query: str) -> dict[str, list[str]]:
    """{field: the values the query names}, over every list (a field's values merged)."""
    named: dict[str, set[str]] = {}
    for records in lists.values():
        for field, found in grounding.named_values(records, query).items():
            named.setdefault(field, set()).update(found)
    return {field: sorted(found) for field, found in sorted(named.items())}


def _enum(options: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": options}


def _const(value: str) -> dict[str, Any]:
    return {"type": "string", "enum": [value]}


def _object(**properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
