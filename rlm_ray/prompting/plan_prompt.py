"""What a small root model reads when it may answer with a plan: the system text, the first
turn, the worked examples and the turns between plans (the `small` prompt, prompts.py).

The first reply is JSON under the plan schema (plans/schema.py): a plan, or a choice of code.
The examples are marked as examples and use made-up records whose fields look like no user's
(a ferry log, bee hives, greenhouses, a canteen, evening classes), so that neither their words
nor their values can be taken for the user's data; loop.py refuses a final answer copied from
them. Every example's JSON is what the schema allows, keys in the schema's order.
"""

from __future__ import annotations

import json
from typing import Any

from rlm_ray.plans import forms, shapes

_SHAPES = "\n".join(
    f'- "{shape.name}": {shape.answers}. Keys: {", ".join(name for name, _ in shape.slots)}.'
    for shape in shapes.SHAPES
)
# (braces doubled: the system text is a template, `prompts.system_prompt` fills it)
SYSTEM = (
    """You answer a query about a large input stored in the Python variable `context`. It is too long to read yourself. The runtime has read it into records with named fields; the first message lists them under "Records found".

Your first reply is one JSON object; the runtime enforces its form. Its "shape" names the form of the query, and the keys after it fill that form:
"""
    + _SHAPES.replace("{", "{{").replace("}", "}}")
    + """
- "code": anything else, such as a fact to find by searching the text; you then write Python.
"where" is {{"field": "value", ...}} for records whose field holds exactly that value (a user, a date, a site); {{}} for all records. "field" is the field whose text a condition is about. Write conditions in the query's own words. Name only fields listed under "Records found", and write values as the records write them. The runtime runs the shape over every record it needs (a helper model reads them), and its result is the answer.

When you write code instead: each reply is exactly one ```repl code block; then stop. The user runs it and shows you what it printed. In the code you can use `context`; `as_records(context)`: the records, a list of dicts of their fields; the modules re, json, math, collections (already imported); `print(...)` (at most {max_output_chars} characters are shown); `llm_filter(condition, texts)`, `llm_classify(texts, {{label: meaning}})`, `llm_map(instruction, texts)`: a helper model reads each text; `llm_query(prompt)`: asks the helper model about a short text (under {sub_window_chars} characters). To find a fact, search the text with re or str.find and print short parts. When the printed output answers the query, reply with one line: FINAL(answer). Never write output yourself and never guess."""
)

FIRST_TURN = (
    "{example}{context_description}\n{records}\n{context_preview}\nQuery: {query}\n"
    "Your reply (JSON):"
)
USER_TASK = "THE USER'S TASK (their data):\n"
EXAMPLE = "EXAMPLE (made-up data, not the user's):\n"
RETRY = '{feedback}\n\nReply with a corrected plan as JSON, or {{"shape": "code"}}. Query: {query}'
CODE_TURN = "Write one ```repl block for the query (it runs, then you see what it printed): {query}"
NEXT_TURN = (
    "Your next ```repl block, or FINAL(answer) if the output above answers the query: {query}"
)

# The made-up data of the examples, as the first turn would show it.
_FERRY = (
    "Your context is a str with 20,310 total characters.",
    "Records found: 240 records, fields: day (30 values, e.g. '2031-05-02', '2031-05-03'), "
    "pier (3 values, e.g. 'north', 'south'), remark (all different, e.g. 'left 20 min late, "
    "strong wind', 'on time, calm sea').",
    "It begins:\nday=2031-05-01; pier=north; remark=on time, calm sea",
)
_HIVES = (
    "Your context is a list of 96 chunks with 7,420 total characters; chunk lengths: [71, 80, 64, ...].",
    "Records found: 96 records, fields: date (20 values, e.g. '2031-06-01', '2031-06-15'), "
    "keeper (9 values, e.g. 'Ines', 'Bo'), hive (14 values, e.g. 'H3', 'H7'), entry (all "
    "different, e.g. 'queen cells seen, bees restless', 'took 12 frames of honey').",
    "The first items:\n[0] 'date=2031-06-01; keeper=Ines; hive=H3; entry=queen cells seen, bees restless'",
)
_GREENHOUSES = (
    "Your context is a str with 31,870 total characters.",
    "Records found: 410 records, fields: time (410 values, e.g. '05:10', '05:40'), house (6 "
    "values, e.g. 'G1', 'G4'), reading (all different, e.g. 'minus two outside, heaters on', "
    "'humid, vents open').",
    "It begins:\ntime=05:10; house=G1; reading=minus two outside, heaters on",
)
_CANTEEN = (
    "Your context is a str with 9,960 total characters.",
    "Records found: 150 records, fields: weekday (5 values, e.g. 'Mon', 'Tue'), table (12 "
    "values, e.g. 'T4', 'T9'), comment (all different, e.g. 'the lentil soup was stone cold', "
    "'lovely curry today').",
    "It begins:\nweekday=Mon; table=T4; comment=the lentil soup was stone cold",
)
_CLASSES = (
    "Your context is a dict with 2 keys ('classes', 'notes') and 6,200 total characters in its "
    "values; value lengths: [1100, 5100].",
    "Records found: `classes`: 25 records, fields: code (all different, e.g. 'EV-104', "
    "'EV-221'), tutor (11 values, e.g. 'Mr Ade', 'Ms Kirk'), room (8 values, e.g. 'B2', 'C1'); "
    "`notes`: 70 records, fields: sent (18 values, e.g. '2031-02-03', '2031-02-04'), note (all "
    "different, e.g. 'EV-104 did not happen, nobody came', 'thanks for EV-221').",
    "The first entries:\n'classes': 'code=EV-104; tutor=Mr Ade; room=B2\\ncode=EV-221; tutor=Ms Kirk; room=C1'",
)


def shaped(shape: str, **slots: Any) -> str:
    """A reply of the plan turn as the model writes it: the shape, then its slots in order."""
    order = [slot for slot, _ in shapes.BY_NAME[shape].slots] if shape != shapes.CODE else []
    assert set(slots) == set(order), (shape, sorted(slots))
    return json.dumps({"shape": shape, **{slot: slots[slot] for slot in order}})


def _turn(data: tuple[str, str, str], query: str) -> str:
    description, records, preview = data
    return FIRST_TURN.format(
        example=EXAMPLE,
        context_description=description,
        records=records,
        context_preview=preview,
        query=query,
    )


_SEARCH_QUERY = "What is the access code of the vault?"
_SEARCH_DATA = (
    "Your context is a list of 1,204 chunks with 52,000 total characters; chunk lengths: [38, 51, 40, ...].",
    "Records found: 1,204 records, fields: text (all different, e.g. 'Log 0001: guard shift "
    "began at the east door', 'Log 0002: delivery of paper, two boxes').",
    "The first items:\n[0] 'Log 0001: guard shift began at the east door'",
)
SEARCH = (
    (_turn(_SEARCH_DATA, _SEARCH_QUERY), shaped(shapes.CODE)),
    (
        CODE_TURN.format(query=_SEARCH_QUERY),
        """```repl
text = context if isinstance(context, str) else "\\n".join(str(r) for r in context)
for m in re.finditer(r"access code", text, re.IGNORECASE):
    print(text[max(0, m.start() - 100):m.end() + 100])
```""",
    ),
    (
        "Output of code block 1:\n...Log 0577: the guard said the access code of the vault is "
        "7781, and left.\n\n" + NEXT_TURN.format(query=_SEARCH_QUERY),
        "FINAL(7781)",
    ),
)
_HIVE_LABELS = {
    "swarm": "the bees swarmed or were about to",
    "harvest": "honey was taken",
    "other": "anything else",
}
_PLANS = (
    (
        _turn(
            _FERRY,
            "How many crossings from the north pier on 2031-05-02 were delayed by the weather?",
        ),
        shaped(
            "count",
            where={"pier": "north", "day": "2031-05-02"},
            field="remark",
            condition="delayed by the weather",
        ),
    ),
    (
        _turn(_FERRY, "For each pier, how many crossings were cancelled?"),
        shaped(
            "count_per_group",
            where={},
            group_by="pier",
            field="remark",
            condition="crossings were cancelled",
        ),
    ),
    (
        _turn(
            _HIVES,
            "How many entries of keeper Bo are a swarm? Each entry is a swarm (the bees swarmed "
            "or were about to), a harvest (honey was taken) or other (anything else).",
        ),
        shaped(
            "count_label", where={"keeper": "Bo"}, field="entry", labels=_HIVE_LABELS, label="swarm"
        ),
    ),
    (
        _turn(_HIVES, "Which keepers logged both a swarm and a honey harvest?"),
        shaped(
            "groups_with_both",
            where={},
            group_by="keeper",
            field="entry",
            first="a swarm",
            second="a honey harvest",
        ),
    ),
    (
        _turn(_HIVES, "Which hives were calm on 2031-06-01 but aggressive on 2031-06-15?"),
        shaped(
            "changed",
            group_by="hive",
            field="entry",
            date_field="date",
            first_date="2031-06-01",
            first="calm",
            second_date="2031-06-15",
            second="aggressive",
        ),
    ),
    (
        _turn(_GREENHOUSES, "Which greenhouse had the most frost warnings?"),
        shaped(
            "most_common_value",
            where={},
            field="reading",
            condition="frost warnings",
            count_field="house",
        ),
    ),
    (
        _turn(_CANTEEN, "Which dish is named most often in the complaints about cold food?"),
        shaped(
            "most_common_name",
            where={},
            field="comment",
            condition="complaints about cold food",
            name="dish",
        ),
    ),
    (
        _turn(_CANTEEN, "What did table T4 say about the curry?"),
        shaped(
            "field_values",
            where={"table": "T4"},
            field="comment",
            condition="about the curry",
            answer="comment",
        ),
    ),
    (
        _turn(_CLASSES, "Which tutors teach a class that a parent said was cancelled?"),
        shaped(
            "join",
            **{"from": "notes"},
            field="note",
            condition="was cancelled",
            other="classes",
            key="code",
            answer="tutor",
        ),
    ),
)
# Each plan example's turn as the plan turn reads it: with the line of its form turn.
PLANS = tuple(
    (forms.with_hint(turn, forms.form_hint(json.loads(reply)["shape"])), reply)
    for turn, reply in _PLANS
)
FEW_SHOT = SEARCH + PLANS
