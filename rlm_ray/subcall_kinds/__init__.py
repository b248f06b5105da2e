"""The model-facing functions that make sub-calls, one declaration per kind (`SubCallKind`,
declare.py): its name, the function, what the prompt says of it, the backend methods it sends
through, what it traces and how a replay treats it. Everything else is derived from `KINDS`:

    SUBCALL_NAMES       the names the REPL injects and the sandbox plans fan-out around
    functions(repl)     the REPL's functions, each kind bound to that REPL
    prompt_list(first)  the paper prompt's numbered list of them (prompts.py's `{functions}`)
    BACKEND_METHODS     what every `subcalls.Backend` must implement (a test checks the backends)

A new kind is one entry here (its function and declaration in queries.py, records.py or a
module of its own) plus, if it sends work a new way, that method on the backends
(runtime/backend.py, testing/thread_backend.py, session_repl.ToolReplay). The REPL's other
names (`FINAL`, `FINAL_VAR`, `SHOW_VARS`, the run's tools) make no sub-calls of a kind and stay
in repl.py; tool names must not shadow these (tools.py reserves them; a test checks).

    queries.py    llm_query, llm_query_batched, recursive_llm, rlm_query, rlm_query_batched
    records.py    llm_map, llm_filter, llm_classify, llm_count
    cascades.py   the approximate operators' cascades over the backend (docs/cascades.md)
    arguments.py  the checks on what model code passes
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlm_ray.subcall_kinds.declare import (
    SENDS,
    Host,
    PromptItem,
    SubCallKind,
    bind,
    join_shown,
)
from rlm_ray.subcall_kinds.queries import (
    LLM_QUERY,
    LLM_QUERY_BATCHED,
    RECURSIVE_LLM,
    RLM_QUERY,
    RLM_QUERY_BATCHED,
)
from rlm_ray.subcall_kinds.records import LLM_CLASSIFY, LLM_COUNT, LLM_FILTER, LLM_MAP

KINDS: tuple[SubCallKind, ...] = (
    LLM_QUERY,
    LLM_QUERY_BATCHED,
    RECURSIVE_LLM,
    RLM_QUERY,
    RLM_QUERY_BATCHED,
    LLM_MAP,
    LLM_FILTER,
    LLM_CLASSIFY,
    LLM_COUNT,
)

SUBCALL_NAMES: tuple[str, ...] = tuple(kind.name for kind in KINDS)
BACKEND_METHODS: frozenset[str] = frozenset(
    {"fetch", "cancel", "note", "start_tool"} | {m for kind in KINDS for m in kind.sends}
)


def functions(repl: Host) -> dict[str, Callable[..., Any]]:
    """Every kind's function bound to `repl`, by name."""
    return {kind.name: bind(kind, repl) for kind in KINDS}


def prompt_list(first: int) -> str:
    """The numbered items of the kinds, from `first` on, in the order of `KINDS`: each item's
    lead, what its kinds say ("A, B and C"), its tail; one line per item. The text may hold the
    system prompt's placeholders ({sub_window_chars}, {recursion_note})."""
    items: dict[int, tuple[PromptItem, list[str]]] = {}
    for kind in KINDS:
        item, shown = items.setdefault(id(kind.item), (kind.item, []))
        if kind.shown:
            shown.append(kind.shown)
    lines = [
        f"{number}. {item.lead}{join_shown(shown)}{item.tail}"
        for number, (item, shown) in enumerate(items.values(), first)
    ]
    return "\n".join(lines)


__all__ = [
    "BACKEND_METHODS",
    "KINDS",
    "SENDS",
    "SUBCALL_NAMES",
    "SubCallKind",
    "functions",
    "prompt_list",
]
