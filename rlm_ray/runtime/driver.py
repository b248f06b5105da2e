"""The driver's side: Ray started or joined, the runtime (gateways and pool) built once per
driver and settings, the root call awaited without blocking the event loop, progress polled.

Every actor is non-detached: the driver owns the gateways and the pool, the pool owns the
workers, so they all go when the driver goes. Runtimes are shared, per driver, by every `RLM`
with the same pool settings, so a second `completion()` starts warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rlm_ray import progress
from rlm_ray.config import RLMConfig
from rlm_ray.core.call import cap_answer
from rlm_ray.core.spec import CallSpec
from rlm_ray.errors import LimitExceededError, RLMError
from rlm_ray.front import deep_rlms
from rlm_ray.limits.rate_limit import RateLimit
from rlm_ray.runtime.gateway import RemoteGateway
from rlm_ray.runtime.idle_workers import children_to_warm
from rlm_ray.runtime.pool import RemotePool
from rlm_ray.runtime.ray_basics import unwrap, watched
from rlm_ray.runtime.worker import new_worker
from rlm_ray.trace.totals import final_progress
from rlm_ray.types import CallResult


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
                from rlm_ray.runtime.admission import start_admission

                self._admission = start_admission()
            return self._admission


# subtle: a process that restarts Ray must drop these before `ray.shutdown()` (the tests do:
# tests/helpers.py `forget_runtimes`): actor handles released after their Ray stopped crash the next.
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
    # subtle: no `runtime_env`. A job with one gets worker processes of its own, started when
    # each actor is created (seconds each); without one, the actors take the worker processes
    # Ray keeps started. The gateways' litellm finds LITELLM_LOCAL_MODEL_COST_MAP set by
    # `llm._litellm()` before its import, in any process.
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        # subtle: a bare ray.init() would attach to any cluster `ray start` left on this machine;
        # with no address given we start our own (`--address auto` attaches on purpose).
        with _quiet_token_notice():
            ray.init(address="local", include_dashboard=False, log_to_driver=False)


_TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"


@contextlib.contextmanager
def _quiet_token_notice() -> Iterator[None]:
    """Drop Ray 2.60's notice that a *new local* instance uses token auth: it is printed on
    every start, and says nothing to do for a Ray that rlm-ray starts and stops itself (the
    cluster docs explain token auth for clusters you run)."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")

    def drop(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_TOKEN_NOTICE)

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def get_runtime(config: RLMConfig) -> Runtime:
    """The gateways and pool for these settings, created once per driver and then reused."""
    key = _runtime_key(config)
    with _RUNTIMES_LOCK:  # two cold completions at once must not build two pools
        if key not in _RUNTIMES:
            _RUNTIMES[key] = _start_runtime(config)
        return _RUNTIMES[key]


def runtime_if_up(config: RLMConfig) -> Runtime | None:
    """The runtime for these settings if this driver has started it already (never starts one)."""
    if not ray.is_initialized():
        return None
    with _RUNTIMES_LOCK:
        return _RUNTIMES.get(_runtime_key(config))


def _runtime_key(config: RLMConfig) -> tuple:
    ctx = ray.get_runtime_context()
    # The driver's node id changes with every new Ray instance (job ids repeat after a restart).
    cluster = (ctx.get_job_id(), ctx.get_node_id())
    return (*cluster, *_pool_settings(config))


def _pool_settings(config: RLMConfig) -> tuple:
    """What makes two configs share a runtime (in one driver, on one cluster)."""
    return (config.max_repl_actors_per_node, config.num_gateways, config.repl_memory_mb)


def _forget_runtime(runtime: Runtime) -> None:
    with _RUNTIMES_LOCK:
        for key, known in list(_RUNTIMES.items()):
            if known is runtime:
                del _RUNTIMES[key]


def _start_runtime(config: RLMConfig) -> Runtime:
    """Start the gateways, the pool and the root's first REPL worker, all at once, and return
    without waiting for any of them: the first run's calls queue on them while they start, so
    the root's first turn waits only for one gateway and its worker. A run whose models need
    litellm has the gateways import it while that turn runs (`RLM._prepare_gateways`)."""
    # The pool holds the run's bookkeeping (slots, checkpoints): it lives beside the driver,
    # whose loss ends the run anyway, never on a worker node that may go. Its first worker is
    # started here, beside it, not by the pool once its own process is up.
    # subtle: hard affinity (the driver's node is alive: we are attached to it). A soft one let
    # Ray 2.60 put this zero-CPU actor on any node, even one just killed that the cluster had not
    # yet seen die: the next run then failed with "the actor never ran".
    node = ray.get_runtime_context().get_node_id()
    warm = [(node, new_worker(node, config.repl_memory_mb))]
    here = NodeAffinitySchedulingStrategy(node, soft=False)
    pool = RemotePool.options(num_cpus=0, max_concurrency=100_000, scheduling_strategy=here).remote(
        config.max_repl_actors_per_node, config.repl_memory_mb, warm=warm
    )
    # `num_gateways` per live node (SPREAD alone put these zero-CPU actors all on one node).
    # Soft affinity, so that a gateway lost with its node is restarted elsewhere, and Ray
    # re-sends the model calls it had in flight (max_task_retries): a pure model call survives a
    # node loss. subtle: Ray 2.60 ignores a soft affinity of an actor that asks for no resource
    # at all (all three gateways of a 3-node cluster landed on one node); one byte of `memory`
    # (a logical resource: nothing is reserved) makes it honour it, so that every node has its
    # gateways and a sub-call can be rendered where its corpus chunks are.
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    gateways = [
        RemoteGateway.options(
            num_cpus=0,
            memory=1,
            max_concurrency=4096,
            max_restarts=-1,
            max_task_retries=-1,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True),
        ).remote()
        for _ in range(config.num_gateways)
        for node in nodes
    ]
    # A first run that may go deeper, or a deep `RLM` of this process that will use this
    # runtime later, has its children's workers started here too, after the gateways (so they
    # queue behind them for Ray's worker starts, two at a time on two CPUs): they come up while
    # the first run's root turn runs, or before the deep `RLM`'s first run begins.
    deep = _deepest(config)
    if deep is not None:
        limits, children = deep
        spares = [(node, new_worker(node, config.repl_memory_mb)) for _ in range(children)]
        pool.prewarm.remote(limits, True, spares)
    return Runtime(gateways, pool)


def _deepest(config: RLMConfig) -> tuple[RLMConfig, int] | None:
    """Of this run's config and those of the deep `RLM`s alive in this process that share its
    runtime (`front.deep_rlms`), the one with the most children's workers worth starting ahead
    (`idle_workers.children_to_warm`), and how many; None if none has any."""
    cpus = ray.cluster_resources().get("CPU", 1.0)
    slots = config.max_repl_actors_per_node
    same_pool = [c for c in deep_rlms.configs() if _pool_settings(c) == _pool_settings(config)]
    counted = [(c, children_to_warm(c, cpus, slots)) for c in (config, *same_pool)]
    best = max(counted, key=lambda pair: pair[1])
    return best if best[1] else None


async def run_root(
    runtime: Runtime,
    spec: CallSpec,
    on_progress: progress.ProgressCallback | None = None,
    approve: Callable[[Any], Any] | None = None,
    turn: Any = None,
) -> CallResult:
    """Run the root call on the cluster and wait for it without blocking the event loop.

    A run with a budget or a rate limit registers with the driver's admission actor first.
    With `approve` (tools: `RLM(approve=fn)`), the driver answers `write` tool calls while it
    waits (`tool_host.serve`). `turn`: a session's question (`session_repl.SessionTurn`), run
    on its pinned worker."""
    if approve is not None and spec.tools is not None and spec.tools.ask:
        from rlm_ray.runtime import tool_host

        actor = tool_host.approvals_actor()
        spec.tools = replace(spec.tools, approvals=actor)
        return await tool_host.serve(
            actor, spec.run_id, approve, lambda: run_root(runtime, spec, on_progress, None, turn)
        )
    async with admitted(runtime, spec):
        return await _run_with_progress(runtime, spec, on_progress, turn)


@contextlib.asynccontextmanager
async def admitted(runtime: Runtime, spec: CallSpec) -> AsyncIterator[None]:
    """The run registered with the driver's admission actor (`spec.admission` set) while it
    runs, if it has a budget or a rate limit; runs with neither never call it."""
    cfg = spec.config
    budget, rate_limit, overrides = cfg.budget(), cfg.rate_limit(), cfg.rate_limit_overrides()
    if not budget.is_set() and rate_limit == RateLimit() and not overrides:
        yield
        return
    spec.admission = runtime.admission()
    opened = spec.admission.open_run.remote(spec.run_id, budget, rate_limit, overrides)
    await asyncio.wrap_future(opened.future())
    try:
        yield
    finally:
        spec.admission.close_run.remote(spec.run_id)


async def _run_with_progress(
    runtime: Runtime,
    spec: CallSpec,
    on_progress: progress.ProgressCallback | None,
    turn: Any = None,
) -> CallResult:
    """Wait for the root call. With `on_progress`, the gateways and the pool count the run's
    calls and the driver polls them every `progress.PROGRESS_INTERVAL_S` while it waits
    (nothing is sent per call); the last snapshot has `finished=True`. If `on_progress` raises, the run is cancelled and the
    exception propagates."""
    if on_progress is None:
        return await _await_root(runtime, spec, turn)
    actors = [*runtime.gateways, runtime.pool]
    started = time.time()
    await asyncio.gather(*(actor.track_run.remote(spec.run_id) for actor in actors))
    root = asyncio.ensure_future(_await_root(runtime, spec, turn))
    poll = asyncio.ensure_future(_poll_progress(actors, spec.run_id, started, on_progress))
    try:
        return await watched(root, poll)
    finally:
        root.cancel()
        poll.cancel()
        final = await _read_progress(actors, spec.run_id, started, forget=True)
        trace = _trace_of(root)
        if trace is not None:  # the counts of a node lost on the way are in the trace
            final = final_progress(spec.run_id, time.time() - started, trace, final)
        if final is not None:
            on_progress(replace(final, finished=True))


def _trace_of(root: asyncio.Future) -> Any:
    """The call tree a finished root brought back (also with its error), else None."""
    if not root.done() or root.cancelled():
        return None
    error = root.exception()
    return root.result().trace if error is None else getattr(error, "trace", None)


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


async def _await_root(runtime: Runtime, spec: CallSpec, turn: Any = None) -> CallResult:
    ref = runtime.pool.run_call.remote(spec, runtime.gateways, turn)
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
    result = cap_answer(result, spec.config)  # before anything here copies it (redaction)
    if result.error is not None:
        result.error.trace = result.trace  # type: ignore[attr-defined]  # what the run did
        raise result.error
    return result
