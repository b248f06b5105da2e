"""What the model reads: the system prompt, the context description and the turn messages.

Prompts are data: a `PromptVariant` (name, version, system text, few-shot turns, stop sequences,
turn messages), registered in `PROMPTS` and documented in docs/prompts.md. "paper" follows the
paper's prompt (arXiv:2512.24601, App. D) adapted to rlm-ray's REPL (parallel fan-out,
`recursive_llm`, the sandbox's rules) and is the default; "small" is for small local models
(`model="local"`), which need a worked example, one code block per turn and stop sequences;
"small-plans" is "small" whose first reply is a plan under a JSON schema (rlm_ray/plans,
docs/plans.md), or a choice of code.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.plans import records as plan_records
from rlm_ray.plans.records import record_lists
from rlm_ray.prompting import narrowing, plan_prompt
from rlm_ray.safety import measure
from rlm_ray.tooling.shown import prompt_section
from rlm_ray.tools import ToolSpec

SYSTEM_PROMPT = """\
You are tasked with answering a query with associated context. You can access, transform, and \
analyze this context interactively in a REPL environment that can recursively query sub-LLMs, \
which you are strongly encouraged to use as much as possible. You will be queried iteratively \
until you provide a final answer.

{context_description}

The REPL environment is initialized with:
1. A `context` variable that contains extremely important information about your query. Look \
through it (print slices, search it with `re`) before answering.
{functions}
6. `as_records(x=context)`: records with named fields (a list of dicts of str), read from \
`date | user | text` lines, `key: value` blocks, JSON lines, CSV, `key=value` logs or a corpus's \
documents; no model call. `FINAL(value)` ends the run with `str(value)` as the answer; `FINAL_VAR(name)` ends it with \
the value of the variable `name`. `SHOW_VARS()` lists your variables.
7. `print()` to see results. Output longer than {max_output_chars} characters is cut in the \
middle, so print summaries, not whole chunks.

Sub-calls run in parallel on a cluster: a list comprehension such as \
`answers = [llm_query(f"...{{chunk}}") for chunk in chunks]` sends every call at once, so \
prefer one comprehension (or `llm_query_batched`) over a loop that waits for each call. A failed \
sub-call raises an exception you can catch.

The REPL is sandboxed Python: you may import re, json, math, collections, itertools, functools, \
statistics, string, textwrap, datetime, heapq, bisect, and nothing else; names starting with an \
underscore, `open`, `eval`, `exec` and `getattr` are not available; use f-strings instead of \
`str.format`. A block that runs longer than {cell_timeout} is stopped. Variables persist between \
blocks.

Write Python code in ```repl blocks; every block of your reply runs in order and you then see \
its output. For example:
```repl
chunk = context[:10000]
answer = llm_query(f"What is the magic number in this text? Text: {{chunk}}")
print(answer)
```

When you are done, give the final answer in one of these ways:
1. FINAL(your final answer here), at the start of a line of your reply, outside code;
2. FINAL_VAR(variable_name), to answer with the value of a REPL variable;
3. `FINAL(value)` or `FINAL_VAR("name")` called inside a ```repl block.
A FINAL in your reply's text counts only after its code blocks ran without error, so do not \
guess the output of code you have not run yet.

Think step by step, plan, run code, and answer only from what you have actually seen."""

FIRST_TURN = (
    "You have not interacted with the REPL environment or seen your context yet. Your next "
    "action should be to look through the context; don't give a final answer yet.\n\n"
    "Query: {query}"
)
NEXT_TURN = (
    "Continue using the REPL environment (iteration {iteration} of {max_iterations}) to answer "
    "the original query: {query}\nYour next action:"
)
NO_CODE = (
    "Your reply had no ```repl code block and no final answer. Write code in a ```repl block, "
    "or give FINAL(answer) at the start of a line."
)
FINAL_TURN = (
    "You have used all your iterations. Based on everything above, give your final answer to "
    "the query now, as FINAL(your answer). Query: {query}"
)
REPL_LOST = (
    "REPL LOST: the process running your REPL was lost ({reason}) while it ran the code of your "
    "last reply, or just after. A new REPL has been started: every variable you defined is gone "
    "and that code's output was lost; `context` and the REPL functions are available again. "
    "Re-run whatever you still need."
)
# After code that failed with an error already seen in this call (loop.StuckGuard).
STUCK = (
    "STUCK: {what} failed again with the same error as before: {error}\nRunning it again "
    "will fail the same way. {values}Fix the cause: use each value as "
    "the type it is (print type() and a small part of it if unsure), or take another approach."
)


def describe_context(context: Any) -> str:
    """The context's type, total length and chunk lengths, as the paper's prompt states them.

    subtle: a child's context is the parent model's choice, described here outside any clock,
    so its items are measured (`measure.text_length`), never printed, within one budget; a
    context too big for it is described by the items measured, and says so."""
    if hasattr(type(context), "corpus_shape"):  # a corpus view (rlm_ray.corpus): never read here
        return describe_corpus(context.corpus_shape())
    if isinstance(context, str):
        return f"Your context is a str with {len(context):,} total characters."
    budget = measure.Budget()
    if isinstance(context, dict):
        lengths = _measured(context.values(), budget)
        keys = ", ".join(_key(k) for k in _first(context, 20))
        more = f", ... ({len(context)} keys)" if len(context) > 20 else ""
        return (
            f"Your context is a dict with {len(context):,} keys ({keys}{more}) and "
            f"{sum(lengths):,} total characters in {_which(lengths, len(context), 'values')}; "
            f"value lengths: {_lengths(lengths)}."
        )
    lengths = _measured(context, budget)
    count = len(context) if hasattr(context, "__len__") else len(lengths)
    return (
        f"Your context is a {type(context).__name__} of {count:,} chunks with "
        f"{sum(lengths):,} total characters"
        f"{'' if len(lengths) == count else ' in ' + _which(lengths, count, 'chunks')}; "
        f"chunk lengths: {_lengths(lengths)}."
    )


def _measured(items: Any, budget: measure.Budget) -> list[int]:
    """The text lengths of `items` in order, as far as `budget` lasts."""
    lengths = []
    for item in items:
        size = measure.text_length(item, budget)
        if size is None:
            break
        lengths.append(size)
    return lengths


def _which(lengths: list[int], count: int, what: str) -> str:
    if len(lengths) == count:
        return f"its {what}"
    return f"its first {len(lengths):,} {what} (the rest too many to measure here)"


def _first(items: Any, n: int) -> list[Any]:
    """The first `n` of `items` (keys of a dict), without listing them all."""
    return list(itertools.islice(items, n))


CORPUS_API = """\
`context` is a corpus view: its text is the documents joined by a blank line, kept in a \
distributed object store and read only where you touch it. It works like a str for `len(context)` \
(characters), `context[i]`, slicing (`context[a:b]` is another view; nothing is read yet), \
`str(view)`, `print(view)`, f-strings, `+`, `in`, `.split(sep)` and the other str methods (these \
read the view's text: use them on slices of at most a few million characters, not on the whole \
corpus). `for doc in context` and `context.documents` (`len`, `[i]`, `[a:b]`) give documents: views \
with `.doc` (the index), `.id`, `.source` and `.metadata`. `context.chunks()` lists the stored \
chunks as views, `context.chunks(size)` cuts pieces of `size` characters. \
`context.grep(pattern, flags=0, max_matches=1000)` searches the whole corpus with a regex in \
parallel next to the data and returns `Match(doc, start, end, offset, text)` items (`start`/`end` \
in document `doc`, `offset` in `context`; a match never spans two documents). Pass slices, \
documents or chunks themselves to sub-calls, not their text: `llm_query(chunk)`, \
`llm_query([instruction, chunk])` (parts joined by a blank line) and `recursive_llm(query, \
chunk)` send a handle, and the text is read only where the sub-call runs (an f-string with a \
slice inside reads it here first). Example: `answers = [llm_query(["Does this mention X? \
Answer yes or no.", c]) for c in context.chunks()]`."""


def describe_corpus(shape: Any) -> str:
    """The corpus's shape (documents, sizes, chunk lengths) and the API of a corpus `context`."""
    docs = list(shape.document_lengths)
    more = "" if shape.documents <= len(docs) else f", ... {shape.documents - len(docs):,} more"
    part = "" if shape.whole else " (a part of a larger corpus)"
    return (
        f"Your context is a corpus{part} of {shape.documents:,} documents with "
        f"{shape.total_chars:,} total characters, stored as {len(shape.chunk_lengths):,} chunks; "
        f"chunk lengths: {_lengths(list(shape.chunk_lengths))}. Document lengths: "
        f"[{', '.join(str(n) for n in docs)}{more}] (min {shape.min_document_chars:,}, max "
        f"{shape.max_document_chars:,}).\n\n{CORPUS_API}"
    )


def _lengths(lengths: list[int], shown: int = 20) -> str:
    if len(lengths) <= shown:
        return str(lengths)
    head = ", ".join(str(n) for n in lengths[:shown])
    return f"[{head}, ... {len(lengths) - shown} more] (min {min(lengths)}, max {max(lengths)})"


def system_prompt(
    context: Any,
    *,
    can_recurse: bool,
    sub_window_chars: int,
    max_output_chars: int,
    cell_timeout_s: float | None,
    variant: PromptVariant | None = None,
    tools: Sequence[ToolSpec] = (),
) -> str:
    """The system message of a REPL call, from `variant`'s template (default: the paper's),
    with the run's tools listed after it (every variant) when there are any."""
    recursion = (
        "a child RLM with its own REPL and the given context (the prompt itself if none) works "
        "on a sub-task and returns its final answer."
        if can_recurse
        else "at this depth it is one plain sub-LLM call over the query and context."
    )
    timeout = f"{cell_timeout_s:g} s" if cell_timeout_s else "its time limit"
    template = (variant or PAPER).system
    if "{functions}" in template:  # the REPL's sub-call functions, as their kinds declare them
        from rlm_ray import subcall_kinds  # the REPL's modules: only where a prompt is made

        template = template.replace("{functions}", subcall_kinds.prompt_list(first=2))
    text = template.format(
        context_description=describe_context(context),
        sub_window_chars=f"{sub_window_chars:,}",
        recursion_note=recursion,
        max_output_chars=f"{max_output_chars:,}",
        cell_timeout=timeout,
    )
    return f"{text}\n\n{prompt_section(tools)}" if tools else text


# -- variants ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptVariant:
    """One prompt, as data. `system` is a template with the placeholders of `SYSTEM_PROMPT`
    ({context_description}, {functions}, {sub_window_chars}, {recursion_note},
    {max_output_chars}, {cell_timeout}); a template may use any subset. `few_shot` are (user,
    assistant) turns shown between the system message and the query; `stop` ends each REPL
    turn's reply (unless the caller set `stop` in `llm_kwargs`). The turn templates may use {query}, {iteration} and
    {max_iterations}."""

    name: str
    version: int
    system: str
    few_shot: tuple[tuple[str, str], ...] = ()
    stop: tuple[str, ...] = ()
    first_turn: str = FIRST_TURN
    next_turn: str = NEXT_TURN
    error_turn: str | None = None  # after a turn whose code raised; None: `next_turn`
    empty_turn: str | None = None  # after a turn whose code printed nothing; None: `next_turn`
    # Plan turns (rlm_ray/plans) before the code turns when set: after a plan that failed
    # ({feedback}, {query}), and after a choice of code ({query}). None: every turn is code.
    plan_retry: str | None = None
    plan_code: str | None = None

    @property
    def plans(self) -> bool:
        return self.plan_retry is not None and self.plan_code is not None

    def example_text(self) -> str:
        """The text of the worked examples (few-shot turns), where no answer may come from."""
        return "\n".join(part for turn in self.few_shot for part in turn)

    def few_shot_messages(self) -> list[dict[str, str]]:
        messages = []
        for user, assistant in self.few_shot:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        return messages


PAPER = PromptVariant(name="paper", version=3, system=SYSTEM_PROMPT)

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

PROMPTS: dict[str, PromptVariant] = {p.name: p for p in (PAPER, SMALL, SMALL_CODE, SMALL_PLANS)}


def first_turn(
    variant: PromptVariant, context: Any, query: str = "", lists: dict | None = None
) -> str:
    """The variant's first-turn template with the context described (and previewed, its
    records and their fields listed, the records the query names pointed out, if the template
    asks), `{query}` still to fill. `lists`: the record lists, if already read."""
    text = variant.first_turn
    fills = (
        ("example", lambda context: plan_prompt.USER_TASK),
        ("records", lambda context: plan_records.describe(lists or record_lists(context))),
        ("context_description", describe_context),
        ("context_preview", preview),
        ("narrowing", lambda context: narrowing.hint(query, context)),
        ("approach", lambda context: approach(query)),
    )
    for name, fill in fills:
        if "{" + name + "}" in text:
            text = text.replace(
                "{" + name + "}", fill(context).replace("{", "{{").replace("}", "}}")
            )
    return text


def preview(context: Any, chars: int = 300) -> str:
    """The start of the context, so a small model sees what a record looks like: a str's first
    lines, a list's first items, a corpus's first characters (one chunk read)."""
    if hasattr(type(context), "corpus_shape"):  # a corpus view: read only its start
        context = str(context[:chars])
    if isinstance(context, str):
        lines = context[:chars].split("\n")
        if len(lines) > 1 and len(context) > chars:
            lines = lines[:-1]  # a whole line or none
        head = "\n".join(lines[:4])
        return "It begins:\n" + (head if len(head) < len(context) else head.rstrip())
    if isinstance(context, dict):  # each item's start only: it may be huge (`measure`)
        entries = _first(context.items(), 3)
        items = [f"{_key(k)}: {_head(v)!r}" for k, v in entries]
        return "The first entries:\n" + "\n".join(items)
    items = [f"[{i}] {_head(item)!r}" for i, item in enumerate(_first(context, 3))]
    return "The first items:\n" + "\n".join(items)


def _head(value: Any) -> str:
    return measure.text_head(value, 100)


def _key(key: Any) -> str:
    """A dict key as the prompt shows it: its repr, cut to 100 characters."""
    return repr(key[:100]) if type(key) is str else measure.text_head(key, 100)


def choose(model: str, name: str | None = None) -> PromptVariant:
    """The variant named `name`, else the one for `model` (small local models get "small")."""
    if name is not None:
        if name not in PROMPTS:
            raise ConfigError(f"unknown prompt {name!r}; known prompts: {sorted(PROMPTS)}")
        return PROMPTS[name]
    from rlm_ray.local.local_model import is_local

    return SMALL if is_local(model) else PAPER
