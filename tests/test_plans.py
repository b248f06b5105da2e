"""Plans (rlm_ray/plans): checked against the records with one-line errors, compiled into one
ordinary REPL cell, run by the loop's plan turns; in-process (the HTTP path: test_plans_http.py)."""

from __future__ import annotations

import json

import pytest
from helpers import local_completion

from rlm_ray import Program
from rlm_ray.plans.compile import compile_plan
from rlm_ray.plans.plan import PlanError, Test, check
from rlm_ray.plans.records import record_lists
from rlm_ray.prompting.plan_prompt import FEW_SHOT
from rlm_ray.testing import records

MESSAGES = "\n".join(
    [
        "2026-03-01 | user ana | I was charged twice for the lamp",
        "2026-03-01 | user ana | my parcel never arrived",
        "2026-03-02 | user bo | the invoice is wrong",
        "2026-03-02 | user bo | thanks, lovely kettle",
        "2026-03-03 | user cy | the courier lost my chair",
        "2026-03-03 | user cy | billed for a chair I returned",
        "2026-03-04 | user di | where is my blender? a week late",
    ]
)
LISTS = record_lists(MESSAGES)
KIND = {"charged": "billing", "invoice": "billing", "billed": "billing", "parcel": "delivery"}
KIND |= {"courier": "delivery", "late": "delivery"}


def kind(task: str, item: str) -> str:
    """The scripted helper model: billing, delivery or other by a word of the item; the thing
    it names when asked a question."""
    if task.startswith("Instruction"):
        return next(
            f"The {w}." for w in ("parcel", "chair", "blender", "lamp", "kettle") if w in item
        )
    label = next((k for word, k in KIND.items() if word in item), "other")
    if task.startswith(("Condition", "Item")) or "yes or no" in task:
        return "yes" if label == "delivery" else "no"
    return label


def plan(**steps) -> dict:
    """A general plan (what a shape is rewritten into), every key given."""
    base = {"from": "records", "where": {}, "keep_if": None, "label": None, "extract": None}
    base |= {"join": None, "group_by": None, "result": "count", "of": None}
    return base | {"needs": []} | steps


def is_form(request) -> bool:
    """A form turn's request (the short call that names the query's shape)."""
    return request.body.get("response_format", {}).get("json_schema", {}).get("name") == "form"


def shape(kind: str, **slots) -> dict:
    return {"shape": kind, **slots}


LABELS = {"billing": "a billing problem", "delivery": "a delivery problem", "other": "else"}
SETS = shape(
    "groups_with_both",
    where={},
    group_by="user",
    field="text",
    first="a billing problem",
    second="a delivery problem",
)
GENERAL_SETS = plan(
    label={"field": "text", "labels": LABELS},
    group_by="user",
    result="groups_with_all",
    needs=[{"label": "billing"}, {"label": "delivery"}],
)


# -- checking -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "steps, error",
    [
        (
            {"from": "msgs"},
            "`from`: there is no record list 'msgs'; the record lists are 'records'",
        ),
        (
            {"group_by": "usr", "result": "count_per_group"},
            "`group_by`: the records of 'records' have no field 'usr'; their fields are date, "
            "user, text",
        ),
        ({"result": "sum"}, "`result`: 'sum' is not a result; the results are count,"),
        ({"result": "most_common"}, "`result` most_common needs `of`: the field it reads"),
        ({"where": {"date": "2026-04-01"}}, "field 'date' has no value '2026-04-01'; its 4 values"),
        ({"keep_if": {"field": "body", "condition": "x"}}, "`keep_if.field`: there is no field"),
        ({"steps": []}, "a plan has no key 'steps'; its keys are: from, where, keep_if"),
        (
            {**GENERAL_SETS, "needs": [{"label": "refund"}]},
            "`needs`: 'refund' is not one of the labels: billing, delivery, other",
        ),
        (
            {"where": {"label": "billing"}},
            "`where`: the records of 'records' have no field 'label'",
        ),
    ],
)
def test_a_bad_plan_is_one_line_naming_what_exists(steps, error):
    with pytest.raises(PlanError) as info:
        check(plan(**steps), LISTS)
    message = str(info.value)
    assert error in message and "\n" not in message


def test_values_are_read_as_the_records_write_them():
    checked = check(plan(where={"user": "User Ana", "date": "March 3"}), LISTS)
    assert checked.where == (Test("user", "ana"), Test("date", "2026-03-03"))
    month = check(plan(where={"date": "March 2026"}), LISTS)
    assert month.where == (Test("date", "2026-03", prefix=True),)


# -- shapes, run as one cell by the loop's plan turn ------------------------------------------------
def run(reply_json: dict, context=MESSAGES, query="q"):
    """`reply_json` as the model's plan turn, the helper model labelling by words."""

    def reply(request):
        if "response_format" in request.body:
            return json.dumps(reply_json)
        return records(kind)(request)

    return local_completion(reply, query, context, prompt="small-plans")


DELIVERY = {"field": "text", "condition": "about a delivery"}
# what the query must name for a shape to stand: its labels, or two dates for a change
LABELLED = "Is each message about billing, delivery or other?"
QUERIES = {name: LABELLED for name in ("count_label", "most_common_label", "least_common_label")}
QUERIES["changed"] = "Which users changed between 2026-03-01 and 2026-03-02?"


@pytest.mark.parametrize(
    "reply, answer",
    [
        (SETS, "ana, cy"),
        (shape("count", where={}, **DELIVERY), "3"),
        (shape("count", where={"user": "User Di"}, **DELIVERY), "1"),
        (shape("count", where={"date": "March 2026"}, field="text", condition=None), "7"),
        (
            shape("count_per_group", where={}, group_by="user", **DELIVERY),
            "ana: 1, bo: 0, cy: 1, di: 1",
        ),
        (shape("count_label", where={}, field="text", labels=LABELS, label="other"), "1"),
        (shape("most_common_label", where={}, field="text", labels=LABELS), "billing"),
        (shape("least_common_label", where={}, field="text", labels=LABELS), "other"),
        (
            shape("most_common_value", where={}, field="text", condition="d", count_field="date"),
            "2026-03-01",  # 2026-03-01 and -03 tie with one each: the earlier first
        ),
        (
            shape("most_common_name", where={}, field="text", condition="d", **{"name": "product"}),
            "parcel",  # one each for parcel, chair and blender: the first named wins the tie
        ),
        (
            shape(
                "changed",
                group_by="user",
                field="text",
                date_field="date",
                first_date="March 1",
                first="a billing problem",
                second_date="2026-03-01",
                second="a delivery problem",
            ),
            "ana",
        ),
        (
            shape(
                "field_values",
                where={"date": "2026-03-02"},
                field="text",
                condition=None,
                answer="user",
            ),
            "bo",
        ),
    ],
)
def test_a_shape_runs_as_one_cell_and_answers(reply, answer):
    result, fake = run(reply, query=QUERIES.get(reply["shape"], "q"))
    assert result.answer == answer
    form, turn = result.trace.iterations  # the form turn names the shape, the plan fills it
    assert json.loads(form.response)["shape"] == reply["shape"] and form.cells == []
    assert json.loads(turn.response) == reply  # the reply as the model wrote it
    [cell] = turn.cells
    assert (
        cell.code.startswith("# a plan, compiled by rlm-ray") and "as_records(context)" in cell.code
    )
    assert cell.final and cell.error is None
    asked_form, asked_plan = fake.requests[:2]
    assert asked_form.body["response_format"]["json_schema"]["name"] == "form"
    # the form call is short (no records); the plan turn reads only its shape's examples
    assert "charged twice" not in str(asked_form.messages)
    shown = [m["content"] for m in asked_plan.messages[1:-1] if m["role"] == "assistant"]
    if any(f'"shape": "{reply["shape"]}"' in reply_ for _, reply_ in FEW_SHOT):
        assert shown and all(json.loads(e)["shape"] == reply["shape"] for e in shown)
    else:  # no worked example of this shape: all of them
        assert len(shown) == len(FEW_SHOT)
    assert asked_plan.body["response_format"]["type"] == "json_schema"  # the schema went with it
    assert "stop" not in asked_plan.body  # a plan turn has no code stops
    # the plan turn's schema is the chosen shape's (or code), and its message names the form
    options = asked_plan.body["response_format"]["json_schema"]["schema"]["anyOf"]
    assert [o["properties"]["shape"]["enum"] for o in options] == [[reply["shape"]], ["code"]]
    assert f'The query\'s form: "{reply["shape"]}"' in asked_plan.messages[-1]["content"]


def test_a_general_plan_compiles_to_the_same_kind_of_cell():
    code = compile_plan(check(GENERAL_SETS, LISTS), "context")
    assert "llm_classify([r.get('text', '') for r in rows], {'billing'" in code
    changed = plan(
        label={"field": "text", "labels": LABELS},
        group_by="user",
        result="groups_changed",
        of="label",
        needs=[{"date": "2026-03-01"}, {"date": "2026-03-02"}],
    )
    assert "before[0] != after[0]" in compile_plan(check(changed, LISTS), "context")


def test_a_join_of_two_record_lists():
    context = {
        "orders": "order 101 | customer Ana Lima\norder 102 | customer Bo Chen\norder 103 | customer Ana Lima",
        "messages": "2026-03-01 | order 102 is a week late\n2026-03-02 | thanks for order 101\n"
        "2026-03-03 | the parcel of 103 never came",
    }
    reply = shape(
        "join",
        **{"from": "messages"},
        field="text",
        condition="reports the order late or lost",
        other="orders",
        key="order",
        answer="customer",
    )
    result, _ = run(reply, context)
    assert result.answer == "Ana Lima, Bo Chen"
    assert (
        'as_records(context["orders"])'.replace('"', "'")
        in result.trace.iterations[1].cells[0].code
    )


def test_a_bad_plan_is_told_back_and_the_next_one_runs():
    turns = iter([shape("count_per_group", where={}, group_by="usr", **DELIVERY), SETS])
    replies: list[str] = []

    def reply(request):
        if is_form(request):
            return '{"shape": "groups_with_both"}'
        if "response_format" in request.body:
            replies.append(json.dumps(next(turns)))
            return replies[-1]
        return records(kind)(request)

    result, fake = local_completion(reply, "q", MESSAGES, prompt="small-plans")
    assert result.answer == "ana, cy" and len(result.trace.iterations) == 3  # form, bad, good
    second = [r for r in fake.requests if "response_format" in r.body][2]
    told = second.messages[-1]["content"]
    assert told.startswith(
        "Your plan was not run: `group_by`: the records of 'records' have no field 'usr'"
    )
    assert result.trace.iterations[1].cells == []  # nothing ran for the bad plan


def test_a_choice_of_code_leaves_the_plan_turns():
    def reply(request):
        if "response_format" in request.body:
            return '{"shape": "code"}'
        last = request.last_user
        if last.startswith("Write one ```repl block"):
            return "```repl\nprint(len(as_records(context)))\n```"
        return "FINAL(7 records)"

    result, fake = local_completion(reply, "How many records?", MESSAGES, prompt="small-plans")
    assert result.answer == "7 records"
    assert [("response_format" in r.body) for r in fake.requests] == [True, False, False]
    assert fake.requests[1].body["stop"]  # code turns keep their stop sequences


def test_compiled_code_is_plain_and_replays_on_new_data():
    result, _ = run(SETS)
    code = result.trace.iterations[1].cells[0].code
    program = Program.from_trace(result.trace)
    assert [cell.code for cell in program.cells] == [code.strip("\n")]
    assert program.answer.computed  # FINAL in the cell: the answer is the code's own value
    more = MESSAGES + "\n2026-03-05 | user di | the invoice doubled my price"
    replayed, fake = local_completion(
        records(kind), "q", more, prompt="small-plans", program=program
    )
    assert replayed.answer == "ana, cy, di"
    assert not any("response_format" in r.body for r in fake.requests)  # no root-model turn


def test_the_form_turn_asks_only_the_form_and_its_choice_of_code_skips_the_plan_turn():
    def reply(request):
        if is_form(request):
            return '{"shape": "code"}'
        assert "response_format" not in request.body  # no plan turn after code was chosen
        if request.last_user.startswith("Write one ```repl block"):
            return "```repl\nprint(len(as_records(context)))\n```"
        return "FINAL(7 records)"

    result, fake = local_completion(reply, "How many records?", MESSAGES, prompt="small-plans")
    assert result.answer == "7 records"
    form = fake.requests[0]
    question = form.messages[-1]["content"]
    assert "How many records?" in question and "charged twice" not in question  # no records
    one, two = form.body["response_format"]["json_schema"]["schema"]["anyOf"]
    # first the number of conditions, then a shape of that many
    assert list(one["properties"]) == list(two["properties"]) == ["conditions", "shape"]
    assert two["properties"]["shape"]["enum"] == ["groups_with_both", "changed"]
    enum = one["properties"]["shape"]["enum"]
    assert "groups_with_both" not in enum and "join" not in enum and enum[-1] == "code"  # one list
