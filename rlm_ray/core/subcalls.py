"""Sub-calls and their settlement: `SubCalls` starts them through a `Backend` and settles the
futures model code holds (`futures.SubCallFuture`) in batches.

`SubCalls` adds each sub-call's usage to the call's total and its trace to the code block that
made it. Where the work runs is the backend's business: the runtime's `RayBackend` runs it on
Ray, `rlm_ray.testing.thread_backend.ThreadBackend` on local threads (tests, debugging). No Ray
here.

The model-facing functions that make sub-calls are declared one per kind in
rlm_ray/subcall_kinds/ (their names, prompt text and the `Backend` methods they send through).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rlm_ray import corpus, tools
from rlm_ray.core.futures import SubCallFuture
from rlm_ray.errors import LimitExceededError, SubCallError
from rlm_ray.tooling import shown
from rlm_ray.tools import ToolCall
from rlm_ray.types import (
    CallResult,
    CallTrace,
    CascadeTrace,
    CellTrace,
    LLMReply,
    SubCallTrace,
    Usage,
)

_PREVIEW = 200
_POLL_S = 0.2  # how often a thread waiting on another thread's fetch looks again


# -- settlement ---------------------------------------------------------------------------------
class Backend(Protocol):
    """Starts sub-calls somewhere and waits for them."""

    def start_llm(self, prompt: str | list, model: str | None) -> Any:
        """`prompt`: a str, or parts (str and corpus views) that become text where the call is
        made (`corpus.render`)."""

    def start_rlm(self, query: str, context: Any, model: str | None) -> Any: ...

    def start_tool(self, call: ToolCall) -> Any:
        """Run a tool call where tools run; its outcome is a `tools.ToolResult`."""

    def fetch(self, handles: list[Any]) -> list[tuple[bool, Any]]:
        """Wait for `handles`; per handle (True, LLMReply | CallResult) or (False, exception)."""

    def cancel(self, handles: list[Any]) -> None:
        """Stop sub-calls whose results nobody will use (best effort)."""

    def train_proxy(self, records: list, labels: list, vectors: Any = None) -> Any:
        """A cascade's proxy (rlm_ray/cascade/proxy.py) trained on `records` (str or corpus
        views, read where the training runs) and the oracle's `labels` (and the records'
        embeddings: `vectors`, from `embed`); returns a handle that `score_proxy` takes.
        Blocks until it is trained."""

    def score_proxy(self, proxy: Any, records: list, vectors: Any = None) -> Any:
        """The proxy's scores of `records` (a numpy array, one row per record), computed in
        parallel where the backend runs work; blocks until all are scored."""

    def embed(self, records: list, model: str) -> tuple[Any, list[tuple[bool, Any]]]:
        """`records` embedded by `model` in batched calls: the vectors' handle (its `rows`
        give `vectors` above) and per call (True, LLMReply) or (False, the exception)."""

    def note(self, line: str) -> None:
        """A line for the run's live progress (a cascade's stage); "" clears it. Best effort."""


@dataclass
class _Pending:
    handle: Any
    trace: SubCallTrace
    done: threading.Event = field(default_factory=threading.Event)
    claimed: bool = False
    call: ToolCall | None = None  # a tool call's own


class SubCalls:
    """Starts sub-calls through a backend and settles their futures (a `Waiter`)."""

    def __init__(self, backend: Backend, *, default_model: str, waiting: Callable[[], Any]) -> None:
        self._backend = backend
        self._model = default_model
        self._waiting = waiting
        self._lock = threading.Lock()
        self._open: list[SubCallFuture] = []
        self.usage = Usage()
        self.cell: CellTrace | None = None
        self.limit_hit: LimitExceededError | None = None  # a run limit refused a sub-call
        self.record_tools = False
        """Keep each tool call and its full outcome on its trace (`SubCallTrace.tool_record`):
        a session's REPL does, so that a rebuild answers them from there (`session_repl`)."""

    @property
    def default_model(self) -> str:
        """The model of sub-calls that name none (the run's sub-model)."""
        return self._model

    def llm(self, prompt: str | list, model: str | None) -> SubCallFuture:
        started = time.time()  # before dispatch: the call may start running at once
        handle = self._backend.start_llm(prompt, model)
        return self._track(handle, "llm", model, corpus.preview(prompt, _PREVIEW), started)

    def rlm(self, query: str, context: Any, model: str | None) -> SubCallFuture:
        started = time.time()
        handle = self._backend.start_rlm(query, context, model)
        return self._track(handle, "rlm", model, query, started)

    def tool(self, call: ToolCall) -> SubCallFuture:
        """A tool call (rlm_ray/tools.py); its future settles to the tool's plain result."""
        started = time.time()
        handle = self._backend.start_tool(call)
        future = self._track(handle, "tool", "", f"{call.name}(...)", started)
        future._handle.call = call
        trace = future._handle.trace
        trace.tool, trace.effects = call.name, call.effects
        trace.arguments = shown.preview(call.arguments)
        trace.prompt_preview = f"{call.name}({trace.arguments})"[:_PREVIEW]
        return future

    def train_proxy(self, records: list, labels: list, vectors: Any = None) -> Any:
        """A cascade's proxy, trained by the backend (a wait on other work, like a fetch)."""
        with self._waiting():
            return self._backend.train_proxy(records, labels, vectors)

    def score_proxy(self, proxy: Any, records: list, vectors: Any = None) -> Any:
        with self._waiting():
            return self._backend.score_proxy(proxy, records, vectors)

    def embed(self, records: list, model: str) -> Any:
        """`records` embedded by `model` for a cascade's proxy; each call on the cell's trace
        (kind "embed") and in `usage`. Raises `LimitExceededError` if a run limit refused a
        call, else `SubCallError` if one failed (the cascade then uses n-grams alone)."""
        started = time.time()
        with self._waiting():
            embedded, outcomes = self._backend.embed(records, model)
        failed: BaseException | None = None
        for ok, value in outcomes:
            trace = SubCallTrace("embed", model, f"{len(records):,} records", started_s=started)
            trace.duration_s = time.time() - started
            if ok:
                self._account(trace, value)
                _record_where(trace, value)
            else:
                trace.error = f"{type(value).__name__}: {value}"
                if failed is None or isinstance(value, LimitExceededError):
                    failed = value
            with self._lock:
                if self.cell is not None:
                    self.cell.subcalls.append(trace)
        if isinstance(failed, LimitExceededError):
            self.limit_hit = failed
            raise failed
        if failed is not None:
            raise SubCallError(f"embedding by {model!r} failed: {failed}")
        return embedded

    def note(self, line: str) -> None:
        self._backend.note(line)

    def record_cascade(self, trace: CascadeTrace, proxy_decided: int) -> None:
        """What an approximate operator did: on the running cell's trace, and in `usage`."""
        with self._lock:
            self.usage.proxy_decided += proxy_decided
            if self.cell is not None:
                self.cell.cascades.append(trace)

    def _track(
        self, handle: Any, kind: str, model: str | None, prompt: str, started: float
    ) -> SubCallFuture:
        trace = SubCallTrace(kind, model or self._model, prompt[:_PREVIEW], started_s=started)
        if kind == "tool":
            trace.model = ""
        future = SubCallFuture(_Pending(handle, trace), self)
        with self._lock:
            if self.cell is not None:
                self.cell.subcalls.append(trace)
            self._open.append(future)
        return future

    def wait(self, batch: list[SubCallFuture]) -> None:
        pending = [f for f in batch if not f.done]
        with self._waiting():
            while pending:
                self._fetch_unclaimed(pending)
                for future in pending:  # claimed by another thread: it settles them
                    future._handle.done.wait(_POLL_S)
                pending = [f for f in pending if not f.done]

    def _fetch_unclaimed(self, pending: list[SubCallFuture]) -> None:
        with self._lock:
            mine = [f for f in pending if not f.done and not f._handle.claimed]
            for f in mine:
                f._handle.claimed = True
        if not mine:
            return
        try:
            outcomes = self._backend.fetch([f._handle.handle for f in mine])
        except BaseException:
            # subtle: interrupted (a cell timeout, a cancel): give the futures back so the next
            # waiter fetches them, or every later use would wait forever.
            with self._lock:
                for f in mine:
                    f._handle.claimed = False
            raise
        for future, (ok, value) in zip(mine, outcomes):
            self._settle(future, ok, value)

    def _settle(self, future: SubCallFuture, ok: bool, value: Any) -> None:
        pending: _Pending = future._handle
        trace = pending.trace
        trace.duration_s = time.time() - trace.started_s
        if ok and isinstance(value, tools.ToolResult):
            self._settle_tool(future, value)
            return
        if ok:
            self._account(trace, value)
            _record_where(trace, value)
        error = value if not ok else getattr(value, "error", None)
        if error is None:
            answer = value.answer if isinstance(value, CallResult) else value.text
            trace.result_preview = str(answer)[:_PREVIEW]
            future._settle(answer)
        else:  # a failed child still spent tokens: accounted above, then the code sees the error
            trace.error = f"{type(error).__name__}: {error}"
            if isinstance(error, LimitExceededError):
                self.limit_hit = error  # the run is stopping: the loop ends after this cell
            what = f"tool `{trace.tool}`" if trace.kind == "tool" else f"{trace.kind} sub-call"
            future._fail(SubCallError(f"{what} failed: {error}"))
        pending.done.set()

    def _settle_tool(self, future: SubCallFuture, result: tools.ToolResult) -> None:
        pending: _Pending = future._handle
        trace = pending.trace
        _record_where(trace, result)
        trace.decision = result.decision
        if self.record_tools:
            trace.tool_record = (pending.call, result)
        if result.ran:
            with self._lock:
                self.usage.tool_calls += 1
        if result.error is None:
            trace.result_preview = shown.preview(result.value)
            future._settle(result.value)
        else:
            trace.error = result.error
            refusal = result.refused  # its text names the tool and why
            message = result.error if refusal else f"tool `{trace.tool}` failed: {result.error}"
            future._fail(SubCallError(message))
        pending.done.set()

    def _account(self, trace: SubCallTrace, value: LLMReply | CallResult) -> None:
        spent = _usage_of(value)
        with self._lock:
            self.usage.add(spent)
        trace.input_tokens, trace.output_tokens = spent.input_tokens, spent.output_tokens
        trace.cost_usd = spent.cost_usd
        if isinstance(value, CallResult):
            trace.child = value.trace
        else:
            trace.node_id = value.node_id

    def cancel_open(self) -> None:
        """Cancel every sub-call whose outcome has not arrived (the call is failing), also one
        another thread waits for: that wait then ends with the cancellation, not never."""
        with self._lock:
            still_open = [f for f in self._open if not f.done]
        if still_open:
            self._backend.cancel([f._handle.handle for f in still_open])

    def drain(self) -> None:
        """Wait for every sub-call still in flight, so usage and trace are complete."""
        with self._lock:
            still_open = [f for f in self._open if not f.done]
            self._open = []
        if still_open:
            self.wait(still_open)


def _record_where(trace: SubCallTrace, value: LLMReply | CallResult | tools.ToolResult) -> None:
    """Where and when the sub-call really ran: the gateway's (or the child call's) own record,
    which is more precise than the moment the code collected the outcome."""
    ran = value.trace if isinstance(value, CallResult) else value
    if not ran.started_s:  # a backend that does not record it (in-process threads)
        return
    ended = ran.started_s + ran.duration_s if isinstance(ran, CallTrace) else ran.ended_s
    trace.run_started_s = ran.started_s
    trace.duration_s = max(0.0, ended - trace.started_s)
    trace.node_id, trace.actor_id, trace.pid = ran.node_id, ran.actor_id, ran.pid
    if isinstance(ran, LLMReply):
        trace.chunks_local, trace.chunk_bytes_pulled = ran.chunks_local, ran.chunk_bytes_pulled
        if ran.server_s is not None:
            trace.server_s = min(ran.server_s, ran.ended_s - ran.started_s)


def _usage_of(value: LLMReply | CallResult) -> Usage:
    if isinstance(value, CallResult):
        return value.usage
    usage = Usage()
    usage.add_reply(value)
    return usage
