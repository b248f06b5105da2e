"""The prompts of small local models (`model="local"`): "small", "small-code" and
"small-plans". A 1.5B root model needs worked examples, one code block a turn and stop
sequences; "small" also gets first-turn advice chosen from the query (`approach`), and
"small-plans" answers its first turn with a plan under a JSON schema instead (rlm_ray/plans,
docs/plans.md). Documented in docs/prompts.md."""

from __future__ import annotations

import re

from rlm_ray.prompting import narrowing, plan_prompt
from rlm_ray.prompting.variant import PromptVariant

_SMALL_INTRO = """You answer a query about a large input stored in the Python variable `context`. It is too long to read: work on it with code.

Each reply of yours is exactly one ```repl code block; then stop. The user runs it and shows you what it printed. In the code you can use:
- `context` and the modules re, json, math, collections (already imported);
- `print(...)`: only printed values are shown (at most {max_output_chars} characters);
"""
_SMALL_HELPERS = """- `llm_classify(records, labels)` returns a list of str: the label (or "unknown") of each record, in order; `labels` is a list, or a dict of label -> what it means (give the query's meanings); `llm_filter(condition, records)`: the records for which the condition holds; `llm_map(instruction, records)`: one answer per record. `records` is a list of str, a str (one record per line) or the corpus. A helper model reads the records, many per call;
- `llm_query(prompt)`: asks the helper model about a short text (under {sub_window_chars} characters) and returns its answer as a str; `llm_query_batched(prompts)`: many at once.

To find a fact (a code, a name, a number), search the text with re or str.find and print short parts. To count or pick records by their meaning (a label, a topic, a sentiment, what a record asks or reports), the query's words are not in the records: never use a regex, `in` or str.count for that. Make the list of records; if the query names an exact field (a user, a date, a site), keep only the records that hold it first. Call llm_classify on the records with the query's labels and their meanings and count the labels with collections.Counter; when the query names no labels, call llm_filter with the query's condition in its own words and count the records it returns."""
_SMALL_NO_HELPERS = """- no helper model: llm_query, llm_map, llm_filter and llm_classify are not for this task; decide everything with code.

To find a fact (a code, a name, a number), search the text with re or str.find and print short parts."""
_SMALL_END = """ If `context` is a list, each item is one record. When the printed output answers the query, reply with one line: FINAL(answer). Never write output yourself and never guess."""
SMALL_SYSTEM = _SMALL_INTRO + _SMALL_HELPERS + _SMALL_END
SMALL_CODE_SYSTEM = _SMALL_INTRO + _SMALL_NO_HELPERS + _SMALL_END

# {context_description} and {context_preview} are filled per call (`first_turn`), so the real
# first turn reads like the examples' and the model sees what a record looks like. The system
# text and the examples hold nothing of the run's context: they are the same for every run, and
# a server that caches prompts (llama.cpp) reads their ~1,100 tokens once, not once a run.
SMALL_FIRST_TURN = (
    "{context_description}\n{context_preview}\nQuery: {query}\n{narrowing}{approach} "
    "Your first ```repl block:"
)
# `{approach}`: what the query asks for, told in the first turn (`approach`). A 1.5B root model
# picks the example whose query looks most like the run's; "How many reviews complain about
# waiting?" looked like neither example's words and got the search example's regex (3 of 4 dev
# runs, docs/prompts.md). A query that counts records or asks which label is most or least
# common is told so; any other query gets the general rule.
APPROACH_ANY = (
    "(A fact to find: search the text with re. Records to count or pick by their meaning: "
    "llm_classify.)"
)
APPROACH_COUNT = (
    "(This query counts records by their meaning, which no regex can find: make the list of "
    "records and call llm_classify with the query's labels, or llm_filter with its condition "
    "if it names no labels.)"
)
# A count that names no labels ("How many reviews complain about noise?") gets its own advice:
# with `APPROACH_COUNT` the 1.5B model made up labels from the ticket example's (COMPLAIN,
# THANKS, REQUEST: 32 for 10) or searched for the query's word, and when it did filter it kept
# only the topic ("shipping or delivery", dropping "complain about": 22 and 26 for 10).
APPROACH_FILTER = (
    "(This query counts the records that meet one condition, which no regex can find. It "
    "names no labels, so make none up: make the list of records, call llm_filter with the "
    "query's condition in its own words, verb included, and print how many records it returns.)"
)
# A query that asks which label is most or least common gets the counting advice with the
# last step spelled out. With v8 the 1.5B model printed every record's label and picked one by
# eye, which fails once the list is longer than the printed output (held-out s100020, 300
# records); told to print `Counter(labels).most_common()`, it printed the right counts and
# answered with the first label even when the query asked for the least common (2 of 5 dev
# runs, docs/prompts.md). So the advice prints the one label the query asks for.
APPROACH_RANK = (
    "(This query asks for the {which} common label, which no regex can find: make the list "
    "of records, call llm_classify with the query's labels, and print the {which} common one: "
    '`collections.Counter(x for x in labels if x != "unknown").most_common(){pick}`.)'
)
_RANKING = re.compile(r"\b(most|least)\s+(common|commonly|frequent|frequently|often)\b", re.I)
# Other ways to ask for the most or least common label; only in a query that says "label",
# "category", "class", "type" or "kind", since "who wrote the largest number of tickets" asks
# for a user, which a regex finds (such a query gets `APPROACH_ANY`).
_RANKING_MORE = {
    "most": re.compile(
        r"\b(most (popular|prevalent)|commonest"
        r"|(largest|greatest|highest|biggest) (number|count|share))\b",
        re.I,
    ),
    "least": re.compile(
        r"\b(least (popular|prevalent)|rarest|fewest|(smallest|lowest) (number|count|share))\b",
        re.I,
    ),
}
_LABEL_WORD = re.compile(r"\b(label|categor(y|ies)|class|type|kind)s?\b", re.I)
_COUNTING = re.compile(
    r"\b(how many|number of|count|how often|(fraction|share|percentage|proportion) of)\b",
    re.IGNORECASE,
)


# A query names its labels when it says "label" or "category", says what each record is
# ("Each ticket is BROKEN ..."), or gives two meanings in brackets ("complaint (unhappy ...)").
_NAMES_LABELS = re.compile(
    r"\b(label(s|led|ed)?|categor(y|ies)|each \w+ (is|has))\b|\([^)]+\)[^(]*\([^)]+\)", re.I
)


def approach(query: str) -> str:
    """The first turn's advice for `query`: `APPROACH_RANK` for a query that asks which label
    is most or least common, `APPROACH_COUNT` for one that counts records by labels it names,
    `APPROACH_FILTER` for a count that names none, else `APPROACH_ANY`."""
    # subtle: `_NAMES_LABELS` backtracks quadratically in the query, a child's query is its
    # parent model's text and this runs outside any clock ('(' * 400_000: minutes)
    query = query[: narrowing.MAX_QUERY_CHARS]
    if which := _ranking(query):
        least = which == "least"
        return APPROACH_RANK.format(
            which="least" if least else "most", pick="[-1]" if least else "[0]"
        )
    if not _COUNTING.search(query) or any(p.search(query) for p in _RANKING_MORE.values()):
        return APPROACH_ANY  # "who wrote the largest number of tickets" counts no records
    return APPROACH_COUNT if _NAMES_LABELS.search(query) else APPROACH_FILTER


def _ranking(query: str) -> str | None:
    """Which end a query asks for ("most" or "least") if it asks for the most or least common
    label, else None."""
    if ranking := _RANKING.search(query):
        return ranking[1].lower()
    if _LABEL_WORD.search(query):
        for which, phrase in _RANKING_MORE.items():
            if phrase.search(query):
                return which
    return None


SMALL_NEXT_TURN = (
    "Your next ```repl block, or FINAL(answer) if the output above answers the query: {query}"
)
SMALL_EMPTY_TURN = (
    "Your code printed nothing, so nothing is known yet (a search that finds nothing does not "
    "mean 0: the query's words may not be in the records). Write a ```repl block that prints "
    "what answers the query: {query}"
)
SMALL_ERROR_TURN = (
    "Your code failed with the error above: nothing is known yet. Write a corrected ```repl "
    "block for the query: {query}"
)

# The examples' data are made up for them (maintenance tickets, a vault log): no benchmark's
# records, and a different record shape from the quality benchmark's.
_COUNT_QUERY = (
    "How many tickets from site 31 report something broken? Each ticket is BROKEN (something "
    "does not work), THANKS (praise) or REQUEST (asks for something new)."
)
_SMALL_EXAMPLE_COUNT = (
    SMALL_FIRST_TURN.format(
        context_description="Your context is a str with 18,240 total characters.",
        context_preview=(
            "It begins:\nTicket 1 (site 17): The tap in room 4 drips all night.\n"
            "Ticket 2 (site 31): Thanks for fixing the heating so fast!\n"
            "Ticket 3 (site 31): Could we get a second printer on floor 2?"
        ),
        query=_COUNT_QUERY,
        narrowing=narrowing.hint_text("site 31", 57, 412, "context.splitlines()"),
        approach=APPROACH_COUNT,
    ),
    # The example keeps the records its hint names before it asks about any (a 1.5B model
    # copies the example's code more readily than it follows the hint).
    """```repl
import collections
records = [r for r in context.splitlines() if 'site 31' in r]
labels = llm_classify(records, {"BROKEN": "something does not work", "THANKS": "praise", "REQUEST": "asks for something new"})
print(len(records), "tickets of site 31:", collections.Counter(labels))
```""",
)
_SMALL_EXAMPLE_COUNT_DONE = (
    "Output of code block 1:\n"
    "57 tickets of site 31: Counter({'REQUEST': 25, 'BROKEN': 20, 'THANKS': 12})\n\n"
    + SMALL_NEXT_TURN.format(query=_COUNT_QUERY),
    "FINAL(20)",
)
# A count over every record (no field named, so no hint): without it the model searched for the
# query's words when no value narrowed the records (tests/test_real_model.py's count). Its query
# names no labels, so the example filters: with labels in every example, the model searched for
# the words of a query that had none, or made up labels from them; and the sub-model answers a
# condition after the item (llm_filter's form) far better than a YES/NO pair of labels before it
# (12 of 13 against all 40 "YES", docs/prompts.md).
_ALL_QUERY = "How many reviews say the product stopped working?"
_SMALL_EXAMPLE_ALL = (
    SMALL_FIRST_TURN.format(
        context_description=(
            "Your context is a list of 212 chunks with 9,800 total characters; chunk lengths: "
            "[44, 52, 39, ...]."
        ),
        context_preview=(
            "The first items:\n[0] 'Review: the lamp flickers and the seller never replied'\n"
            "[1] 'Review: lovely colour, fast delivery'"
        ),
        query=_ALL_QUERY,
        narrowing="",
        approach=APPROACH_FILTER,
    ),
    """```repl
records = context.splitlines() if isinstance(context, str) else list(context)
hits = llm_filter("the review says the product stopped working", records)
print(len(hits), "of", len(records), "reviews say the product stopped working")
```""",
)
_SMALL_EXAMPLE_ALL_DONE = (
    "Output of code block 1:\n38 of 212 reviews say the product stopped working\n\n"
    + SMALL_NEXT_TURN.format(query=_ALL_QUERY),
    "FINAL(38)",
)
_SEARCH_QUERY = "What is the access code of the vault?"
_SMALL_EXAMPLE_SEARCH = (
    SMALL_FIRST_TURN.format(
        context_description=(
            "Your context is a list of 1,204 chunks with 52,000 total characters; chunk "
            "lengths: [38, 51, 40, ...]."
        ),
        context_preview=(
            "The first items:\n[0] 'Log 0001: guard shift began at the east door'\n"
            "[1] 'Log 0002: delivery of paper, two boxes, signed by Ines'"
        ),
        query=_SEARCH_QUERY,
        narrowing="",
        approach=APPROACH_ANY,
    ),
    """```repl
import re
text = context if isinstance(context, str) else "\\n".join(str(r) for r in context)
for m in re.finditer(r"access code", text, re.IGNORECASE):
    print(text[max(0, m.start() - 100):m.end() + 100])
```""",
)
_SMALL_EXAMPLE_SEARCH_DONE = (
    "Output of code block 1:\n...Log 0577: the guard said the access code of the vault is "
    "7781, and left.\n\n" + SMALL_NEXT_TURN.format(query=_SEARCH_QUERY),
    "FINAL(7781)",
)

SMALL = PromptVariant(
    name="small",
    version=11,
    system=SMALL_SYSTEM,
    few_shot=(
        _SMALL_EXAMPLE_SEARCH,
        _SMALL_EXAMPLE_SEARCH_DONE,
        _SMALL_EXAMPLE_ALL,
        _SMALL_EXAMPLE_ALL_DONE,
        _SMALL_EXAMPLE_COUNT,
        _SMALL_EXAMPLE_COUNT_DONE,
    ),
    # Without these, small models write the "output" of their code themselves and trust it.
    stop=("Output of code block", "\nUser:", "\n```\n"),
    first_turn=SMALL_FIRST_TURN,
    next_turn=SMALL_NEXT_TURN,
    error_turn=SMALL_ERROR_TURN,
    empty_turn=SMALL_EMPTY_TURN,
)

# "small" without sub-calls: the model has only code (the benchmark's "RLM without sub-calls").
SMALL_CODE = PromptVariant(
    name="small-code",
    version=7,
    system=SMALL_CODE_SYSTEM,
    few_shot=(_SMALL_EXAMPLE_SEARCH, _SMALL_EXAMPLE_SEARCH_DONE),
    stop=SMALL.stop,
    first_turn=SMALL_FIRST_TURN.replace("{approach}", APPROACH_ANY),  # v7's: no helpers
    next_turn=SMALL_NEXT_TURN,
    error_turn=SMALL_ERROR_TURN,
    empty_turn=SMALL_EMPTY_TURN,
)

# Plans (issue 27): the first reply is JSON under the plan schema, after a form turn that names
# the query's shape (plans/forms.py): a plan, which compiles into the cell the runtime runs, or a
# choice of code; the code turns after it are "small"'s turns without its worked examples.
SMALL_PLANS = PromptVariant(
    name="small-plans",
    version=12,
    system=plan_prompt.SYSTEM,
    few_shot=plan_prompt.FEW_SHOT,
    stop=SMALL.stop,
    first_turn=plan_prompt.FIRST_TURN,
    next_turn=plan_prompt.NEXT_TURN,
    error_turn=SMALL_ERROR_TURN,
    empty_turn=SMALL_EMPTY_TURN,
    plan_retry=plan_prompt.RETRY,
    plan_code=plan_prompt.CODE_TURN,
)
