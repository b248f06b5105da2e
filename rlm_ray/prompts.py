"""What the model reads: the system prompt, the context description and the turn messages.

Prompts are data: `SYSTEM_PROMPT` follows the paper's prompt (arXiv:2512.24601, App. D) adapted to
rlm-ray's REPL (parallel fan-out, `recursive_llm`, the sandbox's rules).
"""

from __future__ import annotations

from typing import Any

SYSTEM_PROMPT = """\
You are tasked with answering a query with associated context. You can access, transform, and \
analyze this context interactively in a REPL environment that can recursively query sub-LLMs, \
which you are strongly encouraged to use as much as possible. You will be queried iteratively \
until you provide a final answer.

{context_description}

The REPL environment is initialized with:
1. A `context` variable that contains extremely important information about your query. Look \
through it (print slices, search it with `re`) before answering.
2. `llm_query(prompt, model=None) -> str`: one call to a sub-LLM that can handle around \
{sub_window_chars} characters. Use it to read and analyze chunks of the context.
3. `llm_query_batched(prompts, model=None) -> list[str]`: many `llm_query` calls at once.
4. `recursive_llm(query, context=None) -> str` (alias `rlm_query(prompt, context=None, \
model=None)`) and `rlm_query_batched(prompts, contexts=None, model=None)`: {recursion_note}
5. `FINAL(value)` ends the run with `str(value)` as the answer; `FINAL_VAR(name)` ends it with \
the value of the variable `name`. `SHOW_VARS()` lists your variables.
6. `print()` to see results. Output longer than {max_output_chars} characters is cut in the \
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
PLAIN_CALL = "{query}\n\nContext:\n{context}"


def describe_context(context: Any) -> str:
    """The context's type, total length and chunk lengths, as the paper's prompt states them."""
    if isinstance(context, str):
        return f"Your context is a str with {len(context):,} total characters."
    if isinstance(context, dict):
        lengths = [len(str(v)) for v in context.values()]
        keys = ", ".join(repr(k) for k in list(context)[:20])
        more = f", ... ({len(context)} keys)" if len(context) > 20 else ""
        return (
            f"Your context is a dict with {len(context):,} keys ({keys}{more}) and "
            f"{sum(lengths):,} total characters in its values; value lengths: "
            f"{_lengths(lengths)}."
        )
    lengths = [len(str(item)) for item in context]
    return (
        f"Your context is a {type(context).__name__} of {len(lengths):,} chunks with "
        f"{sum(lengths):,} total characters; chunk lengths: {_lengths(lengths)}."
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
) -> str:
    recursion = (
        "a child RLM with its own REPL and the given context (the prompt itself if none) works "
        "on a sub-task and returns its final answer."
        if can_recurse
        else "at this depth it is one plain sub-LLM call over the query and context."
    )
    timeout = f"{cell_timeout_s:g} s" if cell_timeout_s else "its time limit"
    return SYSTEM_PROMPT.format(
        context_description=describe_context(context),
        sub_window_chars=f"{sub_window_chars:,}",
        recursion_note=recursion,
        max_output_chars=f"{max_output_chars:,}",
        cell_timeout=timeout,
    )


def plain_call_prompt(query: str, context: Any) -> str:
    """The one user message of a call made without a REPL (at the depth limit)."""
    if context is None:
        return query
    return PLAIN_CALL.format(query=query, context=context_text(context))


def context_text(context: Any) -> str:
    if isinstance(context, str):
        return context
    if isinstance(context, dict):
        return "\n".join(f"{k}: {v}" for k, v in context.items())
    return "\n".join(str(item) for item in context)
