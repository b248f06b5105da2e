"""One RLM call's REPL: the sandbox with `context` and the sub-call functions the model uses.

The model-facing names are fixed (they match the RLM literature): `context`, the functions
that make sub-calls (`llm_query`, `llm_query_batched`, `recursive_llm` / `rlm_query`,
`rlm_query_batched`, the record operators `llm_map`, `llm_filter`, `llm_classify`, `llm_count`:
one declaration per kind in rlm_ray/subcall_kinds/), `FINAL`, `FINAL_VAR`, `SHOW_VARS`,
`answer`, the run's tools, and `as_records` (records with named fields,
plans/records.py; a plain helper: no model call).

Sub-calls start at once and return `SubCallFuture`s (`core/futures.py`), which `SubCalls` settles
(`core/subcalls.py`); where the work runs is the `Backend`'s business.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from rlm_ray import corpus, subcall_kinds, tools
from rlm_ray.core import answer_source
from rlm_ray.core.futures import SubCallFuture, mark_clean, resolve, unmark_clean
from rlm_ray.core.parsing import truncate
from rlm_ray.core.subcalls import Backend, SubCalls
from rlm_ray.core.turns import AnswerError, CellReport
from rlm_ray.errors import SubCallError
from rlm_ray.operators.approximate import Approximate
from rlm_ray.plans import records as plan_records
from rlm_ray.safety.redact import redact
from rlm_ray.sandbox import NO_FINAL, FinalAnswer, Sandbox, output
from rlm_ray.sandbox.allowlist import allow_class
from rlm_ray.sandbox.boundary import exact_str, plain
from rlm_ray.sandbox.boundary import type_name as boundary_name
from rlm_ray.sandbox.kill_switch import KillSwitch
from rlm_ray.subcall_kinds import SUBCALL_NAMES
from rlm_ray.types import CellTrace


@dataclass(frozen=True)
class REPLSettings:
    can_recurse: bool
    cell_timeout_s: float | None = 60.0
    max_output_chars: int = 10_000
    max_workers: int = 256
    hard_kill: Callable[[], None] | None = None
    kill_switch: KillSwitch | None = None
    sub_context_window_tokens: int = 128_000  # sizes the record operators' batches
    tools: tuple[tools.ToolSpec, ...] = ()  # the run's tools (rlm_ray/tools.py), by spec only
    # The models `model=` may name (`ModelSettings.allowed`); empty: only the default model.
    allowed_models: tuple[str, ...] = ()
    # Context windows of those models, in tokens (a model not here: the sub-model's window).
    model_windows: Mapping[str, int] = field(default_factory=dict)
    # Masked in a cell's output and error before the model reads them (`redact.py`).
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # The record operators' default targets (`approximate.by_model`); None: exact unless a
    # call gives its own.
    approximate: Approximate | None = None


class REPLSession:
    """The namespace of one RLM call (implements `turns.REPL`).

    Every value model code hands over leaves through `boundary.plain` (sub-call arguments) or as
    text made inside the cell's clock (FINAL, `answer`, FINAL_VAR): nothing the model defined
    reaches host code, other processes or the driver.
    """

    def __init__(self, context: Any, backend: Backend, default_model: str, settings: REPLSettings):
        self.sandbox = Sandbox(
            cell_timeout_s=settings.cell_timeout_s,
            subcall_names=SUBCALL_NAMES + tuple(t.name for t in settings.tools),
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
        mark_clean(context)
        self.sandbox.inject(context=context, SubCallError=SubCallError, **self._functions())
        self.sandbox.namespace["answer"] = {"content": "", "ready": False}

    def close(self) -> None:
        unmark_clean(self.context)
        self.sandbox.close()

    def rebind(self, backend: Backend) -> None:
        """Start a session's next question in this REPL (`session_repl`): its sub-calls go
        through `backend`, their usage counts from zero and `answer` is reset; every variable
        stays."""
        self.subcalls = SubCalls(
            backend, default_model=self.subcalls.default_model, waiting=self.sandbox.waiting
        )
        self.partial_answer = self._answer = self._answer_error = None
        self.sandbox.namespace["answer"] = {"content": "", "ready": False}

    # -- turns.REPL-------------------------------------------------------------------------
    def run(self, code: str) -> CellReport:
        cell = CellTrace(code=code, output="", started_s=time.time())
        self.subcalls.cell = cell
        outcome = self.sandbox.run(code, after=self._probe_answer)
        self.subcalls.cell = None
        cell.output = self._shown(outcome.stdout)
        error = None if outcome.error is None else self._shown(outcome.error)
        cell.error, cell.timed_out, cell.duration_s = error, outcome.timed_out, outcome.duration_s
        if outcome.final is NO_FINAL:
            return CellReport(cell)
        cell.final = True
        return CellReport(cell, final=exact_str(outcome.final), finished_by=outcome.final_kind)

    def _shown(self, text: str) -> str:
        """A cell's output or error as the model reads it: credentials an endpoint echoed into
        a reply or an error masked (before the cut, so no part of one is left), then cut."""
        return truncate(redact(text, self.settings.secrets), self.settings.max_output_chars)

    def lookup(self, name: str) -> str | None:
        def read() -> str | None:
            namespace = self.sandbox.namespace
            return _text(namespace[name]) if name in namespace else None

        value, error = self.sandbox.evaluate(read)  # str() may call the model's own methods
        if error is not None:  # a failed sub-call, an unprintable value: the model is told
            raise AnswerError(f"the final answer could not be computed: {error}")
        return value

    def answer_code(self, literal: str, query: str, cells: Sequence[tuple[str, str]]) -> str | None:
        """Code whose value now is `literal`, an answer the model typed (`answer_source`);
        searched on a cell's clock: it evaluates model-made expressions and reads their values."""

        def search() -> str | None:
            value_of = self.sandbox.value_of
            return answer_source.find_answer_code(literal, query, cells, value_of, _arrived)

        # subtle: a pure expression may still call a function the model defined, which may ask
        # a model or run a tool: while tracing, any sub-call raises (that candidate is skipped)
        held, self.subcalls = self.subcalls, cast(SubCalls, answer_source.NoSubCalls())
        try:
            found, error = self.sandbox.evaluate(search)
        finally:
            self.subcalls = held
        return found if error is None else None

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
            **subcall_kinds.functions(self),
            "FINAL": self._final,
            "FINAL_VAR": self._final_var,
            "SHOW_VARS": self._show_vars,
            "as_records": self._as_records,
            **{spec.name: self._tool_function(spec) for spec in self.settings.tools},
        }

    def show(self, line: str) -> None:
        """`line` in the running cell's output (a sub-call kind's warning or summary)."""
        self.sandbox.print(line)

    def _tool_function(self, spec: tools.ToolSpec) -> Callable[..., Any]:
        """The function the model calls for a tool: arguments bound to its signature and
        copied as plain data here, in the cell; the tool runs elsewhere (the backend's
        business) and this waits for its result, off the cell's clock."""

        def call(*args: Any, **kwargs: Any) -> Any:
            arguments = tools.bind(spec, args, kwargs)
            for name, value in arguments.items():
                arguments[name] = plain(value, f"{spec.name}: argument `{name}`", views=False)
            return self.subcalls.tool(tools.ToolCall(spec.name, spec.effects, arguments)).result()

        call.__name__ = call.__qualname__ = spec.name
        call.__doc__ = spec.doc
        return call

    def _as_records(self, source: Any = None) -> list[dict[str, str]]:
        """`source` (default: `context`) as records: a list of dicts of str whose keys are the
        fields found (plans/records.py): `date | user | text` lines, `key: value` blocks, JSON
        lines, CSV, logfmt, a corpus's documents."""
        value = self.context if source is None else plain(resolve(source), "as_records: `source`")
        if isinstance(value, dict) and any(isinstance(v, (str, list)) for v in value.values()):
            keys = ", ".join(repr(k) for k in value)
            raise TypeError(
                f"as_records: a dict holds record lists; pass one: as_records(context[key]) with key one of {keys}"
            )
        return plan_records.parse(value)

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
    return exact_str(str(resolve(value)))


def _arrived(value: Any) -> Any:
    """A sub-call's result as its text if it has arrived (else None: no wait, a replay asks
    again), any other value as it is."""
    if type(value) is not SubCallFuture:
        return value
    try:
        return value.result() if value.done else None
    except Exception:  # it failed
        return None


def describe_value(value: Any) -> str:
    """What a value is, for the model: SHOW_VARS's line, with the element type of a list."""
    if isinstance(value, corpus.Corpus):
        return f"a corpus view ({len(value):,} characters, {len(value.documents):,} documents)"
    text = output.describe(value)
    if isinstance(value, (list, tuple, set, frozenset)) and value:
        # the element types of the first items only: a model's list may hold 20 M of them
        kinds = sorted({type(item).__name__ for item in itertools.islice(value, _TYPED_ITEMS)})
        text += f" of {kinds[0]}" if len(kinds) == 1 else f" of mixed types ({', '.join(kinds)})"
        if len(value) > _TYPED_ITEMS:
            text += f" (in the first {_TYPED_ITEMS:,})"
    return text


_TYPED_ITEMS = 10_000


allow_class(SubCallError)  # model code catches it by name, so it may hold the class itself
