"""The one gate before a tool runs (`authorize`), and running a call through it (`run_tool`).

A ``write`` call runs only if the caller's `approve` said True, else if `allow_effects` is set.
The gate reads a call's effects from the registered function's own `@tool` mark, never from the
message the REPL sent. A program's replay gets its own settings (`replay_settings`): it never
inherits a permission for ``write`` tools.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from rlm_ray.tooling.threads import PROCESS_THREADS, ToolBusy, ToolThreads
from rlm_ray.tools import ToolCall, ToolMark, ToolResult, ToolSettings, declared_mark


class ToolRefused(Exception):
    """A tool call that `authorize` did not let run."""


def replay_settings(settings: ToolSettings | None, allow_effects: bool) -> ToolSettings | None:
    """The tool settings of a program's replay: the RLM's tools as they are, but a replay never
    inherits a permission for `write` tools. Only this replay's `allow_effects` (from
    `program.run(..., allow_effects=True)` / `rlm-ray replay --allow-effects`) lets them run;
    the RLM's `approve` callback is not asked. A refused `write` call fails its cell, and the
    replay stops with a `ProgramError` naming that cell (`authorize` is the gate)."""
    if settings is None:
        return None
    return dataclasses.replace(settings, allow_effects=allow_effects, ask=False)


def authorize(
    call: ToolCall, allow_effects: bool, approve: Callable[[ToolCall], Any] | None
) -> str:
    """The one gate before a tool runs: how the call is allowed ("none", "read",
    "allow_effects", "approved"), or `ToolRefused`. A `write` call runs only if `approve` (when
    given) returns True, else if `allow_effects` is set."""
    if call.effects != "write":
        return call.effects
    if approve is not None:
        if approve(call) is True:
            return "approved"
        raise ToolRefused(
            f"tool `{call.name}` (effects='write') was refused: the caller's approve() said no"
        )
    if allow_effects:
        return "allow_effects"
    raise ToolRefused(
        f"tool `{call.name}` (effects='write') was refused: write tools run only when the "
        "caller allows them (RLM(allow_effects=True) or an approve callback)"
    )


def run_tool(
    functions: Mapping[str, Callable[..., Any]],
    call: ToolCall,
    *,
    allow_effects: bool,
    approve: Callable[[ToolCall], Any] | None,
    plain: Callable[[Any, str], Any],
    threads: ToolThreads | None = None,
) -> ToolResult:
    """Authorize `call`, run its function on one of `threads` (default: the process's) and
    return its result as plain data (`plain`: the boundary's copy). A refusal or an exception
    in the tool is a `ToolResult` with `error`."""
    result = ToolResult(started_s=time.time(), pid=os.getpid())
    fn = functions.get(call.name)
    if fn is None:
        result.error, result.ended_s = f"tool `{call.name}` is not available here", time.time()
        return result
    mark = _mark_of(fn)
    # subtle: the effects are the registered function's own, not the ones the REPL sent: a
    # REPL process is where model code runs, and it must not be able to call a `write` tool
    # a "read" one (approve() sees the real effects too).
    call = dataclasses.replace(call, effects=mark.effects)
    try:
        result.decision = authorize(call, allow_effects, approve)
    except ToolRefused as exc:
        result.error, result.refused, result.ended_s = str(exc), True, time.time()
        return result
    try:
        real = inspect.signature(fn)
        given = inspect.BoundArguments(real, dict(call.arguments))  # type: ignore[arg-type]
        bound = real.bind(*given.args, **given.kwargs)  # checked again, on the real signature
        result.ran = True
        value = (threads or PROCESS_THREADS).call(fn, bound, mark.timeout_s)
        result.value = plain(value, f"tool `{call.name}`: its result")
    except ToolBusy as exc:  # it never started
        result.ran, result.error = False, str(exc)
    except (Exception, SystemExit) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.ended_s = time.time()
    return result


def _mark_of(fn: Callable[..., Any]) -> ToolMark:
    # `tool_settings` takes only marked functions; anything else is taken at its most dangerous
    return declared_mark(fn) or ToolMark("write")
