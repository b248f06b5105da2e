"""The threads tool calls run on: a call past its time limit is given up on, and the threads
of calls that never return cannot pile up.

A tool runs on a thread of its own so that its caller can stop waiting at the tool's
`timeout_s`. A Python thread cannot be killed: one stuck in its tool stays until the tool
returns. `ToolThreads` holds at most `limit` of them (stuck ones included); when every place
is held, a new call waits for one up to its own time limit, then fails without running
(`ToolBusy`), and the model's code gets that error.

No Ray here: the tool hosts (`runtime/tool_host.py`) and the in-process backend use it.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

MAX_TOOL_THREADS = 256
"""Tool threads one process holds at most, stuck ones included."""


class ToolBusy(Exception):
    """Every thread of the process is taken by a tool call that has not returned."""


class ToolThreads:
    """The threads a process runs tool calls on, at most `limit` alive at once.

    subtle: a place is given back when the tool returns, not when its caller stops waiting:
    that is what keeps tools that hang from leaving a thread behind at every call."""

    def __init__(self, limit: int = MAX_TOOL_THREADS) -> None:
        self.limit = limit
        self._places = threading.BoundedSemaphore(limit)

    def call(
        self, fn: Callable[..., Any], bound: inspect.BoundArguments, timeout_s: float | None
    ) -> Any:
        """`fn(*bound)` (awaited if it is a coroutine function), given at most `timeout_s`
        (`None`: in the caller's thread, without a limit)."""
        if timeout_s is None:
            return _invoke(fn, bound)
        deadline = time.monotonic() + timeout_s
        if not self._places.acquire(timeout=timeout_s):
            raise ToolBusy(
                f"the tool did not start: all {self.limit} tool threads of its host are held by "
                "calls that have not returned (tools stuck past their time limit keep theirs)"
            )
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = _invoke(fn, bound)
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc
            finally:
                self._places.release()

        thread = threading.Thread(target=target, name="rlm-tool", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._places.release()
            raise
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise TimeoutError(f"the tool did not return within {timeout_s:g} s")
        if "error" in box:
            raise box["error"]
        return box["value"]


PROCESS_THREADS = ToolThreads()
"""The threads of this process's tool calls, unless the caller brings its own."""


def _invoke(fn: Callable[..., Any], bound: inspect.BoundArguments) -> Any:
    value = fn(*bound.args, **bound.kwargs)
    return asyncio.run(_awaited(value)) if inspect.isawaitable(value) else value


async def _awaited(value: Any) -> Any:
    return await value
