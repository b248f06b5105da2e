"""The model calls of the RLM papers: `llm_query`, `llm_query_batched`, `recursive_llm` /
`rlm_query`, `rlm_query_batched`. Each starts its calls at once and returns `SubCallFuture`s
(core/futures.py), so a comprehension has every call in flight before the first is awaited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlm_ray import corpus
from rlm_ray.core.futures import SubCallFuture
from rlm_ray.prompting.plain_prompt import plain_call_prompt
from rlm_ray.sandbox.boundary import plain
from rlm_ray.subcall_kinds.arguments import chosen_model, list_arg, text_arg, window
from rlm_ray.subcall_kinds.declare import Host, PromptItem, SubCallKind


def llm_query(repl: Host, prompt: Any, model: str | None = None) -> SubCallFuture:
    """One plain sub-model call; returns its reply text (computed in the background).

    `prompt` may be a corpus slice, or a list of str and slices (joined by a blank line):
    slices travel as handles and become text only where the model call is made.
    """
    model = chosen_model(repl, model)
    parts = corpus.prompt_parts(plain(prompt, "llm_query: `prompt`"), "llm_query")
    corpus.check_prompt_size(parts, window(repl, model), "llm_query")
    return repl.subcalls.llm(parts, model)


def llm_query_batched(repl: Host, prompts: Sequence[Any], model: str | None = None) -> list:
    """Many `llm_query` calls at once, in order."""
    items = list_arg("llm_query_batched", "prompts", prompts)
    return [llm_query(repl, p, model) for p in items]


def recursive_llm(repl: Host, query: Any, context: Any = None) -> SubCallFuture:
    """A child RLM over `context` (the query itself if None); its final answer."""
    return rlm_query(repl, query, context)


def rlm_query(
    repl: Host, prompt: Any, context: Any = None, model: str | None = None
) -> SubCallFuture:
    """A child RLM over `context` (the prompt itself if None); at the depth limit, one plain
    sub-model call over prompt and context."""
    model = chosen_model(repl, model)
    prompt = text_arg("rlm_query", "prompt", prompt)
    context = None if context is None else plain(context, "rlm_query: `context`")
    if repl.settings.can_recurse:  # a child RLM; with no context, its context is the prompt
        return repl.subcalls.rlm(prompt, prompt if context is None else context, model)
    parts: str | list = (  # one plain call; a slice travels as a handle
        [plain_call_prompt(prompt, ""), context]
        if isinstance(context, corpus.Corpus)
        else plain_call_prompt(prompt, context)
    )
    corpus.check_prompt_size(parts, window(repl, model), "rlm_query")
    return repl.subcalls.llm(parts, model)


def rlm_query_batched(
    repl: Host,
    prompts: Sequence[Any],
    contexts: Sequence[Any] | None = None,
    model: str | None = None,
) -> list:
    """Many `rlm_query` calls at once, in order (`contexts`: one per prompt, or None)."""
    items = list_arg("rlm_query_batched", "prompts", prompts)
    ctxs = (
        [None] * len(items)
        if contexts is None
        else list_arg("rlm_query_batched", "contexts", contexts)
    )
    if len(ctxs) != len(items):
        raise ValueError(f"rlm_query_batched: {len(items)} prompts but {len(ctxs)} contexts")
    return [rlm_query(repl, p, c, model) for p, c in zip(items, ctxs)]


# -- the declarations ------------------------------------------------------------------------------

_ALONE = PromptItem()
_CHILDREN = PromptItem(tail=": {recursion_note}")
_LLM, _RLM = ("start_llm",), ("start_rlm", "start_llm")

LLM_QUERY = SubCallKind(
    name="llm_query",
    call=llm_query,
    item=_ALONE,
    shown="`llm_query(prompt, model=None) -> str`: one call to a sub-LLM that can handle around "
    "{sub_window_chars} characters. Use it to read and analyze chunks of the context.",
    sends=_LLM,
    traced=("llm",),
)
LLM_QUERY_BATCHED = SubCallKind(
    name="llm_query_batched",
    call=llm_query_batched,
    item=PromptItem(),
    shown="`llm_query_batched(prompts, model=None) -> list[str]`: many `llm_query` calls at once.",
    sends=_LLM,
    traced=("llm",),
)
RECURSIVE_LLM = SubCallKind(
    name="recursive_llm",
    call=recursive_llm,
    item=_CHILDREN,
    shown="`recursive_llm(query, context=None) -> str` (alias `rlm_query(prompt, context=None, "
    "model=None)`)",
    sends=_RLM,
    traced=("rlm", "llm"),  # "llm": one plain call at the depth limit
)
RLM_QUERY = SubCallKind(
    name="rlm_query",
    call=rlm_query,
    item=_CHILDREN,
    shown="",  # named with `recursive_llm`, as its alias
    sends=_RLM,
    traced=("rlm", "llm"),
)
RLM_QUERY_BATCHED = SubCallKind(
    name="rlm_query_batched",
    call=rlm_query_batched,
    item=_CHILDREN,
    shown="`rlm_query_batched(prompts, contexts=None, model=None)`",
    sends=_RLM,
    traced=("rlm", "llm"),
)
