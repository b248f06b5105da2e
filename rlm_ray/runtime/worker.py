"""`REPLWorker`: the actor that runs one RLM call at a time; the call itself is `call.run_call`.

The worker owns what belongs to its process: the memory cap, the kill switch that ends the
process if a cell's C code starves the watchdog, the hard kill of a runaway cell. It fetches the
call's context, tells `run_call` where it runs, and sends each checkpoint to the pool.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rlm_ray import corpus
from rlm_ray.core import session_repl
from rlm_ray.core.call import new_repl, run_call
from rlm_ray.core.repl import REPLSession
from rlm_ray.core.spec import CallSpec, Checkpoint, Restart, Whereabouts
from rlm_ray.corpus import store
from rlm_ray.runtime.backend import RayBackend
from rlm_ray.runtime.ray_basics import whereabouts
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
        # A pinned worker's session: its REPL and context, kept between questions.
        self._sessions: dict[str, tuple[REPLSession, Any]] = {}

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

    def run_session(
        self,
        spec: CallSpec,
        gateways: list,
        pool: Any,
        restart: Restart | None,
        turn: session_repl.SessionTurn,
    ) -> session_repl.SessionCallResult:
        """A session's question in the session's REPL, kept alive in this process between
        questions (the context is fetched once). A process that has no REPL for the session
        (its first question, or the one before was lost with its process) builds it and
        re-runs the session's recorded cells; the model is told what could not be restored."""
        started = time.time()
        live = self._sessions.get(turn.session_id)
        restored = None
        if live is None:
            context = spec.context_value if spec.context_ref is None else ray.get(spec.context_ref)
            backend = RayBackend(spec, context, gateways, pool)
            tools = session_repl.ToolReplay(backend)  # replayed cells get their recorded tools
            repl = new_repl(spec, context, tools, _hard_kill, self._kill_switch)
            if turn.cells or turn.variables:
                restored = session_repl.replay(
                    repl, turn.cells, turn.variables, subcalls=turn.replay_subcalls, tools=tools
                )
            self._sessions[turn.session_id] = live = (repl, context)
        else:
            repl, context = live
            backend = RayBackend(spec, context, gateways, pool)
            repl.rebind(backend)
        repl.subcalls.record_tools = True  # what the next rebuild answers tool calls from
        if restored is not None and restart is not None and restart.resume is not None:
            resume = restart.resume  # lost mid-question: the notice says what came back
            notice = resume.notice + "\n\n" + restored.notice()
            restart = dataclasses.replace(
                restart, resume=dataclasses.replace(resume, notice=notice)
            )
        first_turn = session_repl.follow_up_turn(turn, session_repl.variables(repl), restored)
        node_id, actor_id, pid = whereabouts()
        where = Whereabouts(node_id, actor_id, pid, ray.get_runtime_context().get_worker_id())
        result = run_call(
            spec,
            context,
            backend,
            checkpoint=lambda saved: pool.checkpoint.remote(spec.call_id, saved),
            restart=restart,
            hard_kill=_hard_kill,
            kill_switch=self._kill_switch,
            where=where,
            context_id=_context_id(spec, context),
            started_s=started,
            repl=repl,
            first_turn=first_turn,
        )
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        return session_repl.SessionCallResult(**fields, variables=session_repl.variables(repl))


def _context_id(spec: CallSpec, context: Any) -> str:
    if isinstance(context, corpus.Corpus):
        return store.corpus_id(context)
    return "" if spec.context_ref is None else spec.context_ref.hex()


def _hard_kill() -> None:
    # subtle: a cell that ignores its timeout (stuck in C code) can only be stopped with the
    # process; the pool sees the actor die and reports it, and replaces the worker.
    print("rlm-ray: a runaway cell ignored its timeout; killing its REPL process", file=sys.stderr)
    os._exit(1)


RemoteWorker: Any = ray.remote(REPLWorker)


def new_worker(node: str, memory_mb: int | None) -> Any:
    """A REPL worker started on `node` (its process starts now; calls queue until it is up)."""
    # subtle: hard affinity. Ray 2.60 moves a *soft* zero-CPU actor off the head node even
    # when the head is alive; the node was seen alive within a second, and if it died since,
    # the worker's loss is handled like any other (`REPLPool._run_on_workers`).
    return RemoteWorker.options(
        num_cpus=0,
        max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
    ).remote(memory_mb)
