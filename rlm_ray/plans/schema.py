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
    named = _named(lists, query)
    runs = grounding.query_words(query)
    options = []
    for shape in shapes.SHAPES:
        names_lists = shapes.LIST in dict(shape.slots).values()
        if (only is None and (len(lists) > 1 or not names_lists)) or shape.name == only:
            if names_lists:
                options += _list_options(shape, lists, named, runs)
            else:
                options.append(_option(shape, _kinds(lists, named, runs)))
    return {"anyOf": [*options, _object(shape=_const(shapes.CODE))]}


def _kinds(
    lists: Mapping[str, list[Record]], named: dict[str, list[str]], runs: list[str]
) -> dict[str, Any]:
    """The schema of each slot kind, for these record lists."""
    base = _union(lists, fields)
    words = _enum(runs) if runs else _TEXT
    return {
        shapes.FIELD: _enum(base),
        shapes.KEY_FIELD: _enum(base),
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


def _option(shape: shapes.Shape, kinds: dict[str, Any]) -> dict[str, Any]:
    return _object(shape=_const(shape.name), **{name: kinds[kind] for name, kind in shape.slots})


def _list_options(
    shape: shapes.Shape,
    lists: Mapping[str, list[Record]],
    named: dict[str, list[str]],
    runs: list[str],
) -> list[dict[str, Any]]:
    """A shape that names record lists (`join`), once per ordered pair of lists: each field
    slot names a field of the list named last before it. The first list is one with free text
    when there is one (its records meet the condition and name the other's keys), so a join
    from a list of keys cannot be written; the key is a field of the second whose values the
    first's records name (`grounding.key_fields`)."""
    texts = [name for name, records in lists.items() if grounding.text_fields(records)]
    options = []
    for first in texts or list(lists):
        for second in (name for name in lists if name != first):
            properties: dict[str, Any] = {"shape": _const(shape.name)}
            kinds = _kinds({first: lists[first]}, named, runs)
            order = iter((first, second))
            for slot, kind in shape.slots:
                if kind == shapes.LIST:
                    chosen = next(order)
                    kinds = _kinds({chosen: lists[chosen]}, named, runs)
                    properties[slot] = _const(chosen)
                elif kind == shapes.KEY_FIELD:
                    properties[slot] = _enum(grounding.key_fields(lists[first], lists[second]))
                else:
                    properties[slot] = kinds[kind]
            options.append(_object(**properties))
    return options


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
