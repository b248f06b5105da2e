"""One RLM call's REPL: the sandbox with `context` and the sub-call functions the model uses.

The model-facing names are fixed (they match the RLM literature): `context`, `llm_query`,
`llm_query_batched`, `recursive_llm` / `rlm_query`, `rlm_query_batched`, the record operators
`llm_map`, `llm_filter`, `llm_classify` (record_ops.py), `FINAL`, `FINAL_VAR`, `SHOW_VARS`, `answer`.

Sub-calls start at once and return `SubCallFuture`s; `SubCalls` settles them in batches, adds
their usage to the call's total and their trace to the code block that made them. Where the work
runs is the `Backend`'s business: the runtime's runs on Ray, `ThreadBackend` on local threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, Protocol

from rlm_ray import cell_output, corpus, futures, prompts, record_ops
from rlm_ray.allowlist import allow_class
from rlm_ray.boundary import exact_str, plain
from rlm_ray.boundary import type_name as boundary_name
from rlm_ray.errors import LimitExceededError, SubCallError
from rlm_ray.kill_switch import KillSwitch
from rlm_ray.loop import AnswerError, CellReport
from rlm_ray.parsing import truncate
from rlm_ray.sandbox import NO_FINAL, FinalAnswer, Sandbox
from rlm_ray.types import CallResult, CallTrace, CellTrace, LLMReply, SubCallTrace, Usage

SUBCALL_NAMES = (
    "llm_query",
    "llm_query_batched",
    "recursive_llm",
    "rlm_query",
    "rlm_query_batched",
    "llm_map",
    "llm_filter",
    "llm_classify",
)
_PREVIEW = 200
_POLL_S = 0.2  # how often a thread waiting on another thread's fetch looks again


class Backend(Protocol):
    """Starts sub-calls somewhere and waits for them."""

    def start_llm(self, prompt: str | list, model: str | None) -> Any:
        """`prompt`: a str, or parts (str and corpus views) that become text where the call is
        made (`corpus.render`)."""

    def start_rlm(self, query: str, context: Any, model: str | None) -> Any: ...

    def fetch(self, handles: list[Any]) -> list[tuple[bool, Any]]:
        """Wait for `handles`; per handle (True, LLMReply | CallResult) or (False, exception)."""

    def cancel(self, handles: list[Any]) -> None:
        """Stop sub-calls whose results nobody will use (best effort)."""


@dataclass
class _Pending:
    handle: Any
    trace: SubCallTrace
    done: threading.Event = field(default_factory=threading.Event)
    claimed: bool = False


class SubCalls:
    """Starts sub-calls through a backend and settles their futures (a `futures.Waiter`)."""

    def __init__(self, backend: Backend, *, default_model: str, waiting: Callable[[], Any]) -> None:
        self._backend = backend
        self._model = default_model
        self._waiting = waiting
        self._lock = threading.Lock()
        self._open: list[SubCallFuture] = []
        self.usage = Usage()
        self.cell: CellTrace | None = None
        self.limit_hit: LimitExceededError | None = None  # a run limit refused a sub-call

    def llm(self, prompt: str | list, model: str | None) -> futures.SubCallFuture:
        started = time.time()  # before dispatch: the call may start running at once
        handle = self._backend.start_llm(prompt, model)
        return self._track(handle, "llm", model, corpus.preview(prompt, _PREVIEW), started)

    def rlm(self, query: str, context: Any, model: str | None) -> futures.SubCallFuture:
        started = time.time()
        handle = self._backend.start_rlm(query, context, model)
        return self._track(handle, "rlm", model, query, started)

    def _track(
        self, handle: Any, kind: str, model: str | None, prompt: str, started: float
    ) -> SubCallFuture:
        trace = SubCallTrace(kind, model or self._model, prompt[:_PREVIEW], started_s=started)
        future = futures.SubCallFuture(_Pending(handle, trace), self)
        with self._lock:
            if self.cell is not None:
                self.cell.subcalls.append(trace)
            self._open.append(future)
        return future

    def wait(self, batch: list[futures.SubCallFuture]) -> None:
        pending = [f for f in batch if not f.done]
        with self._waiting():
            while pending:
                self._fetch_unclaimed(pending)
                for future in pending:  # claimed by another thread: it settles them
                    future._handle.done.wait(_POLL_S)
                pending = [f for f in pending if not f.done]

    def _fetch_unclaimed(self, pending: list[futures.SubCallFuture]) -> None:
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

    def _settle(self, future: futures.SubCallFuture, ok: bool, value: Any) -> None:
        pending: _Pending = future._handle
        trace = pending.trace
        trace.duration_s = time.time() - trace.started_s
        if ok:
            self._account(trace, value)
            _record_where(trace, value)
        error = value if not ok else getattr(value, "error", None)
        if error is None:
            future._settle(value.answer if isinstance(value, CallResult) else value.text)
        else:  # a failed child still spent tokens: accounted above, then the code sees the error
            trace.error = f"{type(error).__name__}: {error}"
            if isinstance(error, LimitExceededError):
                self.limit_hit = error  # the run is stopping: the loop ends after this cell
            future._fail(SubCallError(f"{trace.kind} sub-call failed: {error}"))
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
        """Cancel every sub-call not yet claimed by a waiter (the call is failing)."""
        with self._lock:
            still_open = [f for f in self._open if not f.done and not f._handle.claimed]
        if still_open:
            self._backend.cancel([f._handle.handle for f in still_open])

    def drain(self) -> None:
        """Wait for every sub-call still in flight, so usage and trace are complete."""
        with self._lock:
            still_open = [f for f in self._open if not f.done]
            self._open = []
        if still_open:
            self.wait(still_open)


def _record_where(trace: SubCallTrace, value: LLMReply | CallResult) -> None:
    """Where and when the sub-call really ran: the gateway's (or the child call's) own record,
    which is more precise than the moment the code collected the outcome."""
    ran = value.trace if isinstance(value, CallResult) else value
    if not ran.started_s:  # a backend that does not record it (in-process threads)
        return
    ended = ran.started_s + ran.duration_s if isinstance(ran, CallTrace) else ran.ended_s
    trace.run_started_s = ran.started_s
    trace.duration_s = max(0.0, ended - trace.started_s)
    trace.node_id, trace.actor_id, trace.pid = ran.node_id, ran.actor_id, ran.pid


def _usage_of(value: LLMReply | CallResult) -> Usage:
    if isinstance(value, CallResult):
        return value.usage
    usage = Usage()
    usage.add_reply(value)
    return usage


SubCallFuture = futures.SubCallFuture
allow_class(SubCallError)  # model code catches it by name, so it may hold the class itself


@dataclass(frozen=True)
class REPLSettings:
    can_recurse: bool
    cell_timeout_s: float | None = 60.0
    max_output_chars: int = 10_000
    max_workers: int = 256
    hard_kill: Callable[[], None] | None = None
    kill_switch: KillSwitch | None = None
    sub_context_window_tokens: int = 128_000  # sizes the record operators' batches


class REPLSession:
    """The namespace of one RLM call (implements `loop.REPL`).

    Every value model code hands over leaves through `boundary.plain` (sub-call arguments) or as
    text made inside the cell's clock (FINAL, `answer`, FINAL_VAR): nothing the model defined
    reaches host code, other processes or the driver.
    """

    def __init__(self, context: Any, backend: Backend, default_model: str, settings: REPLSettings):
        self.sandbox = Sandbox(
            cell_timeout_s=settings.cell_timeout_s,
            subcall_names=SUBCALL_NAMES,
            max_workers=settings.max_workers,
            hard_kill=settings.hard_kill,
            kill_switch=settings.kill_switch,
        )
        self.subcalls = SubCalls(backend, default_model=default_model, waiting=self.sandbox.waiting)
        self.context = context
        self.settings = settings
        self.partial_answer: str | None = None
        """The last `answer["content"]` the model set as a non-empty str (for a stopped run)."""
        self._answer: str | None = None  # `answer["content"]` as text, once `ready` is True
        self._answer_error: str | None = None
        futures.mark_clean(context)
        self.sandbox.inject(context=context, SubCallError=SubCallError, **self._functions())
        self.sandbox.namespace["answer"] = {"content": "", "ready": False}

    def close(self) -> None:
        futures.unmark_clean(self.context)
        self.sandbox.close()

    # -- loop.REPL --------------------------------------------------------------------------
    def run(self, code: str) -> CellReport:
        cell = CellTrace(code=code, output="", started_s=time.time())
        self.subcalls.cell = cell
        outcome = self.sandbox.run(code, after=self._probe_answer)
        self.subcalls.cell = None
        cell.output = truncate(outcome.stdout, self.settings.max_output_chars)
        error = (
            None
            if outcome.error is None
            else truncate(outcome.error, self.settings.max_output_chars)
        )
        cell.error, cell.timed_out, cell.duration_s = error, outcome.timed_out, outcome.duration_s
        if outcome.final is NO_FINAL:
            return CellReport(cell)
        return CellReport(cell, final=exact_str(outcome.final), finished_by=outcome.final_kind)

    def lookup(self, name: str) -> str | None:
        def read() -> str | None:
            namespace = self.sandbox.namespace
            return _text(namespace[name]) if name in namespace else None

        value, error = self.sandbox.evaluate(read)  # str() may call the model's own methods
        if error is not None:  # a failed sub-call, an unprintable value: the model is told
            raise AnswerError(f"the final answer could not be computed: {error}")
        return value

    def ready_answer(self) -> str | None:
        error, self._answer_error = self._answer_error, None
        if error is not None:
            raise AnswerError(error)
        return self._answer

    def describe(self, name: str) -> str | None:
        """What the variable `name` holds, for the stuck-loop notice (None if undefined); read
        under a cell's clock, as the value may be of a class the model defined."""

        def read() -> str | None:
            namespace = self.sandbox.namespace
            return describe_value(namespace[name]) if name in namespace else None

        value, error = self.sandbox.evaluate(read)
        return value if error is None else None

    def _probe_answer(self) -> None:
        """Read `answer` after each cell, inside its clock: the model may have made it (or its
        content) an object of a class of its own."""
        self._answer = self._answer_error = None
        answer = self.sandbox.namespace.get("answer")
        if type(answer) is not dict:
            if isinstance(answer, dict):  # may call the model's code: we are in the cell
                raise TypeError(
                    "`answer` must be a plain dict such as {'content': ..., 'ready': True}, "
                    f"got {boundary_name(answer)}"
                )
            return
        content = dict.get(answer, "content", "")
        if type(content) is str and content.strip():
            self.partial_answer = exact_str(content)
        if dict.get(answer, "ready") is not True:
            return
        try:
            self._answer = _text(content)
        except Exception as exc:  # a failed sub-call, an unprintable value: the model is told
            dict.__setitem__(answer, "ready", False)  # not an answer yet: it must be set again
            self._answer_error = f"the final answer could not be computed: {exc}"

    # -- what the model calls ---------------------------------------------------------------
    def _functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "llm_query": self._llm_query,
            "llm_query_batched": self._llm_query_batched,
            "recursive_llm": self._recursive_llm,
            "rlm_query": self._rlm_query,
            "rlm_query_batched": self._rlm_query_batched,
            "llm_map": self._llm_map,
            "llm_filter": self._llm_filter,
            "llm_classify": self._llm_classify,
            "FINAL": self._final,
            "FINAL_VAR": self._final_var,
            "SHOW_VARS": self._show_vars,
        }

    def _llm_query(self, prompt: Any, model: str | None = None) -> SubCallFuture:
        """One plain sub-model call; returns its reply text (computed in the background).

        `prompt` may be a corpus slice, or a list of str and slices (joined by a blank line):
        slices travel as handles and become text only where the model call is made.
        """
        parts = corpus.prompt_parts(plain(prompt, "llm_query: `prompt`"), "llm_query")
        return self.subcalls.llm(parts, _model_arg(model))

    def _llm_query_batched(self, prompts_: Sequence[Any], model: str | None = None) -> list:
        """Many `llm_query` calls at once, in order."""
        items = _list_arg("llm_query_batched", "prompts", prompts_)
        return [self._llm_query(p, model) for p in items]

    def _recursive_llm(self, query: Any, context: Any = None) -> SubCallFuture:
        """A child RLM over `context` (the query itself if None); its final answer."""
        return self._rlm_query(query, context)

    def _rlm_query(
        self, prompt: Any, context: Any = None, model: str | None = None
    ) -> SubCallFuture:
        prompt = _text_arg("rlm_query", "prompt", prompt)
        context = None if context is None else plain(context, "rlm_query: `context`")
        if self.settings.can_recurse:  # a child RLM; with no context, its context is the prompt
            return self.subcalls.rlm(
                prompt, prompt if context is None else context, _model_arg(model)
            )
        if isinstance(context, corpus.Corpus):  # one plain call; the slice travels as a handle
            parts = [prompts.plain_call_prompt(prompt, ""), context]
            return self.subcalls.llm(parts, _model_arg(model))
        return self.subcalls.llm(prompts.plain_call_prompt(prompt, context), _model_arg(model))

    def _rlm_query_batched(
        self,
        prompts_: Sequence[Any],
        contexts: Sequence[Any] | None = None,
        model: str | None = None,
    ) -> list:
        items = _list_arg("rlm_query_batched", "prompts", prompts_)
        ctxs = (
            [None] * len(items)
            if contexts is None
            else _list_arg("rlm_query_batched", "contexts", contexts)
        )
        if len(ctxs) != len(items):
            raise ValueError(f"rlm_query_batched: {len(items)} prompts but {len(ctxs)} contexts")
        return [self._rlm_query(p, c, model) for p, c in zip(items, ctxs)]

    # -- record operators (record_ops.py): many records per model call, in parallel -----------
    def _llm_map(self, instruction: Any, items: Any, model: str | None = None) -> list[str]:
        """One answer per item, in order."""
        op = record_ops.map_op(_task_arg("llm_map", "instruction", instruction))
        return self._record_op(op, items, model)

    def _llm_filter(self, condition: Any, items: Any, model: str | None = None) -> list:
        """The items for which `condition` holds, in order."""
        op = record_ops.filter_op(_task_arg("llm_filter", "condition", condition))
        return self._record_op(op, items, model)

    def _llm_classify(self, items: Any, labels: Any, model: str | None = None) -> list[str]:
        """One of `labels` per item, or "unknown"."""
        return self._record_op(record_ops.classify_op(_labels_arg(labels)), items, model)

    def _record_op(self, op: record_ops.Operator, items: Any, model: str | None) -> list:
        records = corpus.record_items(futures.resolve(items), op.fn)
        records = plain(records, f"{op.fn}: `items`")  # what leaves the cell: exact data only
        outcome = run_record_op(
            op,
            records,
            self.subcalls,
            _model_arg(model),
            window_tokens=self.settings.sub_context_window_tokens,
        )
        for warning in outcome.warnings:
            self.sandbox.print(f"[{op.fn} warning] {warning}")
        return outcome.values

    def _final(self, value: Any) -> None:
        # str() here, inside the cell, so a failure is an ordinary error the model sees
        raise FinalAnswer(_text(value), "FINAL")

    def _final_var(self, name: Any) -> None:
        name = _text(name).strip().strip("'\"")
        if name not in self.sandbox.namespace:
            raise NameError(f"FINAL_VAR: there is no variable {name!r}")
        raise FinalAnswer(_text(self.sandbox.namespace[name]), "FINAL_VAR")

    def _show_vars(self) -> None:
        names = self.sandbox.variables()
        if not names:
            self.sandbox.print("No variables yet.")
        for name, kind in names.items():
            self.sandbox.print(f"{name}: {kind}")


def _text(value: Any) -> str:
    """`str(value)` as an exact str; call it inside a cell (it may run the model's methods)."""
    return exact_str(str(futures.resolve(value)))


def run_record_op(
    op: record_ops.Operator,
    records: list,
    subcalls: SubCalls,
    model: str | None,
    *,
    window_tokens: int,
    max_items: int = record_ops.MAX_BATCH_ITEMS,
) -> record_ops.Outcome:
    """A record operator whose batches are sub-calls: each round's batches all start through
    `subcalls` (cache, budgets, rate limits, trace, progress), then are resolved together."""

    def ask(batch_prompts: list) -> list[str]:
        started = [subcalls.llm(prompt, model) for prompt in batch_prompts]
        try:
            return [str(text) for text in futures.resolve(started)]
        except SubCallError as exc:
            raise SubCallError(f"{op.fn}: {exc}") from None

    keys = [corpus.record_key(r) for r in records]
    return record_ops.run(op, records, keys, ask, window_tokens=window_tokens, max_items=max_items)


def describe_value(value: Any) -> str:
    """What a value is, for the model: SHOW_VARS's line, with the element type of a list."""
    if isinstance(value, corpus.Corpus):
        return f"a corpus view ({len(value):,} characters, {len(value.documents):,} documents)"
    text = cell_output.describe(value)
    if isinstance(value, (list, tuple, set, frozenset)) and value:
        kinds = sorted({type(item).__name__ for item in value})
        text += f" of {kinds[0]}" if len(kinds) == 1 else f" of mixed types ({', '.join(kinds)})"
    return text


def _task_arg(fn: str, name: str, value: Any) -> str:
    text = _text_arg(fn, name, value)
    if not text.strip():
        raise ValueError(f"{fn}: `{name}` must be a non-empty str")
    return text


def _labels_arg(labels: Any) -> tuple[str, ...]:
    labels = futures.resolve(labels)
    if isinstance(labels, (str, bytes, dict)) or not hasattr(labels, "__iter__"):
        raise TypeError(
            f"llm_classify: `labels` must be a list of str, got {type(labels).__name__}"
        )
    labels = plain(list(labels), "llm_classify: `labels`", views=False)
    if not labels:
        raise ValueError("llm_classify: `labels` must be a non-empty list of str, got []")
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise TypeError(f"llm_classify: every label must be a non-empty str, got {label!r}")
    if len({label.strip().casefold() for label in labels}) != len(labels):
        raise ValueError(f"llm_classify: `labels` must be distinct, got {labels!r}")
    return tuple(label.strip() for label in labels)


def _text_arg(fn: str, name: str, value: Any) -> str:
    value = plain(value, f"{fn}: `{name}`", views=False)
    if type(value) is not str:
        raise TypeError(f"{fn}: `{name}` must be a str, got {type(value).__name__}")
    return value


def _model_arg(model: Any) -> str | None:
    if model is None:
        return None
    model = plain(model, "`model`", views=False)
    if type(model) is not str or not model.strip():
        raise TypeError(f"`model` must be a model name (str), got {model!r}")
    return model


def _list_arg(fn: str, name: str, value: Any) -> list:
    value = futures.resolve(value)
    if type(value) in (str, bytes) or type(value) is corpus.Corpus:
        raise TypeError(f"{fn}: `{name}` must be a list, got {type(value).__name__}")
    if type(value) not in (list, tuple):  # an iterator, a generator: read here, in the cell
        try:
            value = list(value)
        except TypeError:
            raise TypeError(f"{fn}: `{name}` must be a list, got {type(value).__name__}") from None
    return list(plain(value, f"{fn}: `{name}`"))


class ThreadBackend:
    """Runs sub-calls on local threads: the REPL and the loop without Ray (tests, debugging).

    `llm(messages, model) -> LLMReply`; child RLMs are answered by `rlm(query, context, model)`
    returning a `CallResult` (by default: a plain model call over query and context).
    """

    def __init__(
        self,
        llm: Callable[[list[dict[str, str]], str], LLMReply],
        *,
        default_model: str = "fake",
        rlm: Callable[[str, Any, str], CallResult] | None = None,
        max_workers: int = 64,
    ) -> None:
        self._llm, self._rlm, self._model = llm, rlm, default_model
        self._pool = ThreadPoolExecutor(max_workers=max_workers)

    def start_llm(self, prompt: str | list, model: str | None) -> Future:
        return self._pool.submit(self._llm_call, prompt, model or self._model)

    def _llm_call(self, prompt: str | list, model: str) -> LLMReply:
        return self._llm([{"role": "user", "content": corpus.render(prompt)}], model)

    def start_rlm(self, query: str, context: Any, model: str | None) -> Future:
        if self._rlm is None:
            return self.start_llm(prompts.plain_call_prompt(query, context), model)
        return self._pool.submit(self._rlm, query, context, model or self._model)

    def cancel(self, handles: list[Future]) -> None:
        for handle in handles:
            handle.cancel()

    def fetch(self, handles: list[Future]) -> list[tuple[bool, Any]]:
        wait_futures(handles)
        return [_thread_outcome(h) for h in handles]


def _thread_outcome(future: Future) -> tuple[bool, Any]:
    if future.cancelled():
        return False, RuntimeError("sub-call cancelled")
    error = future.exception()
    return (False, error) if error is not None else (True, future.result())
