"""Live progress of a run: counters kept where the work happens, snapshots for the driver.

    gateways: model calls per depth (held, in flight, done), tokens,   ─┐ polled by the driver
              cost; per model server: calls sent, and what its `/slots`  │ every PROGRESS_INTERVAL_S
              says it works on (asked only while polled)                 │
    pool:     RLM calls per depth (in flight, done), the stage of each ─┤
              approximate operator running (sent by its REPL)          │
                                                                        ▼
    driver:   merge -> `Progress` snapshot -> `on_progress(snapshot)`

Nothing is sent per call: the gateways and the pool only bump counters of a run the driver asked
them to track, and the driver asks for the counters a few times a second while it waits for the
root. The cost is a dict lookup per call, and a handful of actor calls per poll.

Depth of a model call: the turns of an RLM call at depth d are at depth d; its `llm_query`
calls (and `recursive_llm` at the depth limit) are at depth d + 1, where a child RLM would be.

Before the run, `StartUp` tells the start-up stage it waits for (a snapshot with `stage` set).

Standard library only (and `rlm_ray.types`): the CLI's rich display is `progress_display.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from rlm_ray.types import LLMReply

PROGRESS_INTERVAL_S = 0.25


@dataclass(frozen=True)
class DepthProgress:
    """Calls at one depth of the tree."""

    depth: int
    rlm_in_flight: int = 0
    """RLM calls (each with its own REPL) started and not finished, waiting for a slot included."""
    rlm_done: int = 0
    """RLM calls finished (answered or failed)."""
    in_flight: int = 0
    """Model calls sent to the provider and not answered yet."""
    done: int = 0
    """Model calls answered (from the cache included) or failed."""
    held: int = 0
    """Model calls the code made that the gateways hold back, not sent yet: the run's cap on
    calls in flight (`max_concurrent_calls`), or two per slot of rlm-ray's own server."""


@dataclass(frozen=True)
class Progress:
    """One snapshot of a run, passed to `RLM(on_progress=...)`.

    Counts only grow from one snapshot to the next (`in_flight` goes up and down); the last
    snapshot of a run has `finished=True` and the final counts.
    """

    run_id: str
    elapsed_s: float
    depths: tuple[DepthProgress, ...] = ()
    calls: int = 0
    """Model calls done, at every depth (cached and failed ones included)."""
    in_flight: int = 0
    """Model calls in flight, at every depth."""
    cached_calls: int = 0
    """Model calls answered by the call cache (no request, no new cost)."""
    failed_calls: int = 0
    """Model calls that failed after their retries."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    """New spend: cached calls cost nothing."""
    finished: bool = False
    running: int | None = None
    """Of the calls in flight, how many the model servers say they are working on (llama.cpp's
    `/slots`); None when no server says (a hosted provider): then all count as in flight."""
    queued: int = 0
    """Model calls waiting: held by the gateways, or sent and waiting in a model server's queue
    (a server with fewer slots than requests works on the others first)."""
    stage: str = ""
    """Before the run: the start-up stage it is in ("starting Ray", "storing the context",
    "assembling the model", "loading the model server", "warming the prompt prefix"); "" once
    the root call runs."""
    stages: tuple[str, ...] = ()
    """What each approximate record operator running now is doing (docs/cascades.md), one line
    per operator call: "llm_filter: the proxy scores 10,000 records"."""

    def summary(self) -> str:
        """One line: calls per depth, tokens, cost, elapsed time."""
        levels = "; ".join(_depth_text(d) for d in self.depths) or "no calls"
        cached = f", {self.cached_calls:,} cached" if self.cached_calls else ""
        failed = f", {self.failed_calls:,} failed" if self.failed_calls else ""
        if self.stage:
            return f"starting: {self.stage}; {self.elapsed_s:.1f} s"
        stages = "".join(f"; {line}" for line in self.stages)
        return (
            f"{self.calls:,} model calls{cached}{failed} ({levels}); "
            f"{self.input_tokens:,} tokens in, {self.output_tokens:,} out; "
            f"${self.cost_usd:.4f}; {self.elapsed_s:.1f} s{stages}"
        )


def _depth_text(d: DepthProgress) -> str:
    parts = []
    if d.rlm_in_flight or d.rlm_done:
        parts.append(f"{d.rlm_done}/{d.rlm_done + d.rlm_in_flight} RLM")
    if d.in_flight or d.done:
        parts.append(f"{d.done}/{d.done + d.in_flight} model")
    return f"depth {d.depth}: " + ", ".join(parts)


ProgressCallback = Callable[[Progress], object]


@dataclass
class RunCounters:
    """The counts one actor keeps for one run (picklable: it is what `progress()` returns)."""

    rlm_in_flight: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    rlm_done: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    done: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    held: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    to_server: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Calls in flight per model server (its `api_base`)."""
    server_busy: dict[str, int] = field(default_factory=dict)
    """Slots each of those servers last said it was working on (`/slots`), where it says."""
    cached_calls: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    stages: dict[str, str] = field(default_factory=dict)
    """call id -> the stage line of the approximate operator that call is running."""

    def stage(self, call_id: str, line: str) -> None:
        if line:
            self.stages[call_id] = line
        else:
            self.stages.pop(call_id, None)

    def rlm_started(self, depth: int) -> None:
        self.rlm_in_flight[depth] += 1

    def rlm_ended(self, depth: int) -> None:
        self.rlm_in_flight[depth] -= 1
        self.rlm_done[depth] += 1

    def call_started(self, depth: int, server: str | None = None) -> None:
        self.in_flight[depth] += 1
        if server:
            self.to_server[server] += 1

    def call_ended(self, depth: int, reply: LLMReply | None, server: str | None = None) -> None:
        """`reply` is None if the call failed or was cancelled."""
        self.in_flight[depth] -= 1
        if server:
            self.to_server[server] -= 1
        self.done[depth] += 1
        if reply is None:
            self.failed_calls += 1
            return
        self.cached_calls += int(reply.cached)
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        self.cost_usd += reply.cost_usd


def merge(run_id: str, elapsed_s: float, parts: Iterable[RunCounters], finished: bool) -> Progress:
    """One snapshot from the counters of every gateway and of the pool."""
    total = RunCounters()
    for part in parts:
        for name in ("rlm_in_flight", "rlm_done", "in_flight", "done", "held", "to_server"):
            mine = getattr(total, name)
            for key, n in getattr(part, name).items():
                mine[key] += n
        total.server_busy.update(part.server_busy)  # one server's word, whoever asked it
        total.cached_calls += part.cached_calls
        total.failed_calls += part.failed_calls
        total.input_tokens += part.input_tokens
        total.output_tokens += part.output_tokens
        total.cost_usd += part.cost_usd
        total.stages.update(part.stages)
    keys = set(total.rlm_in_flight) | set(total.rlm_done) | set(total.in_flight) | set(total.done)
    depths = tuple(
        DepthProgress(
            depth=d,
            rlm_in_flight=total.rlm_in_flight[d],
            rlm_done=total.rlm_done[d],
            in_flight=total.in_flight[d],
            done=total.done[d],
            held=total.held[d],
        )
        for d in sorted(keys | set(total.held))
    )
    running, waiting = _at_servers(total)
    return Progress(
        run_id=run_id,
        elapsed_s=elapsed_s,
        depths=depths,
        calls=sum(d.done for d in depths),
        in_flight=sum(d.in_flight for d in depths),
        cached_calls=total.cached_calls,
        failed_calls=total.failed_calls,
        input_tokens=total.input_tokens,
        output_tokens=total.output_tokens,
        cost_usd=total.cost_usd,
        finished=finished,
        running=running,
        queued=sum(d.held for d in depths) + waiting,
        stages=() if finished else tuple(total.stages[k] for k in sorted(total.stages)),
    )


def _at_servers(total: RunCounters) -> tuple[int | None, int]:
    """(calls the servers work on, calls in their queues), from each server's own word; the
    running count is None if no server of the run says."""
    said = [
        (n, total.server_busy[url])
        for url, n in total.to_server.items()
        if url in total.server_busy
    ]
    if not said:
        return None, 0
    running = sum(min(n, busy) for n, busy in said)
    return running, sum(n for n, _ in said) - running


class ProgressBoard:
    """The counters of the runs the driver tracks, kept by one actor (a gateway or the pool).

    Only runs the driver registered are counted, so a run without `on_progress` leaves no
    state behind, and a straggler call after the driver's last read cannot recreate a run."""

    def __init__(self) -> None:
        self._runs: dict[str, RunCounters] = {}

    def track(self, run_id: str) -> None:
        self._runs.setdefault(run_id, RunCounters())

    def get(self, run_id: str) -> RunCounters | None:
        return self._runs.get(run_id)

    def read(self, run_id: str, forget: bool = False) -> RunCounters | None:
        """The run's counters (a copy travels to the driver); `forget` drops them."""
        return self._runs.pop(run_id, None) if forget else self._runs.get(run_id)


class StartUp:
    """The start-up stages of a run, told to `on_progress` as snapshots with `stage` set: when a
    stage begins (from whichever thread it begins in) and every `PROGRESS_INTERVAL_S` while it
    lasts (`ticking`), so a long one (the local model server loading) shows what it waits for.
    Calls never overlap (a lock). Without `on_progress`, nothing."""

    def __init__(self, on_progress: ProgressCallback | None, started: float) -> None:
        self._on_progress, self._started = on_progress, started
        self.stage = ""
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def enter(self, stage: str) -> None:
        """Stage `stage` begins: told at once."""
        self.stage = stage
        self._tell()

    def _tell(self) -> None:
        if self._on_progress is None or not self.stage:
            return
        with self._lock:
            elapsed = time.time() - self._started
            self._on_progress(Progress(run_id="", elapsed_s=elapsed, stage=self.stage))

    @contextlib.asynccontextmanager
    async def ticking(self) -> AsyncIterator[None]:
        """Tell the current stage every `PROGRESS_INTERVAL_S` inside the block; an error of
        `on_progress` there is raised when the block ends (as during the run: it cancels)."""
        if self._on_progress is None:
            yield
            return

        async def tick() -> None:
            while True:
                await asyncio.sleep(PROGRESS_INTERVAL_S)
                try:
                    self._tell()
                except Exception as exc:
                    self._error = exc
                    return

        ticker = asyncio.ensure_future(tick())
        try:
            yield
        finally:
            ticker.cancel()
            self.stage = ""
        if self._error is not None:
            raise self._error
