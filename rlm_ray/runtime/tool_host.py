"""Tool calls as Ray work, outside every REPL process: `ToolHost` actors, one per node.

`RayBackend.start_tool` sends each call to a host (`ToolHost.run`): it counts the call against
the run's budget (a tool call is one sub-call of `max_sub_calls`), then `gate.run_tool`
authorizes it by the registered function's own effects (a `write` call asks the driver's
`approve` through the `Approvals` actor), runs the function on one of the host's bounded tool
threads (`tooling/threads.py`) and copies its result as plain data.

`Approvals` relays `approve(call)` to the driver, which owns the callback (it may ask a human):
tool calls wait in `ask`, the driver takes the questions with `questions` and replies with
`answer` (`serve`, run beside the root call by `driver.run_root`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rlm_ray.runtime.ray_basics import unwrap, watched, whereabouts
from rlm_ray.safety.redact import redact
from rlm_ray.sandbox.boundary import plain
from rlm_ray.tooling.gate import run_tool
from rlm_ray.tooling.pickling import thaw
from rlm_ray.tooling.threads import MAX_TOOL_THREADS, ToolThreads
from rlm_ray.tools import ToolCall, ToolResult


class ToolHost:
    """Runs tool calls for every REPL of its node, each on a thread of its own (a threaded actor:
    tools mostly wait on IO, so a fan-out of calls runs side by side in one process)."""

    def __init__(self, max_threads: int = MAX_TOOL_THREADS) -> None:
        self._node_id = ray.get_runtime_context().get_node_id()
        self._threads = ToolThreads(max_threads)  # stuck tools cannot pile up threads

    def ready(self) -> bool:
        return True

    def run(
        self,
        frozen: bytes,
        call: ToolCall,
        run_id: str,
        allow_effects: bool,
        admission: Any,
        approvals: Any,
        secrets: list[str],
    ) -> ToolResult:
        """Count the call against the run's budget, then `gate.run_tool`: the gate, the
        function, its result copied as plain data."""
        if admission is not None:  # the run has a budget: this call is one of its sub-calls
            try:
                ray.get(admission.admit_call.remote(run_id))
            except RayTaskError as exc:
                raise unwrap(exc) from None
        approve = None if approvals is None else functools.partial(_ask, approvals, run_id)
        result = run_tool(
            thaw(frozen),
            call,
            allow_effects=allow_effects,
            approve=approve,
            plain=functools.partial(plain, views=False),
            threads=self._threads,
        )
        if result.error is not None:  # a key the tool echoed stays out of the model's view
            result.error = redact(result.error, secrets)
        result.node_id, result.actor_id, _ = whereabouts()
        return result


def _ask(approvals: Any, run_id: str, call: ToolCall) -> bool:
    return ray.get(approvals.ask.remote(run_id, call))


RemoteToolHost: Any = ray.remote(ToolHost)
_HOSTS: dict[tuple[str, str], list] = {}
_HOSTS_LOCK = threading.Lock()


def tool_hosts() -> list:
    """The driver's tool hosts, one per live node, started by the first run with tools.

    `num_cpus=0`: a REPL waiting for its tool must not hold the CPU the tool needs.
    `max_task_retries=0`: a `write` tool must never run twice because its host died (the call
    fails instead); the host itself is restarted for the next calls. Soft node affinity, as
    for the gateways."""
    ctx = ray.get_runtime_context()
    key = (ctx.get_job_id(), ctx.get_node_id())
    with _HOSTS_LOCK:
        if key not in _HOSTS:
            nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
            _HOSTS[key] = [
                RemoteToolHost.options(
                    num_cpus=0,
                    max_concurrency=MAX_TOOL_THREADS,
                    max_restarts=-1,
                    max_task_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True),
                ).remote()
                for node in nodes
            ]
        return _HOSTS[key]


class Approvals:
    """The mailbox between tool calls waiting for an approval and the driver that gives it."""

    def __init__(self) -> None:
        self._ids = itertools.count()
        self._open: set[str] = set()
        self._waiting: dict[str, dict[int, tuple[ToolCall, asyncio.Future]]] = {}
        self._asked: dict[str, asyncio.Event] = {}

    async def open_run(self, run_id: str) -> None:
        self._open.add(run_id)
        self._waiting.setdefault(run_id, {})
        self._asked.setdefault(run_id, asyncio.Event())

    async def close_run(self, run_id: str) -> None:
        """The run ended: every question still open is answered no."""
        self._open.discard(run_id)
        for _, future in self._waiting.pop(run_id, {}).values():
            if not future.done():
                future.set_result(False)
        self._asked.pop(run_id, None)

    async def ask(self, run_id: str, call: ToolCall) -> bool:
        if run_id not in self._open:
            return False
        future = asyncio.get_running_loop().create_future()
        self._waiting[run_id][next(self._ids)] = (call, future)
        self._asked[run_id].set()
        return await future

    async def questions(self, run_id: str, wait_s: float) -> list[tuple[int, ToolCall]]:
        """The open questions of a run, waiting up to `wait_s` for one."""
        asked = self._asked.get(run_id)
        if asked is None:
            return []
        try:
            await asyncio.wait_for(asked.wait(), wait_s)
        except asyncio.TimeoutError:
            return []
        asked.clear()
        waiting = self._waiting.get(run_id, {})
        return [(i, call) for i, (call, future) in waiting.items() if not future.done()]

    async def answer(self, run_id: str, question: int, approved: bool) -> None:
        entry = self._waiting.get(run_id, {}).pop(question, None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(approved)


_ACTORS: dict[tuple[str, str], Any] = {}
_ACTORS_LOCK = threading.Lock()


def approvals_actor() -> Any:
    """The driver's `Approvals` actor (one per Ray instance), started on first use."""
    ctx = ray.get_runtime_context()
    key = (ctx.get_job_id(), ctx.get_node_id())
    with _ACTORS_LOCK:
        if key not in _ACTORS:
            _ACTORS[key] = (
                ray.remote(Approvals).options(num_cpus=0, max_concurrency=10_000).remote()
            )
        return _ACTORS[key]


async def serve(
    actor: Any,
    run_id: str,
    approve: Callable[[ToolCall], Any],
    run: Callable[[], Awaitable[Any]],
) -> Any:
    """Await `run()` while answering its approval questions with `approve` (in a thread: it may
    block on a human). If `approve` raises, the run is cancelled and its error propagates."""
    await asyncio.wrap_future(actor.open_run.remote(run_id).future())
    root = asyncio.ensure_future(run())
    answering = asyncio.ensure_future(_answer(actor, run_id, approve))
    try:
        return await watched(root, answering)
    finally:
        root.cancel()
        answering.cancel()
        actor.close_run.remote(run_id)


async def _answer(actor: Any, run_id: str, approve: Callable[[ToolCall], Any]) -> None:
    while True:
        questions = await asyncio.wrap_future(actor.questions.remote(run_id, 1.0).future())
        for question, call in questions:
            approved = await asyncio.to_thread(approve, call)
            actor.answer.remote(run_id, question, approved is True)
