"""Whether a final answer may end a call: not longer than `max_answer_chars`, and not text
copied from the prompt's worked examples.

A small model answered "What did Sofia Rossi complain about?" with a record of the `small`
prompt's example (made-up data), not of the user's (issue 30). An answer is refused as a copy
only when the examples hold its words and neither the query, nor any output or error of the
call's cells, nor the context does: the same words in the user's data are an answer. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

MIN_COPY_CHARS = 8
"""Shorter answers ("yes", "12", a name) are too common to call a copy."""


def plain_words(text: str) -> str:
    """Lower case words and numbers, one space apart: how answers and sources are compared."""
    return " ".join(re.findall(r"[a-z0-9]+", text.casefold()))


def too_long(answer: str, max_chars: int | None) -> str | None:
    """Why an answer is refused for its length (None: it is not)."""
    if max_chars is None or len(answer) <= max_chars:
        return None
    return (
        f"the answer is {len(answer):,} characters, over the limit of {max_chars:,} "
        "(`max_answer_chars`); answer with less: a summary, or the first part and how much "
        "more there is"
    )


def copied(
    answer: str, examples: str, seen: Callable[[], Iterable[str]], in_context: Callable[[str], bool]
) -> str | None:
    """Why `answer` is refused as text of the worked `examples` (None: it is not). `seen` gives
    the query and the call's outputs so far; `in_context` says whether the context holds it."""
    words = plain_words(answer)
    if len(words) < MIN_COPY_CHARS or not re.search(r"[a-z]", words) or not examples:
        return None
    if words not in plain_words(examples) or any(words in plain_words(s) for s in seen()):
        return None
    if in_context(answer):
        return None
    shown = answer if len(answer) <= 80 else answer[:77] + "..."
    return (
        f"{shown!r} is text from the worked examples of your instructions (made-up data), not "
        "from the user's data or the output of your code. Find the answer in `context`"
    )
