"""The REPL sandbox: model-written cells run under RestrictedPython, with limits.

sandbox.py        `Sandbox`: the RestrictedPython policy and guards (the only RestrictedPython
                  import); its docstring holds the threat model
rewrites.py       the AST work behind the policy (sub-call sites, fan-out plans)
allowlist.py      the builtins table and the function-only proxies of allowlisted modules
future_guards.py  where model code waits for sub-call futures, and where it keeps them
fanout.py         parallel comprehensions on worker threads that join the running cell
clock.py          the per-cell time limit: watchdog, asynchronous exceptions, hard kill
kill_switch.py    a watcher process that ends a REPL whose C code starves the watchdog
output.py         what the model reads back: printed text, error text, SHOW_VARS lines
boundary.py       what may leave a cell: exact builtin data, views rebuilt, no cell classes
memory_cap.py     `limit_memory`, the REPL process's memory cap
"""

from rlm_ray.sandbox.memory_cap import limit_memory
from rlm_ray.sandbox.sandbox import (
    NO_FINAL,
    CellOutcome,
    CellTimeout,
    FinalAnswer,
    Sandbox,
    default_grace_s,
)

__all__ = [
    "NO_FINAL",
    "CellOutcome",
    "CellTimeout",
    "FinalAnswer",
    "Sandbox",
    "default_grace_s",
    "limit_memory",
]
