"""All the Ray wiring: gateways for model calls, REPL workers for RLM calls, the pool that admits them.

    driver ──put context once──> object store                                   (driver.py)
       │ pool.run_call(spec)                                   (REPLPool: async actor, num_cpus=0)
       ▼
    REPLPool ── waits for a slot at the call's depth, picks a warm REPLWorker ──┐  (pool.py)
                                                                                ▼
    REPLWorker.run(spec)  (sync actor, one call at a time: `call.run_call` runs here)  (worker.py)
       ├─ root turns and llm_query ──> LLMGateway.complete   (async actors)       (gateway.py)
       └─ recursive_llm ─────────────> REPLPool.run_call(child spec, depth + 1)   (backend.py)

Each actor is a plain class with its `ray.remote(...)` wrapper beside it. Gateways restart
elsewhere when their node goes, and Ray re-sends their in-flight model calls
(`max_task_retries`); a lost REPL worker's call goes on in a new one from its checkpoint.
Tool calls (`RLM(tools=...)`) go from `RayBackend` to a `ToolHost` actor per node
(`tool_host.py`). This package is the only one that imports Ray, with `corpus.store`, `admission` and
`model_servers`.
"""

from rlm_ray.call import CallSpec, Checkpoint, Restart
from rlm_ray.runtime.backend import RayBackend, unwrap, whereabouts
from rlm_ray.runtime.driver import (
    Runtime,
    ensure_ray,
    forget_runtimes,
    get_runtime,
    new_run_id,
    run_root,
)
from rlm_ray.runtime.gateway import LLMGateway
from rlm_ray.runtime.pool import REPLPool
from rlm_ray.runtime.worker import REPLWorker

__all__ = [
    "CallSpec",
    "Checkpoint",
    "LLMGateway",
    "REPLPool",
    "REPLWorker",
    "RayBackend",
    "Restart",
    "Runtime",
    "ensure_ray",
    "forget_runtimes",
    "get_runtime",
    "new_run_id",
    "run_root",
    "unwrap",
    "whereabouts",
]
