"""What the model reads: the system prompt, the context description and the turn messages.

Prompts are data: a `PromptVariant` (name, version, system text, few-shot turns, stop sequences,
turn messages), registered in `PROMPTS` and documented in docs/prompts.md. "paper" follows the
paper's prompt (arXiv:2512.24601, App. D) adapted to rlm-ray's REPL (parallel fan-out,
`recursive_llm`, the sandbox's rules) and is the default; "small" is for small local models
(`model="local"`), which need a worked example, one code block per turn and stop sequences.
"""

from __future__ import annotations

import itertools
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
_SMALL_NO_HELPERS = """- no helper model: llm_query, llm_map, llm_filter and llm_classify are not for this task; decide everything with code.

To find a fact (a code, a name, a number), search the text with re or str.find and print short parts."""
_SMALL_END = """ If `context` is a list, each item is one record. When the printed output answers the query, reply with one line: FINAL(answer). Never write output yourself and never guess."""
SMALL_CODE_SYSTEM = _SMALL_INTRO + _SMALL_NO_HELPERS + _SMALL_END

# {context_description} and {context_preview} are filled per call (`first_turn`), so the real
# first turn reads like the example's and the model sees what a record looks like. The system
# text and the examples hold nothing of the run's context: they are the same for every run, and
# a server that caches prompts (llama.cpp) reads them once, not once a run.
SMALL_FIRST_TURN = (
    "{example}{context_description}\n{context_preview}\nQuery: {query}\n{narrowing}"
    "{approach} Your first ```repl block:"
)
# The advice of the code-only prompt's first turn. Until `small` v11 the first turn's advice was
# chosen by regular expressions over the query's English (count / rank / filter); since v12 the
# model chooses, under a schema its server enforces, between a plan and code (plan_prompt.py).
APPROACH_ANY = (
    "(A fact to find: search the text with re. Records to count or pick by their meaning: "
    "llm_classify.)"
)
SMALL_NEXT_TURN = plan_prompt.NEXT_TURN
SMALL_EMPTY_TURN = (
    "Your code printed nothing, so nothing is known yet (a search that finds nothing does not "
    "mean 0: the query's words may not be in the records). Write a ```repl block that prints "
    "what answers the query: {query}"
)
SMALL_ERROR_TURN = (
    "Your code failed with the error above: nothing is known yet. Write a corrected ```repl "
    "block for the query: {query}"
)

# The search example's data are made up for it (a vault log), and it is marked as an example,
# so that it cannot be taken for the user's data.
_SEARCH_QUERY = "What is the access code of the vault?"
_SMALL_EXAMPLE_SEARCH = (
    SMALL_FIRST_TURN.format(
        example=plan_prompt.EXAMPLE,
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
    plan_prompt.SEARCH[1][1],
)
_SMALL_EXAMPLE_SEARCH_DONE = plan_prompt.SEARCH[2]

# Plans (issue 27): the first turn is JSON under the plan schema, a plan or a choice of code;
# a plan compiles into the cell the runtime runs (rlm_ray/plans). The code turns after a choice
# of code are v11's, without the count examples (a plan does what they showed).
SMALL = PromptVariant(
    name="small",
    version=12,
    system=plan_prompt.SYSTEM,
    few_shot=plan_prompt.FEW_SHOT,
    # Without these, small models write the "output" of their code themselves and trust it.
    stop=("Output of code block", "\nUser:", "\n```\n"),
    first_turn=plan_prompt.FIRST_TURN,
    next_turn=SMALL_NEXT_TURN,
    error_turn=SMALL_ERROR_TURN,
    empty_turn=SMALL_EMPTY_TURN,
    plan_retry=plan_prompt.RETRY,
    plan_code=plan_prompt.CODE_TURN,
)

# "small" without sub-calls: the model has only code (the benchmark's "RLM without sub-calls").
SMALL_CODE = PromptVariant(
    name="small-code",
    version=8,
    system=SMALL_CODE_SYSTEM,
    few_shot=(_SMALL_EXAMPLE_SEARCH, _SMALL_EXAMPLE_SEARCH_DONE),
    stop=SMALL.stop,
    first_turn=SMALL_FIRST_TURN.replace("{approach}", APPROACH_ANY),
    next_turn=SMALL_NEXT_TURN,
    error_turn=SMALL_ERROR_TURN,
    empty_turn=SMALL_EMPTY_TURN,
)

PROMPTS: dict[str, PromptVariant] = {p.name: p for p in (PAPER, SMALL, SMALL_CODE)}


def first_turn(
    variant: PromptVariant, context: Any, query: str = "", lists: dict | None = None
) -> str:
    """The variant's first-turn template with the context described (and previewed, its
    records and their fields listed, the records the query names pointed out, if the template
    asks), `{query}` still to fill. `lists`: the record lists, if already read."""
    text = variant.first_turn
    fills = (
        ("example", lambda context: plan_prompt.USER_TASK),
        ("context_description", describe_context),
        ("records", lambda context: plan_records.describe(lists or record_lists(context))),
        ("context_preview", preview),
        ("narrowing", lambda context: narrowing.hint(query, context)),
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
