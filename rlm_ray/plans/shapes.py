"""Plan shapes: the question forms a small model picks from, each with a few keys to fill.

The model's plan turn is one JSON object; its first key, `shape`, names the form of the
question ("groups_with_both": which users have a record of one kind and another of a second
kind), and the keys after it are that form's slots, in the question's order: the field that
holds the groups, the field to read, the two conditions in words. A 1.5B model fills such
slots far more reliably than it composes steps (the first plan language, every step a key,
had it put conditions of meaning into exact tests: docs/plans.md). Each shape is rewritten
into the general plan (`plan.check`, `compile.compile_plan`), which stays the one language the
runtime checks and compiles.

    SHAPES                the shapes, in the order the prompt and the schema list them
    to_plan(reply)        a reply -> the general plan's JSON, keys renamed in errors
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# slot kinds: a field name, a record list, free text, {field: value} tests, {label: meaning};
# a field of free text (what a condition reads), a field of values (what groups), a value the
# query names (plans/grounding.py: the schema offers only those)
FIELD, FIELD_OR_NULL, LIST, TEXT, TEXT_OR_NULL, TESTS, LABELS = (
    "field",
    "field?",
    "list",
    "text",
    "text?",
    "tests",
    "labels",
)
TEXT_FIELD, VALUE_FIELD, VALUE = "text field", "value field", "value"
KEY_FIELD = "key field"  # a field of the joined list whose values the first list's records name
# the query's own words: a condition, a kind of record, a kind of name is a run of its words
WORDS, WORDS_OR_NULL = "words", "words?"
OTHER = "other"  # the label of a record that fits none of a shape's conditions


@dataclass(frozen=True)
class Shape:
    """One question form: its name, what it answers (for the prompt), its slots in order
    (name -> kind) and how its reply becomes a general plan."""

    name: str
    answers: str
    slots: tuple[tuple[str, str], ...]
    plan: Callable[[Mapping[str, Any]], dict[str, Any]]
    renamed: tuple[tuple[str, str], ...] = ()  # (general plan key, slot) for error messages


def _labels(*conditions: str) -> dict[str, str]:
    """Labels named by their conditions, and `OTHER` for the rest."""
    labels = {condition: condition for condition in conditions}
    labels[OTHER] = "neither of these" if len(conditions) > 1 else "anything else"
    return labels


def _count(r: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"field": r["field"], "condition": r["condition"]} if r.get("condition") else None
    return {"where": r.get("where"), "keep_if": keep, "result": "count"}


def _per_group(r: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"field": r["field"], "condition": r["condition"]} if r.get("condition") else None
    return {
        "where": r.get("where"),
        "keep_if": keep,
        "group_by": r["group_by"],
        "result": "count_per_group",
    }


def _label_plan(result: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def plan(r: Mapping[str, Any]) -> dict[str, Any]:
        where = dict(r.get("where") or {})
        if result == "count":
            where["label"] = r.get("label")
        label = {"field": r["field"], "labels": r["labels"]}
        of = "label" if result != "count" else None
        return {"where": where, "label": label, "result": result, "of": of}

    return plan


def _most_field(r: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"field": r["field"], "condition": r["condition"]} if r.get("condition") else None
    return {
        "where": r.get("where"),
        "keep_if": keep,
        "result": "most_common",
        "of": r["count_field"],
    }


def _most_name(r: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"field": r["field"], "condition": r["condition"]} if r.get("condition") else None
    question = f"Which {r['name']} does it name?"
    return {
        "where": r.get("where"),
        "keep_if": keep,
        "extract": {"field": r["field"], "question": question},
        "result": "most_common",
        "of": "extracted",
    }


def _both(r: Mapping[str, Any]) -> dict[str, Any]:
    first, second = str(r["first"]), str(r["second"])
    return {
        "where": r.get("where"),
        "label": {"field": r["field"], "labels": _labels(first, second)},
        "group_by": r["group_by"],
        "result": "groups_with_all",
        "needs": [{"label": first}, {"label": second}],
    }


def _changed(r: Mapping[str, Any]) -> dict[str, Any]:
    first, second, date = str(r["first"]), str(r["second"]), r["date_field"]
    return {
        "label": {"field": r["field"], "labels": _labels(first, second)},
        "group_by": r["group_by"],
        "result": "groups_with_all",
        "needs": [
            {date: r["first_date"], "label": first},
            {date: r["second_date"], "label": second},
        ],
    }


def _join(r: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"field": r["field"], "condition": r["condition"]} if r.get("condition") else None
    return {
        "from": r["from"],
        "keep_if": keep,
        "join": {"from": r["other"], "key": r["key"], "in": r["field"]},
        "result": "values",
        "of": r["answer"],
    }


def _list(r: Mapping[str, Any]) -> dict[str, Any]:
    keep = {"field": r["field"], "condition": r["condition"]} if r.get("condition") else None
    return {"where": r.get("where"), "keep_if": keep, "result": "values", "of": r["answer"]}


_KEEP = (("keep_if.field", "field"), ("keep_if.condition", "condition"))
SHAPES: tuple[Shape, ...] = (
    Shape(
        "count",
        "how many records (with the `where` values) meet a condition of meaning",
        (("where", TESTS), ("field", TEXT_FIELD), ("condition", WORDS_OR_NULL)),
        _count,
        _KEEP,
    ),
    Shape(
        "count_per_group",
        "for each value of `group_by`, how many of its records meet the condition",
        (
            ("where", TESTS),
            ("group_by", VALUE_FIELD),
            ("field", TEXT_FIELD),
            ("condition", WORDS_OR_NULL),
        ),
        _per_group,
        _KEEP,
    ),
    Shape(
        "count_label",
        "how many records have `label`, when the query defines the labels",
        (("where", TESTS), ("field", TEXT_FIELD), ("labels", LABELS), ("label", TEXT)),
        _label_plan("count"),
        (("label.field", "field"), ("label.labels", "labels")),
    ),
    Shape(
        "most_common_label",
        "the label most records have, when the query defines the labels",
        (("where", TESTS), ("field", TEXT_FIELD), ("labels", LABELS)),
        _label_plan("most_common"),
        (("label.field", "field"), ("label.labels", "labels")),
    ),
    Shape(
        "least_common_label",
        "the label fewest records have, when the query defines the labels",
        (("where", TESTS), ("field", TEXT_FIELD), ("labels", LABELS)),
        _label_plan("least_common"),
        (("label.field", "field"), ("label.labels", "labels")),
    ),
    Shape(
        "most_common_value",
        "among the records that meet the condition, the most common value of `count_field`",
        (
            ("where", TESTS),
            ("field", TEXT_FIELD),
            ("condition", WORDS_OR_NULL),
            ("count_field", VALUE_FIELD),
        ),
        _most_field,
        (*_KEEP, ("of", "count_field")),
    ),
    Shape(
        "most_common_name",
        "among the records that meet the condition, the `name` (a product, a place...) their "
        "text mentions most often",
        (("where", TESTS), ("field", TEXT_FIELD), ("condition", WORDS_OR_NULL), ("name", WORDS)),
        _most_name,
        _KEEP,
    ),
    Shape(
        "groups_with_both",
        "the values of `group_by` that have a record meeting `first` and a record meeting `second`",
        (
            ("where", TESTS),
            ("group_by", VALUE_FIELD),
            ("field", TEXT_FIELD),
            ("first", WORDS),
            ("second", WORDS),
        ),
        _both,
        (("label.field", "field"), ("needs", "first/second")),
    ),
    Shape(
        "changed",
        "the values of `group_by` whose record dated `first_date` meets `first` and whose "
        "record dated `second_date` meets `second`",
        (
            ("group_by", VALUE_FIELD),
            ("field", TEXT_FIELD),
            ("date_field", VALUE_FIELD),
            ("first_date", VALUE),
            ("first", WORDS),
            ("second_date", VALUE),
            ("second", WORDS),
        ),
        _changed,
        (("label.field", "field"), ("needs", "first_date/second_date")),
    ),
    Shape(
        "join",
        "the values of `answer` (a field of the `other` list) of the `other` records whose "
        "`key` the records of `from` that meet the condition name",
        (
            ("from", LIST),
            ("field", TEXT_FIELD),
            ("condition", WORDS_OR_NULL),
            ("other", LIST),
            ("key", KEY_FIELD),
            ("answer", FIELD),
        ),
        _join,
        (
            *_KEEP,
            ("join.from", "other"),
            ("join.key", "key"),
            ("join.in", "field"),
            ("of", "answer"),
        ),
    ),
    Shape(
        "field_values",
        "the values of `answer` of the records (with the `where` values) that meet the condition",
        (("where", TESTS), ("field", TEXT_FIELD), ("condition", WORDS_OR_NULL), ("answer", FIELD)),
        _list,
        (*_KEEP, ("of", "answer")),
    ),
)
BY_NAME = {shape.name: shape for shape in SHAPES}
CODE = "code"  # the shape of a reply that chooses free code


def to_plan(reply: Mapping[str, Any], only_list: str | None) -> tuple[dict[str, Any], Shape]:
    """The general plan (JSON) of a shape reply, and its shape; `KeyError` naming the shape's
    slots if a slot is missing. `only_list`: the record list, when there is one."""
    shape = BY_NAME[reply["shape"]]
    missing = [name for name, _ in shape.slots if name not in reply]
    if missing:
        raise KeyError(
            f"`{shape.name}` needs {', '.join(n for n, _ in shape.slots)}; missing {missing[0]}"
        )
    plan = {"from": reply.get("from") or only_list, **shape.plan(reply)}
    return {k: v for k, v in plan.items() if v is not None}, shape


def renamed(message: str, shape: Shape) -> str:
    """A plan error in the words of the shape's slots (`keep_if.field` -> `field`)."""
    for general, slot in sorted(shape.renamed, key=lambda pair: -len(pair[0])):
        message = message.replace(f"`{general}`", f"`{slot}`")
    return message
