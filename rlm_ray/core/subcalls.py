"""Sub-calls: the futures model code gets, and their settlement.

`llm_query(...)` inside the REPL returns a `SubCallFuture` at once; the call is already in flight.
The future turns into its text the first time model code *uses* it (the sandbox guards call
`resolve` on attribute access, iteration, indexing and builtin arguments), so
``[llm_query(p) for p in pieces]`` has every call in flight before the first one is awaited.

`resolve` gathers every unresolved future in an argument tree and waits for all of them with one
call to their waiter, so ``"\\n".join(results)`` costs one round trip, not one per element.

`SubCalls` starts sub-calls through a `Backend` and settles their futures in batches, adds their
usage to the call's total and their trace to the code block that made them. Where the work runs
is the backend's business: the runtime's `RayBackend` runs it on Ray,
`rlm_ray.testing.thread_backend.ThreadBackend` on local threads (tests, debugging). No Ray here.

The model-facing functions that make sub-calls are declared one per kind in
rlm_ray/subcall_kinds/ (their names, prompt text and the `Backend` methods they send through).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rlm_ray import corpus, tools
from rlm_ray.errors import LimitExceededError, SubCallError
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
_MISSING = object()


class Waiter(Protocol):
    def wait(self, futures: list[SubCallFuture]) -> None:
        """Wait for `futures` and settle each one with `_settle(value)` or `_fail(error)`."""


class SubCallFuture:
    """The text a sub-call will return. Behaves like that `str` wherever it is used."""

    __slots__ = ("_handle", "_waiter", "_value", "_error", "__weakref__")

    def __init__(self, handle: Any, waiter: Waiter) -> None:
        self._handle = handle
        self._waiter = waiter
        self._value: Any = _MISSING
        self._error: BaseException | None = None
        _live.add()

    def __del__(self) -> None:
        _live.sub()

    # -- settling (called by the waiter) ------------------------------------------------------
    def _settle(self, value: Any) -> None:
        self._value = value

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._value = None

    @property
    def done(self) -> bool:
        return self._value is not _MISSING

    def result(self) -> Any:
        if self._value is _MISSING:
            self._waiter.wait([self])
        if self._error is not None:
            raise self._error
        return self._value

    # -- behave like the str it becomes -------------------------------------------------------
    def __str__(self) -> str:
        return str(self.result())

    def __repr__(self) -> str:
        return repr(self.result())

    def __format__(self, spec: str) -> str:
        return format(self.result(), spec)

    def __len__(self) -> int:
        return len(self.result())

    def __bool__(self) -> bool:
        return bool(self.result())

    def __hash__(self) -> int:
        return hash(self.result())

    def __eq__(self, other: object) -> bool:
        return self.result() == resolve(other)

    def __ne__(self, other: object) -> bool:
        return self.result() != resolve(other)

    def __lt__(self, other: object) -> bool:
        return self.result() < resolve(other)

    def __le__(self, other: object) -> bool:
        return self.result() <= resolve(other)

    def __gt__(self, other: object) -> bool:
        return self.result() > resolve(other)

    def __ge__(self, other: object) -> bool:
        return self.result() >= resolve(other)

    def __add__(self, other: object) -> Any:
        return self.result() + resolve(other)

    def __radd__(self, other: object) -> Any:
        return resolve(other) + self.result()

    def __mul__(self, other: object) -> Any:
        return self.result() * resolve(other)

    def __rmul__(self, other: object) -> Any:
        return resolve(other) * self.result()

    def __mod__(self, other: object) -> Any:
        return self.result() % resolve(other)

    def __contains__(self, item: object) -> bool:
        return resolve(item) in self.result()

    def __iter__(self):
        return iter(self.result())

    def __getitem__(self, key: Any) -> Any:
        return self.result()[resolve(key)]

    def __int__(self) -> int:
        return int(self.result())

    def __float__(self) -> float:
        return float(self.result())

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the future itself lacks (str methods); never private ones.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.result(), name)


class _LiveCount:
    """How many futures exist: lets `resolve` skip walking containers when there are none."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self._n += 1

    def sub(self) -> None:
        with self._lock:
            self._n -= 1

    def __bool__(self) -> bool:
        return self._n > 0


_live = _LiveCount()

_MAX_WALK_DEPTH = 8
# subtle: exact types only, here and in `_replace`. A container class defined in the REPL could
# override the methods a walk calls, and host code must never run model code (see `boundary`).
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


def contains_futures(obj: Any) -> bool:
    return bool(_live) and bool(_collect(obj, [], 0, set()))


def _collect(obj: Any, out: list[SubCallFuture], depth: int, seen: set[int]) -> list[SubCallFuture]:
    kind = type(obj)
    if kind is SubCallFuture:
        if not obj.done:
            out.append(obj)
        return out
    if depth >= _MAX_WALK_DEPTH or kind not in _CONTAINERS or id(obj) in seen:
        return out
    if id(obj) in _clean_ids:
        return out
    seen.add(id(obj))
    items: Iterable[Any] = dict.items(obj) if kind is dict else obj
    for item in items:
        if kind is dict:
            _collect(item[0], out, depth + 1, seen)
            _collect(item[1], out, depth + 1, seen)
        elif type(item) is SubCallFuture or type(item) in _CONTAINERS:
            _collect(item, out, depth + 1, seen)
    return out


# Objects known to hold no futures (the injected `context`): never walked.
_clean_ids: set[int] = set()


def mark_clean(obj: Any) -> None:
    """Declare that `obj` can never contain a future (e.g. the run's `context`)."""
    _clean_ids.add(id(obj))


def unmark_clean(obj: Any) -> None:
    _clean_ids.discard(id(obj))


def wait_all(futures: list[SubCallFuture]) -> None:
    """Wait for all `futures`, grouped by waiter, one batch per waiter."""
    by_waiter: dict[int, tuple[Waiter, list[SubCallFuture]]] = {}
    for fut in futures:
        if not fut.done:
            by_waiter.setdefault(id(fut._waiter), (fut._waiter, []))[1].append(fut)
    for waiter, batch in by_waiter.values():
        waiter.wait(batch)


def resolve(obj: Any) -> Any:
    """Return `obj` with every future in it replaced by its value.

    Lists, dicts and sets are updated in place (a future *is* its value, so this only makes the
    container cheaper to use next time, and keeps `results.sort()` sorting `results` itself);
    tuples and frozensets are rebuilt. Raises the first failed future's error.
    """
    if type(obj) is SubCallFuture:
        return obj.result()
    if not _live or type(obj) not in _CONTAINERS:
        return obj
    pending = _collect(obj, [], 0, set())
    wait_all(pending)
    return _replace(obj, 0, set())


def _replace(obj: Any, depth: int, seen: set[int]) -> Any:
    kind = type(obj)
    if kind is SubCallFuture:
        return obj.result()
    if depth >= _MAX_WALK_DEPTH or kind not in _CONTAINERS or id(obj) in seen:
        return obj
    if id(obj) in _clean_ids:
        return obj
    seen.add(id(obj))
    if kind is list:
        for i, item in enumerate(obj):
            if type(item) is SubCallFuture or type(item) in _CONTAINERS:
                new = _replace(item, depth + 1, seen)
                if new is not item:
                    obj[i] = new
        return obj
    if kind is dict:
        for key, item in list(dict.items(obj)):
            new_key = _replace(key, depth + 1, seen)
            new = _replace(item, depth + 1, seen)
            if new_key is not key:
                del obj[key]
                obj[new_key] = new
            elif new is not item:
                obj[key] = new
        return obj
    if kind is set:
        if any(type(x) is SubCallFuture for x in obj):
            items = [_replace(x, depth + 1, seen) for x in obj]
            obj.clear()
            obj.update(items)
        return obj
    items = [_replace(x, depth + 1, seen) for x in obj]
    if all(a is b for a, b in zip(items, obj)):
        return obj
    return kind(items)  # tuple or frozenset, exactly


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
        trace.arguments = tools.preview(call.arguments)
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
            trace.result_preview = tools.preview(result.value)
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
