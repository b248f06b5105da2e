"""The form turn: before it fills a plan, the model names the query's form (its shape) in a short
call of its own, under a schema of two keys: how many conditions a group's records meet (one,
or two: a record of each of two kinds), then a shape of that many.

Why a call of its own: with the shapes listed in a 3,500-token prompt of records and worked
plans, the 1.5B model picked the right shape for 2 of 6 dev queries ("Which users sent both a
complaint about billing and a complaint about delivery?" became `list`); asked only for the
form, with each shape written as the question it answers and one made-up query per shape, it
picked 8 of 13 dev phrasings right (docs/plans.md). The plan turn then fills the slots of that
shape only (`schema.plan_schema(lists, only=...)`).

    form_messages(query, lists)      the messages of the form call
    form_format(lists)               its response_format: {"conditions": ..., "shape": ...}
    read_form(reply)                 the shape named, or None
    form_hint(shape)                 the line the plan turn adds: the form chosen, its keys
    with_hint(turn, hint)            the plan turn's message with it, before its last line
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rlm_ray.plans import shapes
from rlm_ray.plans.records import Record

# Each shape as the question it answers; <...> is what the query names.
QUESTIONS = {
    "count": "How many records ...?",
    "count_per_group": "For each <group>, how many records ...?",
    "count_label": "How many records have <label>, where the query itself lists the labels "
    "and explains each?",
    "most_common_label": "Which of the labels the query lists and explains do most records have?",
    "least_common_label": "Which of the labels the query lists and explains do fewest records "
    "have?",
    "most_common_value": "Which <value of a field: a site, a user, ...> has the most records "
    "that ...?",
    "most_common_name": "Which <product, place, ...> is named most often in the text of the "
    "records that ...?",
    "groups_with_both": "Which <people, groups> have at least one record that ... and at least "
    "one other record that ...?",
    "changed": "Which <groups> were ... on one date and ... on another date?",
    "join": "(two record lists) The <field> of one list's records that the other list's records "
    "that ... name.",
    "field_values": "What are the <field> of the records that ...?",
    shapes.CODE: "A fact to find in the text, or anything else.",
}
# The form reply's first key: how many conditions the query puts on one group's records. The
# shapes of two (a group with a record of one kind and another of a second kind) are offered
# only after "two", the others only after "one": on the dev phrasings the model named `list`
# (now `field_values`) for "List the users who complained about X and also about Y".
CONDITIONS = "conditions"
TWO = ("groups_with_both", "changed")
SYSTEM = (
    "You name the form of a query about records (messages, reports, rows). Reply with JSON "
    '{"conditions": "one" or "two", "shape": ...}. `conditions` is "two" when each group the '
    "query asks about (a user, a service...) needs one record that meets a first condition and "
    'another record that meets a second one; else "one". The shapes:\n'
    + "\n".join(f"- {name}: {question}" for name, question in QUESTIONS.items())
)
# Made-up queries (the worked examples' data: a ferry log, bee hives, greenhouses, a canteen,
# evening classes), one or two per shape.
EXAMPLES = (
    (
        "one list",
        "How many crossings from the north pier on 2031-05-02 were delayed by fog?",
        "count",
    ),
    ("one list", "For each pier, how many crossings were cancelled?", "count_per_group"),
    (
        "one list",
        "How many entries are a swarm? Each entry is a swarm (the bees swarmed), a harvest "
        "(honey was taken) or other (anything else).",
        "count_label",
    ),
    ("one list", "Which keepers logged both a swarm and a honey harvest?", "groups_with_both"),
    (
        "one list",
        "Name the keepers with at least one entry about mites and at least one about a lost queen.",
        "groups_with_both",
    ),
    ("one list", "Which hives were calm on 2031-06-01 but aggressive on 2031-06-15?", "changed"),
    ("one list", "Which greenhouse had the most frost warnings?", "most_common_value"),
    ("one list", "At which pier were crossings cancelled most often?", "most_common_value"),
    (
        "one list",
        "Which dish is named most often in the complaints about cold food?",
        "most_common_name",
    ),
    ("one list", "What did table T4 say about the curry?", "field_values"),
    (
        "two lists: `classes`, `notes`",
        "Which tutors teach a class that a parent said was cancelled?",
        "join",
    ),
    ("one list", "What is the access code of the vault?", shapes.CODE),
)


def _turn(lists_line: str, query: str) -> str:
    return f"Records: {lists_line}.\nQuery: {query}"


def _lists_line(lists: Mapping[str, list[Record]]) -> str:
    if len(lists) == 1:
        return "one list"
    return f"{len(lists)} lists: " + ", ".join(f"`{name}`" for name in lists)


def form_messages(query: str, lists: Mapping[str, list[Record]]) -> list[dict[str, str]]:
    """The form call's messages: the shapes as questions, the examples, the user's query."""
    messages = [{"role": "system", "content": SYSTEM}]
    for lists_line, example, shape in EXAMPLES:
        messages.append({"role": "user", "content": _turn(lists_line, example)})
        reply = {CONDITIONS: "two" if shape in TWO else "one", "shape": shape}
        messages.append({"role": "assistant", "content": json.dumps(reply)})
    messages.append({"role": "user", "content": _turn(_lists_line(lists), query)})
    return messages


def names(lists: Mapping[str, list[Record]]) -> list[str]:
    """The shapes these record lists allow, and code: with two lists or more the shapes that
    name a list (`join`; the others read the only list there is)."""
    many = len(lists) > 1
    allowed = [s.name for s in shapes.SHAPES if (shapes.LIST in dict(s.slots).values()) == many]
    return [*allowed, shapes.CODE]


def form_format(lists: Mapping[str, list[Record]]) -> dict[str, Any]:
    """The form call's `response_format`: the number of conditions, then a shape of that many."""
    allowed = names(lists)
    options = [
        (count, [n for n in allowed if (n in TWO) == (count == "two")]) for count in ("one", "two")
    ]
    schema = {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    CONDITIONS: {"type": "string", "enum": [count]},
                    "shape": {"type": "string", "enum": shapes_},
                },
                "required": [CONDITIONS, "shape"],
                "additionalProperties": False,
            }
            for count, shapes_ in options
            if shapes_
        ]
    }
    return {"type": "json_schema", "json_schema": {"name": "form", "schema": schema}}


def read_form(reply: str) -> str | None:
    """The shape a form reply names (None if it names none)."""
    start, end = reply.find("{"), reply.rfind("}")
    try:
        shape = json.loads(reply[start : end + 1]).get("shape") if 0 <= start < end else None
    except (ValueError, AttributeError):
        return None
    return shape if shape in shapes.BY_NAME or shape == shapes.CODE else None


def form_hint(shape: str) -> str:
    """What the plan turn is told of the form chosen."""
    keys = ", ".join(name for name, _ in shapes.BY_NAME[shape].slots)
    return f'The query\'s form: "{shape}" ({QUESTIONS[shape]}). Fill its keys: {keys}.'


def with_hint(turn: str, hint: str) -> str:
    """`turn` with `hint` before its last line (the request for the reply)."""
    head, _, last = turn.rpartition("\n")
    return f"{head}\n{hint}\n{last}" if head and hint else f"{turn}\n{hint}".rstrip("\n")
