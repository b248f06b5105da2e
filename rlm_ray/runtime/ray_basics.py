"""Three small Ray facts every runtime module needs, with nothing of rlm-ray's imported:

unwrap(exc)            the rlm-ray error inside a Ray task error
whereabouts()          the node, actor and process this code runs in (for the trace)
watched(root, watcher) the root call's result while a callback loop runs beside it
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import ray
from ray.exceptions import RayTaskError


def unwrap(exc: BaseException) -> BaseException:
    """The rlm-ray error inside a Ray task error, if there is one."""
    while isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    return exc


def whereabouts() -> tuple[str, str, int]:
    """(node id, actor id, pid) of this process, for the trace."""
    ctx = ray.get_runtime_context()
    return ctx.get_node_id(), ctx.get_actor_id() or "", os.getpid()


async def watched(root: asyncio.Future, watcher: asyncio.Future) -> Any:
    """The root call's result, while `watcher` (a loop calling the user's callback: progress,
    tool approvals) runs beside it. A watcher ends only by raising: then the tree is stopped
    and the callback's error propagates."""
    await asyncio.wait({root, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if not root.done():  # the callback raised: stop the tree, then raise its error
        root.cancel()
        await asyncio.gather(root, return_exceptions=True)
        watcher.result()
    return root.result()
