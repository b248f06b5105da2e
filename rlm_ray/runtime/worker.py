"""`REPLWorker`: the actor that runs one RLM call at a time; the call itself is `call.run_call`.

The worker owns what belongs to its process: the memory cap, the kill switch that ends the
process if a cell's C code starves the watchdog, the hard kill of a runaway cell. It fetches the
call's context, tells `run_call` where it runs, and sends each checkpoint to the pool.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import ray

from rlm_ray import corpus
from rlm_ray.call import CallSpec, Checkpoint, Restart, Whereabouts, run_call
from rlm_ray.corpus import store
from rlm_ray.runtime.backend import RayBackend, whereabouts
from rlm_ray.types import CallResult


class REPLWorker:
    """Runs one RLM call at a time: its loop, its REPL namespace, its cells."""

    def __init__(self, memory_mb: int | None) -> None:
        from rlm_ray.sandbox import limit_memory
        from rlm_ray.sandbox.kill_switch import KillSwitch

        # Before the memory cap: the watcher that kills this process if a cell's C code holds
        # the GIL past its time limit (see `kill_switch`).
        self._kill_switch = KillSwitch()
        if memory_mb:
            limit_memory(memory_mb)

    def run(
        self, spec: CallSpec, gateways: list, pool: Any, restart: Restart | None = None
    ) -> CallResult:
        started = time.time()
        context = spec.context_value if spec.context_ref is None else ray.get(spec.context_ref)
        node_id, actor_id, pid = whereabouts()
        where = Whereabouts(node_id, actor_id, pid, ray.get_runtime_context().get_worker_id())
        context_id = "" if spec.context_ref is None else spec.context_ref.hex()
        if isinstance(context, corpus.Corpus):
            context_id = store.corpus_id(context)

        def checkpoint(saved: Checkpoint) -> None:
            pool.checkpoint.remote(spec.call_id, saved)  # fire and forget: the pool keeps it

        return run_call(
            spec,
            context,
            RayBackend(spec, context, gateways, pool),
            checkpoint=checkpoint,
            restart=restart,
            hard_kill=_hard_kill,
            kill_switch=self._kill_switch,
            where=where,
            context_id=context_id,
            started_s=started,
        )


def _hard_kill() -> None:
    # subtle: a cell that ignores its timeout (stuck in C code) can only be stopped with the
    # process; the pool sees the actor die and reports it, and replaces the worker.
    print("rlm-ray: a runaway cell ignored its timeout; killing its REPL process", file=sys.stderr)
    os._exit(1)


RemoteWorker: Any = ray.remote(REPLWorker)
