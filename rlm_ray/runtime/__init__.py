"""All the Ray wiring: gateways for model calls, REPL workers for RLM calls, the pool that admits them.

    RLM / Session / ops ──> Launcher: Ray, servers, spec, tools, secrets      (run.py,
                                      a session's pinned worker              pinned_session.py)
    driver ──put context once──> object store                                   (driver.py)
       │ pool.run_call(spec)                                   (REPLPool: async actor, num_cpus=0)
       ▼
    REPLPool ── waits for a slot at the call's depth, picks a warm REPLWorker ──┐  (pool.py)
        on a node near the call's context                                       │  (placement.py)
                                                                                ▼
    REPLWorker.run(spec)  (sync actor, one call at a time: `call.run_call` runs here)  (worker.py)
       ├─ root turns and llm_query ──> LLMGateway.complete   (async actors)       (gateway.py)
       └─ recursive_llm ─────────────> REPLPool.run_call(child spec, depth + 1)   (backend.py)

Each actor is a plain class with its `ray.remote(...)` wrapper beside it. Gateways restart
elsewhere when their node goes, and Ray re-sends their in-flight model calls
(`max_task_retries`); a lost REPL worker's call goes on in a new one from its checkpoint.
Tool calls (`RLM(tools=...)`) go from `RayBackend` to a `ToolHost` actor per node
(`tool_host.py`). The admission actor (`admission.py`) and the local model servers
(`model_servers.py`) live here too. This package is the only one that imports Ray, with
`corpus.store` and `corpus.cluster` (`cli/run.py` only preloads it, quietly).
"""

from rlm_ray.runtime.driver import Runtime, ensure_ray, get_runtime
from rlm_ray.runtime.pinned_session import PinnedSession
from rlm_ray.runtime.run import Launcher

__all__ = ["Launcher", "PinnedSession", "Runtime", "ensure_ray", "get_runtime"]
