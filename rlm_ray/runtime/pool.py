"""`REPLPool`: the async actor that admits RLM calls to REPL workers.

Admission control: the pool has `max_repl_actors_per_node` slots per node and keeps one slot
free for every depth level that holds none (`slots.Slots`), so a parent waiting on its children
can never take the last slot its children need (the deepest level never waits on REPLs, so it
always finishes).

Placement over nodes (`placement.py`): a call goes to a node holding a copy of its context
(locality), else to the least busy live node; the slots are counted per node, over the nodes
alive now.

Faults: after each model reply the worker sends the pool a checkpoint (the conversation so far).
If the worker dies (killed, its node lost), the pool cancels the call's children and goes on in
a new worker from that checkpoint, the model told that its REPL and variables are gone.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from rlm_ray import progress
from rlm_ray.core.loop import Resume
from rlm_ray.core.spec import CallSpec, Checkpoint, Restart
from rlm_ray.errors import SandboxError
from rlm_ray.limits.slots import Slots
from rlm_ray.prompting import prompts
from rlm_ray.runtime.idle_workers import SPARE_KEEP_S, IdleWorkers, RunLimits, children_to_warm
from rlm_ray.runtime.placement import Placement, near
from rlm_ray.runtime.ray_basics import unwrap
from rlm_ray.types import CallResult, Usage

if TYPE_CHECKING:
    from rlm_ray.core.session_repl import SessionTurn


class REPLPool:
    """Admits RLM calls to REPL workers: slots per node, one kept free per idle depth level.

    Placement: a call goes to a node that holds a copy of its context (locality), else to the
    least busy live node; each node runs at most `slots_per_node` busy workers. A call whose
    worker dies (process killed, node lost) goes on in a new worker from its last checkpoint.
    """

    def __init__(
        self,
        slots_per_node: int,
        memory_mb: int | None,
        warm: Sequence[tuple[str, Any]] = (),
        spare_keep_s: float = SPARE_KEEP_S,
    ) -> None:
        home = ray.get_runtime_context().get_node_id()
        self._idle = IdleWorkers(ray.kill, spare_keep_s)  # by node; spares of deep runs
        self._placed = Placement(home, slots_per_node, memory_mb, self._idle)
        self._deep_runs = 0  # live root calls that may have children (they hold the spares)
        for node, worker in warm:  # started by the driver beside this pool: (node id, actor)
            self._idle.started(node, worker)
        self._slots = Slots(self._capacity)  # the slot rule; its capacity follows the live nodes
        self._running: dict[str, asyncio.Task] = {}
        self._checkpoints: dict[str, Checkpoint] = {}
        self._workers: dict[str, Any] = {}  # call id -> its worker, while it runs
        self._changed = asyncio.Condition()
        self._self = ray.get_runtime_context().current_actor
        self._board = progress.ProgressBoard()  # counters of the runs tracked for progress
        self._sessions: dict[str, _Pin] = {}  # session id -> its pinned worker

    @property
    def _capacity(self) -> int:
        return self._placed.capacity

    def stats(self, reset_peak: bool = False) -> dict[str, Any]:
        held = {d: n for d, n in self._slots.held.items() if n}
        nodes = self._placed.node_stats()
        stats = {
            "capacity": self._capacity,
            "held": held,
            "peak_held": self._slots.peak,  # most REPL calls live at once (since the last reset)
            "idle": self._idle.count(),
            "spares": self._idle.spares(),  # started for deep runs, not used yet
            "running": len(self._running),
            "sessions": len(self._sessions),
            "nodes": nodes,
        }
        if reset_peak:
            self._slots.reset_peak()
        return stats

    def workers(self) -> dict[str, Any]:
        """The worker actor running each call in progress, by call id (to inspect or kill),
        and the worker pinned to each session between its questions, by session id."""
        running = dict(self._workers)
        busy = {id(worker) for worker in running.values()}
        for session_id, pin in self._sessions.items():
            if pin.worker is not None and id(pin.worker) not in busy:
                running[session_id] = pin.worker
        return running

    def checkpoint(self, call_id: str, saved: Checkpoint) -> None:
        """Keep a call's latest checkpoint while it runs (a late, older one is ignored)."""
        old = self._checkpoints.get(call_id)
        if call_id in self._running and (old is None or saved.index >= old.index):
            self._checkpoints[call_id] = saved

    def _has_room(self, depth: int) -> bool:
        """May a call at `depth` take a slot now (`Slots.can_take`, at today's capacity)?"""
        self._slots.capacity = self._capacity
        return self._slots.can_take(depth)

    def track_run(self, run_id: str) -> None:
        self._board.track(run_id)

    def progress(self, run_id: str, forget: bool = False) -> progress.RunCounters | None:
        return self._board.read(run_id, forget)

    def note_stage(self, run_id: str, call_id: str, line: str) -> None:
        """A call's approximate operator is at a new stage ("": it ended); kept for the run's
        progress display if the driver tracks the run."""
        counters = self._board.get(run_id)
        if counters is not None:
            counters.stage(call_id, line)

    async def run_call(
        self, spec: CallSpec, gateways: list, turn: SessionTurn | None = None
    ) -> CallResult:
        """Run one RLM call; a session's question (`turn`) runs on the session's pinned worker,
        in the slot the session holds."""
        self._running[spec.call_id] = asyncio.current_task()  # type: ignore[assignment]
        if spec.depth == 0:
            self._slots.start_run(spec.config.max_depth)
            self._hold_spares(spec, +1)
        counters = self._board.get(spec.run_id)
        if counters is not None:
            counters.rlm_started(spec.depth)
        try:
            if turn is not None:
                return await self._run_pinned(spec, gateways, turn)
            return await self._admit_and_run(spec, gateways)
        except asyncio.CancelledError:
            self._cancel_below(spec, gateways)
            raise
        finally:
            # No call outlives its parent: a parent that stopped at the run's deadline left its
            # children running (one may be busy in host code, where no clock of its own runs).
            self._cancel_calls_below(spec)
            self._running.pop(spec.call_id, None)
            self._checkpoints.pop(spec.call_id, None)
            self._workers.pop(spec.call_id, None)
            if spec.depth == 0:
                self._slots.end_run(spec.config.max_depth)
                self._hold_spares(spec, -1)
            if counters is not None:
                counters.rlm_ended(spec.depth)

    async def _admit_and_run(self, spec: CallSpec, gateways: list) -> CallResult:
        if spec.depth > 0 and spec.admission is not None:  # a child counts as one sub-call
            try:
                await spec.admission.admit_call.remote(spec.run_id)
            except RayTaskError as exc:
                raise unwrap(exc) from None
        async with self._changed:
            await self._changed.wait_for(lambda: self._has_room(spec.depth))
            self._slots.take(spec.depth)
        try:
            return await self._run_on_workers(spec, gateways)
        finally:
            async with self._changed:
                self._slots.give_back(spec.depth)
                self._changed.notify_all()

    async def _run_on_workers(self, spec: CallSpec, gateways: list) -> CallResult:
        """Run the call in a worker; if the worker dies, go on in a new one from the checkpoint."""
        restart: Restart | None = None
        while True:
            worker, node = await self._placed.take(near(spec))
            self._workers[spec.call_id] = worker
            try:
                run = worker.run.options(name=f"rlm call depth={spec.depth} call={spec.call_id}")
                result = await run.remote(spec, gateways, self._self, restart)
            except RayTaskError as exc:  # first: it may wrap a RayActorError of a *gateway*
                self._placed.release(worker, node)
                raise unwrap(exc) from None
            except RayActorError as exc:
                self._placed.release(None, node)  # dead: never reuse
                restart = self._restart_after_loss(spec, restart, exc)
                continue
            except asyncio.CancelledError:
                # The worker may be mid-cell and cannot be interrupted cooperatively: it goes.
                ray.kill(worker)
                self._placed.release(None, node)
                raise
            self._placed.release(worker, node)
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

    async def prewarm(self, limits: RunLimits, root: bool = True, started: Sequence = ()) -> None:
        """Start a deep run's children's workers (its root's too if `root`); some `started`."""
        for node, worker in started:
            self._idle.started(node, worker, spare=True)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        children = children_to_warm(limits, cpus, self._capacity)
        if children:
            self._idle.start_spares(
                children + int(root), self._placed.room(), self._placed.new_worker
            )
        if not self._deep_runs:  # if the run never comes (its driver failed), they still go
            self._idle.release_spares_later()

    def _hold_spares(self, spec: CallSpec, change: int) -> None:
        """Spares wait while a root that may use them runs; after the last, they go in time."""
        if spec.config.max_depth > 1:
            self._deep_runs += change
            if self._deep_runs:
                self._idle.hold_spares()
            else:
                self._idle.release_spares_later()

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

    # -- sessions: a worker pinned to one session's REPL between its questions ----------------
    async def open_session(
        self, session_id: str, max_depth: int, context_ref: Any, wait_s: float
    ) -> None:
        """Pin a worker to a session until `close_session`.

        A session counts against the pool's capacity like a root call that lasts as long as the
        session: it holds one depth-0 slot (and its worker) from open to close, and each of its
        questions runs in that slot on that worker; their `recursive_llm` children take slots
        as usual, under the same rule (`Slots`), so a session never starves its own children.
        When the pool is full (every slot held by runs or by other sessions), opening waits for a
        slot as a root call would, but at most `wait_s`: then it fails with `SandboxError`
        naming the open sessions, since a session that is never closed keeps its slot for good
        and waiting on it could last forever.
        """
        self._slots.start_run(max_depth)  # its levels stay reserved while it lives
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: self._has_room(0)), wait_s)
                self._slots.take(0)
        except asyncio.TimeoutError:
            self._slots.end_run(max_depth)
            raise SandboxError(
                f"no REPL slot became free within {wait_s:g} s to open a session: the pool's "
                f"{self._capacity} slot(s) are held ({len(self._sessions)} by open sessions); "
                "close a session, or raise `max_repl_actors_per_node`"
            ) from None
        except BaseException:
            self._slots.end_run(max_depth)
            raise
        worker, node = await self._placed.take(context_ref)
        self._sessions[session_id] = _Pin(worker, node, max_depth)

    async def close_session(self, session_id: str) -> bool:
        """End a session: its worker process (and the REPL in it) goes, its slot comes back.
        False if it was not open (closed already)."""
        pin = self._sessions.pop(session_id, None)
        if pin is None:
            return False
        if pin.worker is not None:
            ray.kill(pin.worker)
        self._placed.release(None, pin.node)  # its worker goes with its REPL
        async with self._changed:
            self._slots.give_back(0)
            self._slots.end_run(pin.max_depth)
            self._changed.notify_all()
        return True

    def session_workers(self) -> dict[str, Any]:
        """The worker pinned to each open session, by session id (None while it is lost)."""
        return {sid: pin.worker for sid, pin in self._sessions.items()}

    async def _run_pinned(self, spec: CallSpec, gateways: list, turn: SessionTurn) -> CallResult:
        """A session's question on its pinned worker. A lost worker (killed, its node gone, or
        a cancelled question that took it down) is replaced by a new one, which rebuilds the
        session's REPL from its recorded cells (`session_repl.replay`), then resumes like any
        call that lost its REPL."""
        restart: Restart | None = None
        await self._probe_pin(turn.session_id)
        while True:
            pin = self._sessions.get(turn.session_id)
            if pin is None:
                raise SandboxError(f"session {turn.session_id} is closed")
            if pin.worker is None:
                self._repin(pin)
            worker = pin.worker
            self._workers[spec.call_id] = worker
            try:
                run = worker.run_session.options(name=f"rlm session question call={spec.call_id}")
                return await run.remote(spec, gateways, self._self, restart, turn)
            except RayTaskError as exc:
                raise unwrap(exc) from None
            except RayActorError as exc:
                pin.worker = None
                restart = self._restart_after_loss(spec, restart, exc)
            except asyncio.CancelledError:
                ray.kill(worker)  # mid-cell, as in `_run_on_workers`: the next question replays
                pin.worker = None
                raise

    async def _probe_pin(self, session_id: str) -> None:
        """A worker lost between two questions is replaced before the next one starts, so the
        loss is not counted against that question's `max_repl_restarts`."""
        pin = self._sessions.get(session_id)
        if pin is None or pin.worker is None:
            return
        try:
            await pin.worker.__ray_ready__.remote()
        except RayActorError as exc:
            print(
                f"rlm-ray: the REPL of session {session_id} was lost between questions "
                f"({_loss_reason(exc)}); rebuilding it",
                file=sys.stderr,
            )
            pin.worker = None

    def _repin(self, pin: _Pin) -> None:
        """A new worker for a session whose worker was lost: on its node if alive, else on the
        least busy live node (the pin keeps counting as busy where it is)."""
        pin.node = self._placed.rehome(pin.node)
        pin.worker = self._placed.new_worker(pin.node)


@dataclass
class _Pin:
    worker: Any  # None while lost: the next question makes a new one
    node: str
    max_depth: int


def _loss_reason(exc: RayActorError) -> str:
    text = str(exc).lower()
    if "node" in text and ("died" in text or "dead" in text or "removed" in text):
        return "its node left the cluster"
    return "its process died: it crashed, or a cell outran its time limit and was killed"


RemotePool: Any = ray.remote(REPLPool)
