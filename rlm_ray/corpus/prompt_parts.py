"""Prompts that hold corpus views: made, measured, refused when too long, and rendered.

A sub-call's prompt may be a str, a view or a list of both (`prompt_parts`). Views stay views
until the model call is made (`render`, in the gateway): a prompt's size is counted from the
views' offsets (`prompt_chars`), so an oversized one is refused before any text is read.
"""

from __future__ import annotations

from typing import Any

from rlm_ray.corpus.chunks import SEPARATOR
from rlm_ray.corpus.view import Corpus


def prompt_parts(value: Any, fn: str) -> str | list[str | Corpus]:
    """A prompt for `llm_query`: a str, a corpus view, or a list of str and views (joined by a
    blank line). Views stay views: they become text only where the model call is made."""
    if isinstance(value, str):
        return value
    if isinstance(value, Corpus):
        return [value]
    if isinstance(value, (list, tuple)):
        parts: list[str | Corpus] = []
        for i, item in enumerate(value):
            if not isinstance(item, (str, Corpus)):
                raise TypeError(
                    f"{fn}: prompt parts must be str or corpus slices, got {type(item).__name__}"
                )
            parts += [SEPARATOR, item] if i else [item]
        return parts
    raise TypeError(
        f"{fn}: `prompt` must be a str, a corpus slice or a list of them, got "
        f"{type(value).__name__}"
    )


PROMPT_CHARS_PER_TOKEN = 8
"""The most characters a prompt may hold per token of its model's window: twice the ~4 of
English text, so no prompt the model could read is refused, and none far larger is ever made."""


def prompt_chars(prompt: Any) -> int:
    """The length of a prompt's text (a str, or parts made by `prompt_parts`), read from the
    views' offsets: nothing is read or joined."""
    if isinstance(prompt, str):
        return len(prompt)
    return sum(len(part) for part in prompt)


def max_prompt_chars(window_tokens: int) -> int:
    """The longest prompt a model with this context window is sent."""
    return window_tokens * PROMPT_CHARS_PER_TOKEN


def check_prompt_size(prompt: Any, window_tokens: int, fn: str) -> None:
    """Refuse a prompt longer than the model's window allows, before its text is made: views
    are counted by their offsets (`[context] * 2000` is 2000 times its length, read never)."""
    size, limit = prompt_chars(prompt), max_prompt_chars(window_tokens)
    if size > limit:
        raise ValueError(
            f"{fn}: the prompt is {size:,} characters, more than the model's window of "
            f"{window_tokens:,} tokens takes (at most {limit:,} characters): pass a smaller "
            "slice, or split the text over several calls (e.g. context.chunks(size))"
        )


def render(prompt: Any) -> str:
    """The text of a prompt made by `prompt_parts` (reads the views' chunks here)."""
    if isinstance(prompt, str):
        return prompt
    return "".join(str(part) for part in prompt)


def preview(prompt: Any, chars: int) -> str:
    """A short description of a prompt for traces, without reading any view."""
    if isinstance(prompt, str):
        return prompt[:chars]
    text = "".join(
        p if isinstance(p, str) else f"<corpus [{p._start:,}:{p._stop:,}], {len(p):,} chars>"
        for p in prompt
    )
    return text[:chars]
