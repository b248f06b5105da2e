"""What the prompt and the trace show of tools: the system prompt's paragraph, and previews of
a call's arguments and result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rlm_ray.tools import ToolSpec

_PREVIEW_CHARS = 1000


def preview(value: Any, chars: int = _PREVIEW_CHARS) -> str:
    """Plain data as JSON (else its repr), cut to `chars`."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= chars else text[: chars - 3] + "..."


def prompt_section(specs: Iterable[ToolSpec]) -> str:
    """The system prompt's paragraph on tools (empty without tools)."""
    lines = [s.describe() for s in specs]
    if not lines:
        return ""
    return (
        "Tools: these functions are also available in the REPL. Each runs outside the REPL and "
        "returns its result when called; pass plain data (str, numbers, bool, None, lists, "
        "tuples, dicts) and get plain data back. A list comprehension of tool calls runs them "
        "in parallel. A failed or refused tool call raises SubCallError. Effects: none = only "
        "computes; read = reads outside data; write = changes something outside and runs only "
        "if the user allowed it.\n" + "\n".join(lines)
    )
