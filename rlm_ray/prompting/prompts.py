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
from collections.abc import Sequence
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.plans import records as plan_records
from rlm_ray.plans.records import record_lists
from rlm_ray.prompting import narrowing, plan_prompt
from rlm_ray.prompting.small_prompt import SMALL, SMALL_CODE, SMALL_PLANS, approach
from rlm_ray.prompting.variant import PromptVariant
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
PAPER = PromptVariant(name="paper", version=3, system=SYSTEM_PROMPT)

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
