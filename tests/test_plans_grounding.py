"""Grounded plan slots (rlm_ray/plans/grounding.py): the schema offers a condition only the
fields of free text, a group only the fields of values, and an exact test only a value the
query names; a condition copied from a record's text is told back. These are the failures of
the first held-out run (docs/plans.md); each test here fails on the schema before grounding."""

from __future__ import annotations

import json

import jsonschema
import pytest
from helpers import local_completion

from rlm_ray.plans import grounding
from rlm_ray.plans.records import record_lists
from rlm_ray.plans.schema import plan_schema
from rlm_ray.testing import records

USERS = ["ana", "bo", "cy", "di", "eli", "fay"]
TEXTS = [
    "I was charged twice for the lamp I bought",
    "my parcel never arrived at the front door",
    "the invoice shows a price I never agreed to",
    "thanks a lot, the kettle is lovely and quiet",
    "the courier lost my chair somewhere in town",
    "billed for a chair I returned two weeks ago",
]
LINES = [
    f"2026-03-0{1 + i % 5} | user {USERS[i % 6]} | {TEXTS[i % 6]} (note {i})" for i in range(24)
]
MESSAGES = "\n".join(LINES)
LISTS = record_lists(MESSAGES)
ROWS = LISTS["records"]


def valid(schema: dict, reply: dict) -> bool:
    try:
        jsonschema.validate(reply, schema)
    except jsonschema.ValidationError:
        return False
    return True


def test_fields_of_free_text_and_fields_of_values():
    assert grounding.text_fields(ROWS) == ["text"]
    assert grounding.value_fields(ROWS) == ["date", "user"]
    files = [
        {"source": f"reports/site-{i}/incident-{i:04d}.txt", "text": f"{t} ({i})"}
        for i, t in enumerate(TEXTS * 4)
    ]
    assert grounding.text_fields(files) == ["text"]  # a path is long and all different, not text


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("Which users complained about both billing and delivery?", {}),
        ("How many messages did user bo send about billing?", {"user": ["bo"]}),
        ("What did Ana write on March 2?", {"date": ["2026-03-02"], "user": ["ana"]}),
        ("Who wrote on 2 March or on 2026-03-04?", {"date": ["2026-03-02", "2026-03-04"]}),
    ],
)
def test_the_values_a_query_names(query, named):
    assert grounding.named_values(ROWS, query) == named


def test_an_exact_test_the_query_never_asked_for_cannot_be_written():
    schema = plan_schema(LISTS, "groups_with_both", "Which users wrote about billing and delivery?")
    good = {"shape": "groups_with_both", "where": {}, "group_by": "user", "field": "text"}
    good |= {"first": "billing", "second": "delivery"}
    assert valid(schema, good)
    assert not valid(schema, good | {"where": {"user": "ana"}})  # a value from the preview
    assert not valid(schema, good | {"field": "user"})  # a condition reads the text
    assert not valid(schema, good | {"group_by": "text"})  # groups are values, not text
    copied = "the courier lost my chair somewhere in town"  # a record's text, from the preview
    assert not valid(schema, good | {"first": copied})  # conditions are the query's words


def test_a_condition_is_a_run_of_the_querys_words():
    runs = grounding.query_words("Which users wrote about billing, and delivery?")
    assert "wrote about billing" in runs and "billing and delivery" in runs
    assert "billing," not in runs and "users billing" not in runs
    long = grounding.query_words(" ".join(f"w{i}" for i in range(200)))
    assert max(len(run.split()) for run in long) == grounding.MAX_RUN_WORDS
    assert "w59" in long and "w60" not in long  # the first words of a long query only


def test_a_value_the_query_names_can_be_tested():
    schema = plan_schema(LISTS, "count", "How many messages did user bo send about billing?")
    reply = {"shape": "count", "where": {"user": "bo"}, "field": "text", "condition": "billing"}
    assert valid(schema, reply)
    assert not valid(schema, reply | {"where": {"user": "cy"}})


def test_dates_of_a_change_are_the_dates_the_query_names():
    query = "Which users wrote about billing on March 1 but about delivery on 2026-03-03?"
    schema = plan_schema(LISTS, "changed", query)
    reply = {"shape": "changed", "group_by": "user", "field": "text", "date_field": "date"}
    reply |= {"first_date": "2026-03-01", "first": "billing", "second_date": "2026-03-03"}
    reply |= {"second": "delivery"}
    assert valid(schema, reply)
    assert not valid(schema, reply | {"first_date": "2026-03-05"})


def delivery(task: str, item: str) -> str:
    """The scripted helper model: yes for a delivery problem."""
    return "yes" if any(w in item for w in ("parcel", "courier")) else "no"


def test_a_condition_copied_from_a_record_is_told_back_and_not_run():
    copied = {"shape": "count", "where": {}, "field": "text"}
    copied["condition"] = "the courier lost my chair somewhere"
    fixed = copied | {"condition": "a delivery problem"}
    turns = iter([copied, fixed])

    def reply(request):
        if request.body.get("response_format", {}).get("json_schema", {}).get("name") == "form":
            return '{"shape": "count"}'
        if "response_format" in request.body:
            return json.dumps(next(turns))
        return records(delivery)(request)

    query = "How many messages are about a delivery problem?"
    result, fake = local_completion(reply, query, MESSAGES, prompt="small-plans")
    assert result.answer == "8"
    told = [r for r in fake.requests if "response_format" in r.body][2].messages[-1]["content"]
    assert told.startswith("Your plan was not run: `condition` is the text of a record")
    assert result.trace.iterations[1].cells == []  # nothing ran for the copied condition


def test_a_condition_in_the_querys_words_is_not_a_copy():
    assert not grounding.copied_text("a delivery problem", ROWS, "any delivery problem?")
    quoted = "billed for a chair I returned"
    assert not grounding.copied_text(quoted, ROWS, f"Who wrote '{quoted}'?")
    assert grounding.copied_text("billed for a chair I returned", ROWS, "which billing issues?")


def test_a_join_starts_from_the_list_of_free_text_and_reads_the_others_keys():
    orders = "\n".join(f"order {100 + i} | customer {USERS[i % 6]}" for i in range(12))
    notes = "\n".join(
        f"2026-03-0{1 + i % 5} | order {100 + i % 12} {TEXTS[i % 6]}" for i in range(24)
    )
    lists = record_lists({"orders": orders, "messages": notes})
    schema = plan_schema(lists, "join", "Which customers had an order reported lost?")
    reply = {"shape": "join", "from": "messages", "field": "text", "condition": "reported lost"}
    reply |= {"other": "orders", "key": "order", "answer": "customer"}
    assert valid(schema, reply)
    swapped = reply | {"from": "orders", "other": "messages", "field": "customer"}
    assert not valid(schema, swapped)  # the list of keys does not meet a condition
    assert not valid(schema, reply | {"answer": "text"})  # the answer is a field of `other`


# -- the second held-out run's failures (docs/plans.md) ------------------------------------------

ALERTS = "\n".join(
    f'ts=2026-03-0{1 + i % 5} host={host} level=error msg="{text}"'
    for i, (host, text) in enumerate(
        [
            ("web-01", "disk full on the data volume, writes are failing"),
            ("db-02", "out of memory, the worker was killed by the kernel"),
            ("web-01", "certificate renewed for the public endpoint, all good"),
            ("cache-03", "no space left on the device while writing a snapshot"),
            ("db-02", "slow queries above the threshold for ten minutes"),
        ]
    )
)
INVENTORY = "host | owner\nweb-01 | Noor\ndb-02 | Rafael\ncache-03 | Yara\nedge-04 | Lin"


def about_disk(task: str, item: str) -> str:
    full = "disk full" in item or "no space" in item
    return "yes" if full else "no"


def test_a_joins_key_is_read_from_any_field_the_records_name_it_in():
    """The alerts name their host in `host=`, not in the message text the condition reads:
    the schema's key is the inventory's field the alerts name, and the join finds it there."""
    context = {"alerts": ALERTS, "inventory": INVENTORY}
    lists = record_lists(context)
    assert grounding.key_fields(lists["alerts"], lists["inventory"]) == ["host"]
    schema = plan_schema(lists, "join", "Which owners have a host that ran out of disk space?")
    reply = {"shape": "join", "from": "alerts", "field": "msg", "condition": "ran out of disk"}
    reply |= {"other": "inventory", "key": "host", "answer": "owner"}
    assert valid(schema, reply)
    assert not valid(schema, reply | {"key": "owner"})  # no alert names an owner

    def model(request):
        if "response_format" in request.body:
            return json.dumps(reply)
        return records(about_disk)(request)

    query = "Which owners have a host that ran out of disk space?"
    result, _ = local_completion(model, query, context, prompt="small-plans")
    assert result.answer == "Noor, Yara"


def test_a_kind_of_name_that_is_a_field_is_counted_from_that_field():
    """ "Which host ..." over records with a `host` field counts the field: asking the model to
    find the host in each message's text loses the records whose text does not name it."""
    reply = {"shape": "most_common_name", "where": {}, "field": "msg", "condition": None}
    reply |= {"name": "hosts"}
    asked: list[str] = []

    def model(request):
        if "response_format" in request.body:
            return json.dumps(reply)
        asked.append(request.first_user)
        return records(about_disk)(request)

    result, _ = local_completion(
        model, "Which host logged the most errors?", ALERTS, prompt="small-plans"
    )
    assert result.answer in ("web-01", "db-02")  # two alerts each, the first of them ranked
    code = result.trace.iterations[1].cells[0].code
    assert "collections.Counter(r.get('host', '')" in code
    assert asked == []  # no model call: no condition, and the field holds the host


def test_a_list_of_a_few_documents_still_has_a_field_of_free_text():
    docs = [{"chair": name, "text": f"Minutes {i}: {TEXTS[i]}"} for i, name in enumerate(USERS)]
    assert grounding.text_fields(docs) == ["text"]
    assert grounding.value_fields(docs) == ["chair"]


SLOTS = {"where": {}, "group_by": "user", "field": "text"}


def test_a_plan_that_finds_none_asks_its_query_of_the_whole_input():
    """Every record labelled `other` (a wrong step, not the truth): the cell asks the query
    of the whole input in one plain call, as a direct reading would, before it says "none"."""
    reply = {"shape": "groups_with_both", **SLOTS, "first": "charged", "second": "parcel"}
    plain_prompts: list[str] = []

    def model(request):
        if "response_format" in request.body:
            return json.dumps(reply)
        if request.first_user.startswith("Which users"):
            plain_prompts.append(request.first_user)
            return "ana and cy"
        return records(lambda task, item: "other")(request)

    query = "Which users were charged twice and had a parcel lost?"
    result, _ = local_completion(model, query, MESSAGES, prompt="small-plans")
    assert result.answer == "ana and cy"
    [prompt] = plain_prompts
    assert prompt.startswith(query) and LINES[0] in prompt and LINES[-1] in prompt
    code = result.trace.iterations[1].cells[0].code
    assert "llm_query(parts)" in code


def test_a_plan_that_finds_none_over_an_input_too_large_for_one_call_says_none():
    reply = {"shape": "groups_with_both", **SLOTS, "first": "charged", "second": "parcel"}

    def model(request):
        if "response_format" in request.body:
            return json.dumps(reply)
        assert not request.first_user.startswith("Which users")  # no whole-input call
        return records(lambda task, item: "other")(request)

    big = "\n".join(LINES * 60)  # ~75,000 characters: over an 8,192-token window
    result, _ = local_completion(
        model, "Which users?", big, prompt="small-plans", context_window_tokens=8192
    )
    assert result.answer == "none"
    assert "The whole input was not read" in result.trace.iterations[1].cells[0].output


@pytest.mark.parametrize(
    "query, named, shape",
    [
        ("Which users went from a billing problem on 2026-03-01 to a delivery problem on "
         "March 2?", "groups_with_both", "changed"),
        ("Which users had a billing problem and a delivery problem?", "changed", "groups_with_both"),
    ],
)  # fmt: skip
def test_two_conditions_are_a_change_exactly_when_the_query_names_two_dates(query, named, shape):
    form = json.dumps({"conditions": "two", "shape": named})
    asked: list[dict] = []

    def model(request):
        if request.body.get("response_format", {}).get("json_schema", {}).get("name") == "form":
            return form
        asked.append(request.body)
        return '{"shape": "code"}'

    local_completion(model, query, MESSAGES, prompt="small-plans", max_iterations=1)
    options = asked[0]["response_format"]["json_schema"]["schema"]["anyOf"]
    assert options[0]["properties"]["shape"]["enum"] == [shape]


def test_labels_the_query_does_not_list_open_every_shape_again():
    """A shape of labels for "which product comes up most?": told back, and the next plan turn
    may name any shape (the form turn's choice is dropped)."""
    wrong = {"shape": "most_common_label", "where": {}, "field": "text"}
    wrong |= {"labels": {"lamp": "the lamp", "chair": "the chair", "other": "else"}}
    plans = iter([wrong, {"shape": "code"}])
    asked: list[dict] = []

    def model(request):
        if request.body.get("response_format", {}).get("json_schema", {}).get("name") == "form":
            return json.dumps({"conditions": "one", "shape": "most_common_label"})
        if "response_format" in request.body:
            asked.append(request.body)
            return json.dumps(next(plans))
        return "FINAL(done)"

    query = "Which product is named most often in the messages?"
    local_completion(model, query, MESSAGES, prompt="small-plans", max_iterations=3)
    first, second = (b["response_format"]["json_schema"]["schema"]["anyOf"] for b in asked)
    assert [o["properties"]["shape"]["enum"] for o in first] == [["most_common_label"], ["code"]]
    offered = {o["properties"]["shape"]["enum"][0] for o in second}
    assert {"most_common_name", "most_common_value", "field_values"} <= offered
    told = [m["content"] for m in asked[1]["messages"] if m["content"].startswith("Your plan")]
    assert told[0].startswith("Your plan was not run: the query lists no labels (lamp, chair)")
