"""All the Ray wiring: gateways for model calls, REPL workers for RLM calls, the pool that admits them.

    driver ──put context once──> object store
       │ pool.run_call(spec)                                   (REPLPool: async actor, num_cpus=0)
       ▼
    REPLPool ── waits for a slot at the call's depth, picks a warm REPLWorker ──┐
                                                                                ▼
    REPLWorker.run(spec)  (sync actor, one call at a time, num_cpus=0: the loop runs here)
       ├─ root turns and llm_query ──> LLMGateway.complete   (async actors: hundreds in flight)
       └─ recursive_llm ─────────────> REPLPool.run_call(child spec, depth + 1)

Admission control: the pool has `max_repl_actors_per_node` slots per node and keeps one slot
free for every depth level that holds none, so a parent waiting on its children can never take
the last slot its children need (the deepest level never waits on REPLs, so it always finishes).

Placement over nodes: a call goes to a node holding a copy of its context (locality), else to the
least busy live node; the slots are counted per node, over the nodes alive now.

Faults: after each model reply the worker sends the pool a checkpoint (the conversation so far).
If the worker dies (killed, its node lost), the pool cancels the call's children and goes on in
a new worker from that checkpoint, the model told that its REPL and variables are gone. Gateways
restart elsewhere and Ray re-sends their in-flight model calls (`max_task_retries`).

Every actor is non-detached: the driver owns the gateways and the pool, the pool owns the
workers, so they all go when the driver goes. Pools are shared, per driver, by every `RLM` with
the same pool settings, so a second `completion()` starts warm.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import os
import random
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rlm_ray import corpus, corpus_store, progress, prompts
from rlm_ray.budget import estimate_input_tokens
from rlm_ray.config import ModelSettings, RLMConfig
from rlm_ray.errors import LimitExceededError, RLMError, SandboxError
from rlm_ray.llm import LLMRequest
from rlm_ray.local_model import LOCAL_MODELS
from rlm_ray.loop import LoopSettings, Messages, Resume, run_loop
from rlm_ray.rate_limit import RateLimit
from rlm_ray.repl import REPLSession, REPLSettings
from rlm_ray.types import CallResult, CallTrace, IterationTrace, LLMReply, Usage

# Child contexts larger than this are put in the object store by the REPL that cuts them, so the
# pool and the child read them by handle instead of carrying a copy in each message.
_INLINE_CONTEXT_BYTES = 100 * 1024
_WAIT_SLICE_S = 0.2
_NODES_TTL_S = 1.0


@dataclass
class CallSpec:
    """Everything an RLM call needs. `context_ref` stays a handle (nested refs are not fetched)."""

    run_id: str
    call_id: str
    depth: int
    query: str
    model: str
    models: ModelSettings
    config: RLMConfig
    context_window_tokens: int  # of this call's model
    sub_context_window_tokens: int  # of the sub-model (llm_query, children)
    deadline: float | None = None
    context_ref: Any = None
    context_value: Any = None
    admission: Any = None  # the driver's Admission actor, when the run has a budget or rate limit


def unwrap(exc: BaseException) -> BaseException:
    """The rlm-ray error inside a Ray task error, if there is one."""
    while isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    return exc


# -- model calls ---------------------------------------------------------------------------------
class LLMGateway:
    """Makes model calls for every REPL of the node; each call is a coroutine, not a process."""

    def __init__(self) -> None:
        from rlm_ray import llm

        llm._litellm()  # pay the import once, at start-up
        self._acomplete = llm.acomplete
        self._node_id = ray.get_runtime_context().get_node_id()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._tasks: dict[str, set[asyncio.Task]] = {}
        self._board = progress.ProgressBoard()  # progress/cache: counters of tracked runs
        self._caches: dict[str, Any] = {}  # progress/cache: CallCache per cache directory
        self._where = _whereabouts()  # trace: which node, actor and process serve the calls

    def ready(self) -> bool:
        return True

    async def complete(
        self,
        request: LLMRequest,
        run_id: str,
        max_in_flight: int,
        depth: int = 0,
        cache_dir: str | None = None,
        admission: Any = None,
        sub_call: bool = False,
    ) -> LLMReply:
        limit = self._limits.setdefault(run_id, asyncio.Semaphore(max_in_flight))
        tasks = self._tasks.setdefault(run_id, set())
        task = asyncio.current_task()
        tasks.add(task)  # type: ignore[arg-type]
        try:
            async with limit:
                if admission is None:
                    send = self._acomplete
                else:  # a budget or a rate limit: asked only on a cache miss
                    send = functools.partial(
                        self._admitted, run_id=run_id, admission=admission, sub_call=sub_call
                    )
                # a corpus slice in the prompt becomes text here; `local`: this node's server
                request = (await _rendered(request)).for_node(self._node_id)
                started = time.time()
                reply = await self._call(request, run_id, depth, cache_dir, send)
                # trace: when and where this call ran
                reply.started_s, reply.ended_s = started, time.time()
                reply.node_id, reply.actor_id, reply.pid = self._where
                return reply
        finally:
            tasks.discard(task)  # type: ignore[arg-type]
            if not tasks:
                del self._tasks[run_id], self._limits[run_id]

    # -- progress/cache: begin -------------------------------------------------------------------
    async def _call(
        self,
        request: LLMRequest,
        run_id: str,
        depth: int,
        cache_dir: str | None,
        send: Callable[[LLMRequest], Awaitable[LLMReply]],
    ) -> LLMReply:
        counters = self._board.get(run_id)
        if counters is None and cache_dir is None:
            return await send(request)
        reply = None
        if counters is not None:
            counters.call_started(depth)
        try:
            if cache_dir is None:
                reply = await send(request)
            else:
                reply = await self._cache(cache_dir).complete(request, send)
            return reply
        finally:
            if counters is not None:
                counters.call_ended(depth, reply)

    def _cache(self, cache_dir: str) -> Any:
        if cache_dir not in self._caches:
            from rlm_ray.call_cache import CallCache

            self._caches[cache_dir] = CallCache(cache_dir)
        return self._caches[cache_dir]

    def track_run(self, run_id: str) -> None:
        self._board.track(run_id)

    def progress(self, run_id: str, forget: bool = False) -> progress.RunCounters | None:
        return self._board.read(run_id, forget)

    # -- progress/cache: end ---------------------------------------------------------------------

    async def _admitted(
        self, request: LLMRequest, *, run_id: str, admission: Any, sub_call: bool
    ) -> LLMReply:
        """The call, once the run's budget admits it and its model's rate allows it."""
        estimate = estimate_input_tokens(request.messages)
        try:
            wait_s = await admission.admit_model_call.remote(
                run_id, request.model, sub_call, estimate
            )
        except RayTaskError as exc:
            raise unwrap(exc) from None
        tokens, cost = 0, 0.0
        try:
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            reply = await self._acomplete(request)
            tokens, cost = reply.input_tokens + reply.output_tokens, reply.cost_usd
            return reply
        finally:  # a failed call gives its reservation back
            admission.settle_model_call.remote(run_id, request.model, estimate, tokens, cost)

    def in_flight(self) -> dict[str, int]:
        """Model calls running now, per run."""
        return {run_id: len(tasks) for run_id, tasks in self._tasks.items() if tasks}

    def cancel_run(self, run_id: str) -> int:
        """Cancel every model call of a run (its root was cancelled or stopped)."""
        tasks = list(self._tasks.get(run_id, ()))
        for task in tasks:
            task.cancel()
        return len(tasks)


async def _rendered(request: LLMRequest) -> LLMRequest:
    """Corpus slices in a prompt become text here, where the model call is made: the REPL that
    passed them sent only handles and offsets."""
    if all(isinstance(m["content"], str) for m in request.messages):
        return request
    messages = []
    for message in request.messages:
        content = message["content"]
        if not isinstance(content, str):
            content = await corpus_store.render(content)
        messages.append({**message, "content": content})
    return dataclasses.replace(request, messages=messages)


# -- REPL calls ----------------------------------------------------------------------------------
class REPLWorker:
    """Runs one RLM call at a time: its loop, its REPL namespace, its cells."""

    def __init__(self, memory_mb: int | None) -> None:
        from rlm_ray.kill_switch import KillSwitch
        from rlm_ray.sandbox import limit_memory

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
        backend = RayBackend(spec, context, gateways, pool)
        trace = CallTrace(spec.call_id, spec.depth, spec.model, spec.query, started_s=started)
        trace.node_id, trace.actor_id, trace.pid = _whereabouts()
        trace.worker_id = ray.get_runtime_context().get_worker_id()
        trace.context_id = "" if spec.context_ref is None else spec.context_ref.hex()
        if isinstance(context, corpus.Corpus):
            trace.context_id = corpus_store.corpus_id(context)
        usage = Usage()
        if restart is not None:  # a lost REPL's call goes on here: keep what it had done
            trace.iterations, trace.repl_restarts = list(restart.iterations), restart.count
            started = trace.started_s = restart.started_s
            usage.add(restart.usage)
        if spec.depth >= spec.config.max_depth:  # max_depth=0: no REPL, one plain model call
            return _plain_call(spec, context, backend, trace)
        cfg = spec.config
        session = REPLSession(
            context,
            backend,
            default_model=spec.models.sub_model,
            settings=REPLSettings(
                can_recurse=spec.depth + 1 < cfg.max_depth,
                cell_timeout_s=cfg.cell_timeout_s,
                max_output_chars=cfg.max_output_chars,
                max_workers=cfg.max_concurrent_calls,
                hard_kill=_hard_kill,
                kill_switch=self._kill_switch,
                sub_context_window_tokens=spec.sub_context_window_tokens,
            ),
        )
        variant = prompts.choose(spec.model, spec.models.prompt)

        def checkpoint(messages: Messages, index: int) -> None:
            spent = Usage()
            spent.add(usage)
            spent.add(session.subcalls.usage)
            saved = Checkpoint(list(messages), index, list(trace.iterations), spent)
            pool.checkpoint.remote(spec.call_id, saved)  # fire and forget: the pool keeps it

        settings = dataclasses.replace(
            _loop_settings(spec, context, variant, lambda: check_limits(spec, session)),
            checkpoint=checkpoint,
        )
        resume = restart.resume if restart is not None else None
        try:
            answer = run_loop(
                lambda messages: backend.root_llm(messages, stop=variant.stop),
                session,
                settings,
                trace,
                usage,
                resume,
            )
        except RLMError as exc:
            session.subcalls.cancel_open()  # nobody will use their results
            if isinstance(exc, LimitExceededError) and exc.partial_answer is None:
                exc.partial_answer = _best_partial(session, trace)
            trace.error = f"{type(exc).__name__}: {exc}"
            return CallResult("", usage, trace, error=exc)
        except BaseException:
            session.subcalls.cancel_open()
            raise
        finally:
            session.subcalls.drain()  # usage and trace of every sub-call that ran
            usage.add(session.subcalls.usage)
            session.close()
            trace.duration_s = time.time() - started
            _record_usage(trace, usage)
        return CallResult(answer, usage, trace)


@dataclass
class Checkpoint:
    """A call's state after a model reply: enough to go on in a new REPL if this one is lost."""

    messages: Messages
    index: int  # turn index of the last reply in `messages`
    iterations: list[IterationTrace]
    usage: Usage


@dataclass
class Restart:
    """What a replacement REPL worker gets: where to resume and what was already spent."""

    count: int  # how many REPLs this call has lost so far
    started_s: float
    resume: Resume | None  # None: lost before the first reply, start over
    iterations: list[IterationTrace]
    usage: Usage


def _plain_call(spec: CallSpec, context: Any, backend: RayBackend, trace: CallTrace) -> CallResult:
    """A call without a REPL: one model call over query and context (e.g. `max_depth=0`)."""
    prompt: Any = (  # a corpus is read by the gateway, not here
        [prompts.plain_call_prompt(spec.query, ""), context]
        if isinstance(context, corpus.Corpus)
        else prompts.plain_call_prompt(spec.query, context)
    )
    reply = backend.root_llm([{"role": "user", "content": prompt}])
    usage = Usage()
    usage.add_reply(reply)
    trace.answer, trace.finished_by = reply.text, "plain"
    trace.duration_s = time.time() - trace.started_s
    _record_usage(trace, usage)
    return CallResult(reply.text, usage, trace)


def _whereabouts() -> tuple[str, str, int]:
    """(node id, actor id, pid) of this process, for the trace."""
    ctx = ray.get_runtime_context()
    return ctx.get_node_id(), ctx.get_actor_id() or "", os.getpid()


def _record_usage(trace: CallTrace, usage: Usage) -> None:
    trace.total_calls, trace.total_cost_usd = usage.calls, usage.cost_usd
    trace.total_input_tokens, trace.total_output_tokens = usage.input_tokens, usage.output_tokens


def _hard_kill() -> None:
    # subtle: a cell that ignores its timeout (stuck in C code) can only be stopped with the
    # process; the pool sees the actor die and reports it, and replaces the worker.
    print("rlm-ray: a runaway cell ignored its timeout; killing its REPL process", file=sys.stderr)
    os._exit(1)


def _best_partial(session: REPLSession, trace: CallTrace) -> str | None:
    """A stopped call's best answer: the model's `answer["content"]` if it set one as text
    (read inside a cell's clock, see `REPLSession`), else its last reply."""
    if session.partial_answer is not None:
        return session.partial_answer
    return trace.iterations[-1].response if trace.iterations else None


def _loop_settings(
    spec: CallSpec, context: Any, variant: prompts.PromptVariant, check: Callable[[], None]
) -> LoopSettings:
    cfg = spec.config
    system = prompts.system_prompt(
        context,
        can_recurse=spec.depth + 1 < cfg.max_depth,
        sub_window_chars=spec.sub_context_window_tokens * 3,
        max_output_chars=cfg.max_output_chars,
        cell_timeout_s=cfg.cell_timeout_s,
        variant=variant,
    )
    kwargs = spec.models.llm_kwargs if spec.depth == 0 else spec.models.sub_llm_kwargs
    reserve = int(kwargs.get("max_tokens") or 4096)
    return LoopSettings(
        query=spec.query,
        system=system,
        max_iterations=cfg.max_iterations,
        context_window_tokens=spec.context_window_tokens,
        reserve_output_tokens=min(reserve, spec.context_window_tokens // 4),
        check_limits=check,
        few_shot=tuple(variant.few_shot_messages()),
        first_turn=prompts.first_turn(variant, context),
        next_turn=variant.next_turn,
        error_turn=variant.error_turn,
    )


def check_deadline(spec: CallSpec) -> None:
    if spec.deadline is not None and time.time() > spec.deadline:
        raise LimitExceededError("max_time_s", spec.config.max_time_s)


def check_limits(spec: CallSpec, session: REPLSession) -> None:
    """Before each turn: stop at the deadline, or once a run limit has refused a sub-call."""
    check_deadline(spec)
    hit = session.subcalls.limit_hit
    if hit is not None:
        raise LimitExceededError(hit.limit, hit.value)


def remaining_s(spec: CallSpec) -> float | None:
    return None if spec.deadline is None else max(0.0, spec.deadline - time.time())


class RayBackend:
    """Starts a call's sub-calls as Ray work (`repl.Backend`)."""

    _ids = count()

    def __init__(self, spec: CallSpec, context: Any, gateways: list, pool: Any) -> None:
        self.spec, self.context, self.pool = spec, context, pool
        # The run's cap on calls in flight is split evenly over the gateways it uses, so the
        # gateways' semaphores add up to at most the cap (a cap of 1 uses one gateway).
        cap = spec.config.max_concurrent_calls
        self.all_gateways = gateways
        self.gateways = gateways[: max(1, min(len(gateways), cap))]
        self._per_gateway_cap = cap // len(self.gateways)
        # Each call starts its round robin at a random gateway: calls that make one model call
        # each would otherwise all queue on the same one.
        self._next = random.randrange(len(self.gateways))

    def _gateway(self) -> Any:
        self._next = (self._next + 1) % len(self.gateways)
        return self.gateways[self._next]

    def _request(self, model: str, messages: list, kwargs: dict) -> LLMRequest:
        m, cfg = self.spec.models, self.spec.config
        request = LLMRequest(
            model=model,
            messages=messages,
            api_base=m.api_base,
            api_key=m.api_key,
            kwargs=kwargs,
            timeout_s=cfg.request_timeout_s,
            max_retries=cfg.max_retries,
        )
        if model in m.local_servers:  # rlm-ray's own server: the gateway picks its node's
            request.model = f"openai/{LOCAL_MODELS[model].served_name}"
            request.api_base, request.api_key = None, "local"
            request.api_base_by_node = m.local_servers[model]
        return request

    def _complete(self, request: LLMRequest, depth: int, sub_call: bool = False) -> Any:
        spec = self.spec
        # the dashboard's task list names each model call by role and depth
        role = "llm_query" if sub_call else "model turn"
        name = f"{role} depth={depth} call={spec.call_id}"
        complete = self._gateway().complete.options(name=name)
        return complete.remote(
            request,
            spec.run_id,
            self._per_gateway_cap,
            depth,
            spec.config.cache_dir,
            spec.admission,
            sub_call,
        )

    def root_llm(self, messages: list, stop: tuple[str, ...] = ()) -> LLMReply:
        """A turn of this call's own model (the root model at depth 0, else the sub-model);
        `stop` (the prompt's stop sequences) applies unless the caller's kwargs set their own."""
        kwargs = (
            self.spec.models.llm_kwargs if self.spec.depth == 0 else self.spec.models.sub_llm_kwargs
        )
        if stop and "stop" not in kwargs:
            kwargs = {**kwargs, "stop": list(stop)}
        ref = self._complete(self._request(self.spec.model, messages, kwargs), self.spec.depth)
        try:
            return ray.get(ref, timeout=remaining_s(self.spec))
        except GetTimeoutError:
            ray.cancel(ref)
            raise LimitExceededError("max_time_s", self.spec.config.max_time_s) from None
        except RayTaskError as exc:
            raise unwrap(exc) from None

    def start_llm(self, prompt: str | list, model: str | None) -> Any:
        # a list prompt holds corpus views: handles and offsets, turned into text by the gateway
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        models = self.spec.models
        request = self._request(model or models.sub_model, messages, models.sub_llm_kwargs)
        return self._complete(request, self.spec.depth + 1, sub_call=True)

    def start_rlm(self, query: str, context: Any, model: str | None) -> Any:
        spec = self.spec
        child = CallSpec(
            run_id=spec.run_id,
            call_id=f"{spec.call_id}.{next(self._ids)}",
            depth=spec.depth + 1,
            query=query,
            model=model or spec.models.sub_model,
            models=spec.models,
            config=spec.config,
            context_window_tokens=spec.sub_context_window_tokens,
            sub_context_window_tokens=spec.sub_context_window_tokens,
            deadline=spec.deadline,
            admission=spec.admission,
        )
        if context is self.context and spec.context_ref is not None:
            child.context_ref = spec.context_ref  # the same input: pass the handle on
        elif isinstance(context, corpus.Corpus):
            child.context_value = context  # a view: handles and offsets, never its text
        elif _size(context) > _INLINE_CONTEXT_BYTES:
            child.context_ref = ray.put(context)
        else:
            child.context_value = context
        admit = self.pool.run_call.options(name=f"admit depth={child.depth} call={child.call_id}")
        return admit.remote(child, self.all_gateways)

    def cancel(self, handles: list) -> None:
        for ref in handles:
            ray.cancel(ref)

    def fetch(self, handles: list) -> list[tuple[bool, Any]]:
        ready = _wait_all(handles, self.spec.deadline)
        if len(ready) == len(handles):
            try:
                return [(True, value) for value in ray.get(handles)]  # one round trip for all
            except Exception:
                pass  # some failed: sort them out one by one below
        ready_set = set(ready)
        return [
            self._outcome(h) if h in ready_set else _deadline_outcome(self.spec) for h in handles
        ]

    @staticmethod
    def _outcome(ref: Any) -> tuple[bool, Any]:
        try:
            return True, ray.get(ref)
        except Exception as exc:
            return False, unwrap(exc)


def _wait_all(refs: list, deadline: float | None) -> list:
    """`ray.wait` for all of `refs` until `deadline`, in short slices.

    subtle: one long `ray.wait` blocks in C++, where the cell clock's asynchronous exception (a
    cell timeout raised into this thread) cannot land; short slices let it in within 0.2 s.
    """
    ready: list = []
    waiting = list(refs)
    while waiting:
        left = None if deadline is None else deadline - time.time()
        if left is not None and left <= 0:
            break
        done, waiting = ray.wait(
            waiting,
            num_returns=len(waiting),
            timeout=_WAIT_SLICE_S if left is None else min(left, _WAIT_SLICE_S),
        )
        ready.extend(done)
    return ready


def _deadline_outcome(spec: CallSpec) -> tuple[bool, Any]:
    return False, LimitExceededError("max_time_s", spec.config.max_time_s)


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(len(str(v)) for v in value[:1000]) * max(1, len(value) // 1000)
    if isinstance(value, dict):
        values = list(value.values())
        return sum(len(str(v)) for v in values[:1000]) * max(1, len(values) // 1000)
    return 0


class REPLPool:
    """Admits RLM calls to REPL workers: slots per node, one kept free per idle depth level.

    Placement: a call goes to a node that holds a copy of its context (locality), else to the
    least busy live node; each node runs at most `slots_per_node` busy workers. A call whose
    worker dies (process killed, node lost) goes on in a new worker from its last checkpoint.
    """

    def __init__(self, slots_per_node: int, memory_mb: int | None, warm: int = 1) -> None:
        self._slots = slots_per_node
        self._memory_mb = memory_mb
        self._node = ray.get_runtime_context().get_node_id()
        self._nodes: list[str] = []
        self._nodes_checked = 0.0
        self._idle: dict[str, list[Any]] = {}  # node id -> warm workers
        self._busy: Counter[str] = Counter()  # node id -> workers running a call
        for _ in range(min(warm, slots_per_node)):
            self._idle.setdefault(self._node, []).append(self._new_worker(self._node))
        self._held: Counter[int] = Counter()
        self._peak_held = 0
        self._run_depths: Counter[int] = Counter()  # max_depth of the runs in progress
        self._running: dict[str, asyncio.Task] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._workers: dict[str, Any] = {}  # call id -> its worker, while it runs
        self._changed = asyncio.Condition()
        self._self = ray.get_runtime_context().current_actor
        self._board = progress.ProgressBoard()  # progress/cache

    def _new_worker(self, node: str) -> Any:
        # subtle: hard affinity. Ray 2.60 moves a *soft* zero-CPU actor off the head node even
        # when the head is alive; the node was seen alive within a second, and if it died since,
        # the worker's loss is handled like any other (`_run_on_workers`).
        return _RemoteWorker.options(
            num_cpus=0,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote(self._memory_mb)

    def _live_nodes(self) -> list[str]:
        """Ids of the live nodes (asked again at most once a second); forgets the dead ones."""
        if time.monotonic() - self._nodes_checked > _NODES_TTL_S:
            self._nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
            self._nodes_checked = time.monotonic()
            for node in list(self._idle):
                if node not in self._nodes:
                    del self._idle[node]  # their actors died with the node
        return self._nodes

    @property
    def _capacity(self) -> int:
        return self._slots * max(1, len(self._live_nodes()))

    def stats(self, reset_peak: bool = False) -> dict[str, Any]:
        held = {d: n for d, n in self._held.items() if n}
        nodes = {
            n: {"busy": self._busy[n], "idle": len(self._idle.get(n, ()))}
            for n in self._live_nodes()
        }
        stats = {
            "capacity": self._capacity,
            "held": held,
            "peak_held": self._peak_held,  # most REPL calls live at once (since the last reset)
            "idle": sum(len(v) for v in self._idle.values()),
            "running": len(self._running),
            "nodes": nodes,
        }
        if reset_peak:
            self._peak_held = sum(self._held.values())
        return stats

    def workers(self) -> dict[str, Any]:
        """The worker actor running each call in progress, by call id (to inspect or kill)."""
        return dict(self._workers)

    def checkpoint(self, call_id: str, saved: Checkpoint) -> None:
        """Keep a call's latest checkpoint while it runs (a late, older one is ignored)."""
        old = self._checkpoints.get(call_id)
        if call_id in self._running and (old is None or saved.index >= old.index):
            self._checkpoints[call_id] = saved

    def _can_take(self, depth: int) -> bool:
        levels = max((d for d, n in self._run_depths.items() if n > 0), default=1)
        free = self._capacity - sum(self._held.values())
        kept = sum(1 for d in range(levels) if d != depth and self._held[d] == 0)
        return free - kept >= 1

    def track_run(self, run_id: str) -> None:  # progress/cache
        self._board.track(run_id)

    def progress(self, run_id: str, forget: bool = False) -> progress.RunCounters | None:
        return self._board.read(run_id, forget)  # progress/cache

    async def run_call(self, spec: CallSpec, gateways: list) -> CallResult:
        self._running[spec.call_id] = asyncio.current_task()  # type: ignore[assignment]
        if spec.depth == 0:
            self._run_depths[spec.config.max_depth] += 1
        counters = self._board.get(spec.run_id)  # progress/cache
        if counters is not None:
            counters.rlm_started(spec.depth)
        try:
            return await self._admit_and_run(spec, gateways)
        except asyncio.CancelledError:
            self._cancel_below(spec, gateways)
            raise
        finally:
            self._running.pop(spec.call_id, None)
            self._checkpoints.pop(spec.call_id, None)
            self._workers.pop(spec.call_id, None)
            if spec.depth == 0:
                self._run_depths[spec.config.max_depth] -= 1
            if counters is not None:  # progress/cache
                counters.rlm_ended(spec.depth)

    async def _admit_and_run(self, spec: CallSpec, gateways: list) -> CallResult:
        if spec.depth > 0 and spec.admission is not None:  # a child counts as one sub-call
            try:
                await spec.admission.admit_call.remote(spec.run_id)
            except RayTaskError as exc:
                raise unwrap(exc) from None
        async with self._changed:
            await self._changed.wait_for(lambda: self._can_take(spec.depth))
            self._held[spec.depth] += 1
            self._peak_held = max(self._peak_held, sum(self._held.values()))
        try:
            return await self._run_on_workers(spec, gateways)
        finally:
            async with self._changed:
                self._held[spec.depth] -= 1
                self._changed.notify_all()

    async def _run_on_workers(self, spec: CallSpec, gateways: list) -> CallResult:
        """Run the call in a worker; if the worker dies, go on in a new one from the checkpoint."""
        restart: Restart | None = None
        while True:
            worker, node = await self._take_worker(spec)
            self._workers[spec.call_id] = worker
            try:
                run = worker.run.options(name=f"rlm call depth={spec.depth} call={spec.call_id}")
                result = await run.remote(spec, gateways, self._self, restart)
            except RayTaskError as exc:  # first: it may wrap a RayActorError of a *gateway*
                self._release(worker, node)
                raise unwrap(exc) from None
            except RayActorError as exc:
                self._release(None, node)  # dead: never reuse
                restart = self._restart_after_loss(spec, restart, exc)
                continue
            except asyncio.CancelledError:
                # The worker may be mid-cell and cannot be interrupted cooperatively: it goes.
                ray.kill(worker)
                self._release(None, node)
                raise
            self._release(worker, node)
            return result

    def _restart_after_loss(
        self, spec: CallSpec, restart: Restart | None, exc: RayActorError
    ) -> Restart:
        count = 1 if restart is None else restart.count + 1
        reason = _loss_reason(exc)
        if count > spec.config.max_repl_restarts:
            raise SandboxError(
                f"the REPL process of call {spec.call_id} was lost {count} times "
                f"(`max_repl_restarts` is {spec.config.max_repl_restarts}); last: {reason}"
            )
        print(f"rlm-ray: REPL of call {spec.call_id} lost ({reason}); restarting", file=sys.stderr)
        self._cancel_calls_below(spec)  # their parent's REPL, which awaited them, is gone
        saved = self._checkpoints.pop(spec.call_id, None)
        started = time.time() if restart is None else restart.started_s
        if saved is None:  # lost before the first reply: start over, nothing to tell
            return Restart(count, started, None, [], Usage())
        notice = prompts.REPL_LOST.format(reason=reason)
        resume = Resume(saved.messages, saved.index + 1, notice)
        return Restart(count, started, resume, saved.iterations, saved.usage)

    async def _take_worker(self, spec: CallSpec) -> tuple[Any, str]:
        """A warm or new worker, on a node holding the call's context if one has room."""
        holders: list[str] = []
        if spec.context_ref is not None and len(self._live_nodes()) > 1:
            # a blocking GCS query (up to 1 s): in a thread, so the pool's other calls go on
            holders = await asyncio.to_thread(_holders, spec.context_ref)
        nodes = self._live_nodes() or [self._node]  # after the await: no stale counts below
        roomy = [n for n in nodes if self._busy[n] < self._slots] or nodes
        local = [n for n in holders if n in roomy]
        node = next((n for n in local if self._idle.get(n)), None)
        if node is None:
            node = (
                local[0]
                if local
                else min(roomy, key=lambda n: (self._busy[n], not self._idle.get(n)))
            )
        self._busy[node] += 1
        idle = self._idle.get(node)
        return (idle.pop() if idle else self._new_worker(node)), node

    def _release(self, worker: Any, node: str) -> None:
        self._busy[node] -= 1
        if worker is not None and node in self._live_nodes():
            self._idle.setdefault(node, []).append(worker)

    def _cancel_calls_below(self, spec: CallSpec) -> None:
        prefix = spec.call_id + "."
        for call_id, task in list(self._running.items()):
            if call_id.startswith(prefix):
                task.cancel()

    def _cancel_below(self, spec: CallSpec, gateways: list) -> None:
        """A cancelled call takes its descendants and (for a root) its model calls with it."""
        self._cancel_calls_below(spec)
        if spec.depth == 0:
            for gateway in gateways:
                gateway.cancel_run.remote(spec.run_id)


def _holders(context_ref: Any) -> list[str]:
    """The nodes holding a copy of a context in their object store (none for inline values)."""
    if context_ref is None:
        return []
    try:
        where = ray.experimental.get_object_locations([context_ref], timeout_ms=1000)
    except Exception:  # locality is a preference: without it the call still runs
        return []
    return list(where.get(context_ref, {}).get("node_ids") or [])


def _loss_reason(exc: RayActorError) -> str:
    text = str(exc).lower()
    if "node" in text and ("died" in text or "dead" in text or "removed" in text):
        return "its node left the cluster"
    return "its process died: it crashed, or a cell outran its time limit and was killed"


_RemoteGateway: Any = ray.remote(LLMGateway)
_RemoteWorker: Any = ray.remote(REPLWorker)
_RemotePool: Any = ray.remote(REPLPool)


# -- the driver's side -------------------------------------------------------------------------
@dataclass
class Runtime:
    gateways: list
    pool: Any
    _admission: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admission(self) -> Any:
        """The driver's admission actor (budgets, rate limits), started by the first run needing it."""
        with self._lock:
            if self._admission is None:
                from rlm_ray.admission import start_admission

                self._admission = start_admission()
            return self._admission


_RUNTIMES: dict[tuple, Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def ensure_ray(address: str | None) -> None:
    """Connect to `address` (or RAY_ADDRESS), or start local Ray when none is given."""
    if ray.is_initialized():
        if address:
            warnings.warn(
                f"Ray is already initialised in this process; `address={address!r}` is ignored",
                stacklevel=3,
            )
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = {"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        # subtle: a bare ray.init() would attach to any cluster `ray start` left on this machine;
        # with no address given we start our own (`--address auto` attaches on purpose).
        ray.init(address="local", include_dashboard=False, log_to_driver=False, runtime_env=env)


def get_runtime(config: RLMConfig) -> Runtime:
    """The gateways and pool for these settings, created once per driver and then reused."""
    ctx = ray.get_runtime_context()
    # The driver's node id changes with every new Ray instance (job ids repeat after a restart).
    cluster = (ctx.get_job_id(), ctx.get_node_id())
    key = (*cluster, config.max_repl_actors_per_node, config.num_gateways, config.repl_memory_mb)
    with _RUNTIMES_LOCK:  # two cold completions at once must not build two pools
        if key not in _RUNTIMES:
            _RUNTIMES[key] = _start_runtime(config)
        return _RUNTIMES[key]


def forget_runtimes() -> None:
    """Drop every cached runtime. Call it before `ray.shutdown()` in a process that will start
    Ray again: their actor handles must be released while the Ray they belong to is still up."""
    with _RUNTIMES_LOCK:
        _RUNTIMES.clear()
    gc.collect()


def _forget_runtime(runtime: Runtime) -> None:
    with _RUNTIMES_LOCK:
        for key, known in list(_RUNTIMES.items()):
            if known is runtime:
                del _RUNTIMES[key]


def _start_runtime(config: RLMConfig) -> Runtime:
    # `num_gateways` per live node (SPREAD alone put these zero-CPU actors all on one node).
    # Soft affinity, so that a gateway lost with its node is restarted elsewhere, and Ray
    # re-sends the model calls it had in flight (max_task_retries): a pure model call survives a
    # node loss. subtle: Ray 2.60 places a soft zero-CPU actor aimed at the head on another node.
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    gateways = [
        _RemoteGateway.options(
            num_cpus=0,
            max_concurrency=4096,
            max_restarts=-1,
            max_task_retries=-1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True),
        ).remote()
        for _ in range(config.num_gateways)
        for node in nodes
    ]
    # The pool holds the run's bookkeeping (slots, checkpoints): it lives beside the driver,
    # whose loss ends the run anyway, never on a worker node that may go.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    pool = _RemotePool.options(
        num_cpus=0, max_concurrency=100_000, scheduling_strategy=here
    ).remote(config.max_repl_actors_per_node, config.repl_memory_mb)
    ray.get([g.ready.remote() for g in gateways] + [pool.stats.remote()])
    return Runtime(gateways, pool)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


async def run_root(
    runtime: Runtime, spec: CallSpec, on_progress: progress.ProgressCallback | None = None
) -> CallResult:
    """Run the root call on the cluster and wait for it without blocking the event loop.

    A run with a budget or a rate limit registers with the driver's admission actor first."""
    cfg = spec.config
    budget, rate_limit, overrides = cfg.budget(), cfg.rate_limit(), cfg.rate_limit_overrides()
    if not budget.is_set() and rate_limit == RateLimit() and not overrides:
        return await _run_with_progress(runtime, spec, on_progress)
    spec.admission = runtime.admission()
    opened = spec.admission.open_run.remote(spec.run_id, budget, rate_limit, overrides)
    await asyncio.wrap_future(opened.future())
    try:
        return await _run_with_progress(runtime, spec, on_progress)
    finally:
        spec.admission.close_run.remote(spec.run_id)


# -- progress/cache: begin -----------------------------------------------------------------------
async def _run_with_progress(
    runtime: Runtime, spec: CallSpec, on_progress: progress.ProgressCallback | None
) -> CallResult:
    """Wait for the root call. With `on_progress`, the gateways and the pool count the run's
    calls and the driver polls them every `progress.PROGRESS_INTERVAL_S` while it waits
    (nothing is sent per call); the last snapshot has `finished=True`. If `on_progress` raises, the run is cancelled and the
    exception propagates."""
    if on_progress is None:
        return await _await_root(runtime, spec)
    actors = [*runtime.gateways, runtime.pool]
    started = time.time()
    await asyncio.gather(*(actor.track_run.remote(spec.run_id) for actor in actors))
    root = asyncio.ensure_future(_await_root(runtime, spec))
    poll = asyncio.ensure_future(_poll_progress(actors, spec.run_id, started, on_progress))
    try:
        await asyncio.wait({root, poll}, return_when=asyncio.FIRST_COMPLETED)
        if not root.done():  # the callback raised: stop the tree, then raise its error
            root.cancel()
            await asyncio.gather(root, return_exceptions=True)
            poll.result()
        return root.result()
    finally:
        root.cancel()
        poll.cancel()
        final = await _read_progress(actors, spec.run_id, started, forget=True)
        if final is not None:
            on_progress(replace(final, finished=True))


async def _poll_progress(
    actors: list, run_id: str, started: float, on_progress: progress.ProgressCallback
) -> None:
    while True:
        await asyncio.sleep(progress.PROGRESS_INTERVAL_S)
        snapshot = await _read_progress(actors, run_id, started)
        if snapshot is not None:
            on_progress(snapshot)


async def _read_progress(
    actors: list, run_id: str, started: float, forget: bool = False
) -> progress.Progress | None:
    try:
        parts = await asyncio.gather(*(a.progress.remote(run_id, forget) for a in actors))
    except (RayActorError, RayTaskError):
        return None  # a dead pool fails the run anyway; a restarted gateway comes back empty
    counters = [part for part in parts if part is not None]
    return progress.merge(run_id, time.time() - started, counters, finished=False)


# -- progress/cache: end -------------------------------------------------------------------------
async def _await_root(runtime: Runtime, spec: CallSpec) -> CallResult:
    ref = runtime.pool.run_call.remote(spec, runtime.gateways)
    grace = None if spec.deadline is None else spec.deadline - time.time() + 30.0
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout=grace)
    except asyncio.TimeoutError:
        ray.cancel(ref)
        raise LimitExceededError("max_time_s", spec.config.max_time_s) from None
    except RayTaskError as exc:
        error = unwrap(exc)
        if isinstance(error, RLMError):
            raise error from None
        raise
    except RayActorError:
        _forget_runtime(runtime)  # the pool died: the next run builds a new one
        raise
    except BaseException:
        # Cancelled (asyncio) or interrupted (Ctrl-C): stop the whole tree, not just the wait.
        ray.cancel(ref)
        raise
    if result.error is not None:
        result.error.trace = result.trace  # type: ignore[attr-defined]  # what the run did
        raise result.error
    return result
