"""The one user message of a call made without a REPL: the root at `max_depth=0`, and
`recursive_llm` / `rlm_query` at the depth limit (a plain sub-model call over query and context).

Standard library only: the sub-call kinds (rlm_ray/subcall_kinds/) and the prompts both use it.
"""

from __future__ import annotations

from typing import Any

PLAIN_CALL = "{query}\n\nContext:\n{context}"


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
