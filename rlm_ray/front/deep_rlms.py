"""The deep `RLM`s (`max_depth > 1`) alive in this process, weakly held.

    deep_rlms.announce(rlm)     `RLM.__init__`: remember it while it lives
    deep_rlms.configs()         the configs of those alive now

Why: a deep run's first `recursive_llm` children wait seconds for REPL worker processes started
when that run begins (docs/benchmarks.md, "First deeper run"). A runtime started by any run of
this process, a depth-1 run of another `RLM` included, starts the children's workers of the deep
`RLM`s made so far as well (`runtime.driver`), so that they are up when a deep run comes.

No Ray here: `RLM(...)` stays cheap and imports nothing of the runtime.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from rlm_ray.config import RLMConfig

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()
_LOCK = threading.Lock()


def announce(rlm: Any) -> None:
    """Remember `rlm` (anything with a `config`) while it lives, if it may go deeper than its root."""
    if rlm.config.max_depth > 1:
        with _LOCK:
            _LIVE.add(rlm)


def configs() -> list[RLMConfig]:
    """The configs of the deep `RLM`s alive now (read now: a config may be replaced)."""
    with _LOCK:
        alive = list(_LIVE)
    return [rlm.config for rlm in alive]
