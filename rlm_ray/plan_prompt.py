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

SYSTEM = """You answer a query about a large input stored in the Python variable `context`. It is too long to read yourself. The runtime has read it into records with named fields; the first message lists them under "Records found".

Your first reply is one JSON object (the runtime enforces its form):
- {{"approach": "plan", ...}}: a plan over the records, for a query about records by their fields or their meaning: count, pick, rank, group, compare or join them. The runtime runs the plan (a helper model reads every record it needs to) and its result is the answer.
- {{"approach": "code"}}: for anything else, such as a fact to find by searching the text; you then write Python.

A plan has these keys, in this order:
"from": the record list to read.
"where": {{"field": "value"}} keeps the records whose field holds exactly that value (a user, a date, a site, a label); {{}} keeps all.
"keep_if": {{"field": ..., "condition": ...}} keeps the records whose field meets a condition of meaning, in the query's own words; or null.
"label": {{"field": ..., "labels": {{"name": "what it means", ...}}}} gives each record one label, in the field "label"; or null.
"extract": {{"field": ..., "question": ...}} asks each record a question (the name it mentions, say); the answer is the field "extracted"; or null.
"join": {{"from": ..., "key": ..., "in": ...}} adds to each record the fields of the other list's record whose "key" its field "in" names; or null.
"group_by": the field whose values are the groups, or null.
"result": "count" (the records kept), "count_per_group", "most_common" or "least_common" (a value of "of"), "values" (the values of "of"), "groups_with_all" (the groups with a record matching each item of "needs"), "groups_changed" (the groups whose "of" differs between the record matching the first item of "needs" and the one matching the second).
"of": the field the result reads, or null.
"needs": a list of {{"field": "value"}} for groups_with_all and groups_changed, else [].
Name only the fields listed under "Records found", and write values as the records write them.

When you write code instead: each reply is exactly one ```repl code block; then stop. The user runs it and shows you what it printed. In the code you can use `context`; `as_records(context)`: the records, a list of dicts of their fields; the modules re, json, math, collections (already imported); `print(...)` (at most {max_output_chars} characters are shown); `llm_filter(condition, texts)`, `llm_classify(texts, {{label: meaning}})`, `llm_map(instruction, texts)`: a helper model reads each text; `llm_query(prompt)`: asks the helper model about a short text (under {sub_window_chars} characters). To find a fact, search the text with re or str.find and print short parts. When the printed output answers the query, reply with one line: FINAL(answer). Never write output yourself and never guess."""

FIRST_TURN = (
    "{example}{context_description}\n{records}\n{context_preview}\nQuery: {query}\n"
    "Your reply (JSON):"
)
USER_TASK = "THE USER'S TASK (their data):\n"
EXAMPLE = "EXAMPLE (made-up data, not the user's):\n"
RETRY = (
    '{feedback}\n\nReply with a corrected plan as JSON, or {{"approach": "code"}}. Query: {query}'
)
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


def plan(**steps: Any) -> str:
    """A plan as the model writes it: every key, in the schema's order, nulls included."""
    keys: dict[str, Any] = {"approach": "plan", "from": "records", "where": {}}
    keys.update({"keep_if": None, "label": None})
    keys.update({"extract": None, "join": None, "group_by": None, "result": "count", "of": None})
    keys.update({"needs": [], **steps})
    return json.dumps(keys)


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
    (_turn(_SEARCH_DATA, _SEARCH_QUERY), '{"approach": "code"}'),
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
_WEATHER = "delayed by the weather"
PLANS = (
    (
        _turn(
            _FERRY,
            "How many crossings from the north pier on 2031-05-02 were delayed by the weather?",
        ),
        plan(
            where={"pier": "north", "day": "2031-05-02"},
            keep_if={"field": "remark", "condition": _WEATHER},
        ),
    ),
    (
        _turn(_FERRY, "For each pier, how many crossings were cancelled?"),
        plan(
            keep_if={"field": "remark", "condition": "the crossing was cancelled"},
            group_by="pier",
            result="count_per_group",
        ),
    ),
    (
        _turn(
            _HIVES,
            "How many entries of keeper Bo are a swarm? Each entry is a swarm (the bees swarmed "
            "or were about to), a harvest (honey was taken) or other (anything else).",
        ),
        plan(
            where={"keeper": "Bo", "label": "swarm"},
            label={
                "field": "entry",
                "labels": {
                    "swarm": "the bees swarmed or were about to",
                    "harvest": "honey was taken",
                    "other": "anything else",
                },
            },
        ),
    ),
    (
        _turn(_HIVES, "Which keepers logged both a swarm and a honey harvest?"),
        plan(
            label={
                "field": "entry",
                "labels": {
                    "swarm": "the bees swarmed or were about to",
                    "harvest": "honey was taken from the hive",
                    "other": "anything else",
                },
            },
            group_by="keeper",
            result="groups_with_all",
            needs=[{"label": "swarm"}, {"label": "harvest"}],
        ),
    ),
    (
        _turn(_HIVES, "Which hives were calm on 2031-06-01 but aggressive on 2031-06-15?"),
        plan(
            label={
                "field": "entry",
                "labels": {
                    "calm": "the bees were calm",
                    "aggressive": "the bees were aggressive or stung",
                    "other": "anything else",
                },
            },
            group_by="hive",
            result="groups_with_all",
            needs=[
                {"date": "2031-06-01", "label": "calm"},
                {"date": "2031-06-15", "label": "aggressive"},
            ],
        ),
    ),
    (
        _turn(_GREENHOUSES, "Which greenhouse had the most frost warnings?"),
        plan(
            keep_if={"field": "reading", "condition": "warns of frost"},
            result="most_common",
            of="house",
        ),
    ),
    (
        _turn(_CANTEEN, "Which dish is named most often in the complaints about cold food?"),
        plan(
            keep_if={"field": "comment", "condition": "complains that the food was cold"},
            extract={"field": "comment", "question": "Which dish does the comment name?"},
            result="most_common",
            of="extracted",
        ),
    ),
    (
        _turn(_CLASSES, "Which tutors teach a class that a parent said was cancelled?"),
        plan(
            **{"from": "notes"},
            keep_if={"field": "note", "condition": "says the class was cancelled"},
            join={"from": "classes", "key": "code", "in": "note"},
            result="values",
            of="tutor",
        ),
    ),
)
FEW_SHOT = SEARCH + PLANS
