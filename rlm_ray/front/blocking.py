"""`run_blocking`: an async method's result for blocking code (`RLM.completion`,
`Session.completion`, `rlm_ray.ops`), also from a thread that runs an event loop already (a
notebook), where `asyncio.run` is not allowed: the coroutine then gets a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make()` to its end and return its result (or raise its error)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    return _in_thread(lambda: asyncio.run(make()))


def _in_thread(fn: Callable[[], T]) -> T:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="rlm-ray-completion")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
