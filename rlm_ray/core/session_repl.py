"""A session's REPL between questions, free of Ray: what the model is told when a new question
starts, and how a lost REPL is rebuilt from the cells the session recorded.

A session (`rlm_ray.session.Session`) keeps one `REPLSession` alive in its pinned worker, so the
namespace survives from one question to the next. Each question carries a `SessionTurn`: the
earlier questions and answers, the session's successful cells in order, and its variables as last
seen. A worker that has no REPL for the session (the first question, or its process was lost)
builds one and `replay`s the cells:

    a cell that made no sub-call          re-run: it is pure with respect to the outside world
    a cell that made model sub-calls      re-run only when the call cache is on (its calls are
                                          answered from the cache, nothing is spent again);
                                          else skipped
    a cell's own tool calls               answered from what they returned the first time
                                          (`ToolReplay`): no tool runs again, no `approve` is
                                          asked again; a call the cell did not make then fails
    a cell whose child RLM called a tool  skipped: the child's calls cannot be answered here
    a cell touching what a skipped or     skipped too, so no value is silently rebuilt from
      failed cell assigned or mutated       stale inputs

Whatever could not be rebuilt is deleted and named in the question's first turn (`Restored`).
"""

from __future__ import annotations

import ast
import dataclasses
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rlm_ray.core.parsing import truncate
from rlm_ray.core.repl import REPLSession, describe_value
from rlm_ray.core.subcalls import Backend
from rlm_ray.sandbox.allowlist import ModuleProxy
from rlm_ray.tools import ToolCall, ToolResult
from rlm_ray.types import CallResult, CallTrace, CellTrace

MAX_HISTORY = 5  # earlier exchanges shown at a new question
MAX_QUERY_CHARS = 300
MAX_ANSWER_CHARS = 600
MAX_VARIABLES = 40

FOLLOW_UP_TURN = (
    "This is a follow-up question in a session. Your REPL is the one you used for the earlier "
    "questions: `context` and the variables you defined are still there.\n\n"
    "{restored}Variables (as SHOW_VARS() lists them):\n{variables}\n\n"
    "Earlier questions and answers, oldest first:\n{history}\n\n"
    "Use the variables or look at the context again as you need; answer only from what you have "
    "actually seen.\n\nQuery: {query}"
)


@dataclass(frozen=True)
class RecordedCell:
    """A cell of the session that ran without error, as recorded in its question's trace."""

    code: str
    made_subcalls: bool  # model sub-calls: llm_query, recursive_llm, the record operators
    tool_calls: tuple[tuple[ToolCall, ToolResult], ...] = ()  # its tool calls, what they got
    tools_answerable: bool = True  # every tool call under it is in `tool_calls` (no child's)


@dataclass(frozen=True)
class Exchange:
    query: str
    answer: str


@dataclass
class SessionTurn:
    """What a session's question carries to its worker besides its `CallSpec`."""

    session_id: str
    history: tuple[Exchange, ...] = ()
    cells: tuple[RecordedCell, ...] = ()
    variables: dict[str, str] = field(default_factory=dict)  # name -> description, last seen
    replay_subcalls: bool = False  # the call cache is on: cells with sub-calls may re-run


@dataclass
class SessionCallResult(CallResult):
    """A session question's `CallResult`, with the session's variables after it."""

    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Restored:
    """What rebuilding a lost REPL achieved."""

    rerun: int
    skipped: int
    failed: int
    lost: tuple[str, ...]

    def notice(self) -> str:
        text = (
            f"REPL RESTORED: the process holding your REPL was lost and replaced. {self.rerun} "
            "earlier cell(s) were re-run from their recorded code"
        )
        if self.skipped or self.failed:
            text += (
                f"; {self.skipped} cell(s) that made sub-calls (or used their results) were not "
                f"re-run and {self.failed} failed when re-run"
            )
        if self.lost:
            text += ". These variables are LOST (compute them again if you need them): " + (
                ", ".join(self.lost)
            )
        else:
            text += ". No variable was lost"
        return text + "."


class ToolReplay:
    """The backend of a REPL being rebuilt (a `subcalls.Backend`): every sub-call goes to
    `backend`, except the tool calls of a cell being replayed (`answering`), which get what
    the same calls got the first time. A call that matches no record (another tool, other
    arguments, one call too many) fails without running: a tool never runs twice."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._records: list[tuple[ToolCall, ToolResult]] | None = None
        self._lock = threading.Lock()  # a fan-out starts its tool calls from many threads

    @contextmanager
    def answering(self, records: tuple[tuple[ToolCall, ToolResult], ...]) -> Iterator[None]:
        self._records = list(records)
        try:
            yield
        finally:
            self._records = None

    def start_tool(self, call: ToolCall) -> Any:
        if self._records is None:
            return self._backend.start_tool(call)
        # subtle: matched by tool and arguments, not by position: a fan-out's calls start in
        # any order (equal calls of one fan-out may get each other's results)
        with self._lock:
            for i, (made, result) in enumerate(self._records):
                if (made.name, made.arguments) == (call.name, call.arguments):
                    del self._records[i]
                    return _Recorded(dataclasses.replace(result, ran=False))  # not run again
        error = (
            f"tool `{call.name}` was not run: the REPL is being rebuilt, and this cell made no "
            "such call the first time (a rebuild answers tool calls only from what they got)"
        )
        return _Recorded(ToolResult(error=error, refused=True))

    def start_llm(self, prompt: str | list, model: str | None) -> Any:
        return self._backend.start_llm(prompt, model)

    def start_rlm(self, query: str, context: Any, model: str | None) -> Any:
        return self._backend.start_rlm(query, context, model)

    def train_proxy(self, records: list, labels: list, vectors: Any = None) -> Any:
        return self._backend.train_proxy(records, labels, vectors)

    def score_proxy(self, proxy: Any, records: list, vectors: Any = None) -> Any:
        return self._backend.score_proxy(proxy, records, vectors)

    def embed(self, records: list, model: str) -> tuple[Any, list[tuple[bool, Any]]]:
        return self._backend.embed(records, model)

    def note(self, line: str) -> None:
        self._backend.note(line)

    def fetch(self, handles: list[Any]) -> list[tuple[bool, Any]]:
        live = [h for h in handles if not isinstance(h, _Recorded)]
        fetched = iter(self._backend.fetch(live) if live else [])
        return [(True, h.result) if isinstance(h, _Recorded) else next(fetched) for h in handles]

    def cancel(self, handles: list[Any]) -> None:
        self._backend.cancel([h for h in handles if not isinstance(h, _Recorded)])


@dataclass(frozen=True)
class _Recorded:
    result: ToolResult


def record_cells(trace: CallTrace | None) -> list[RecordedCell]:
    """The cells of a question's root call that ran without error, in order."""
    if trace is None:
        return []
    return [
        _recorded(cell)
        for iteration in trace.iterations
        for cell in iteration.cells
        if cell.error is None and not cell.timed_out
    ]


def _recorded(cell: CellTrace) -> RecordedCell:
    tools = [sub for sub in cell.subcalls if sub.kind == "tool"]
    records = tuple(sub.tool_record for sub in tools if sub.tool_record is not None)
    children = [sub for sub in cell.subcalls if sub.kind == "rlm"]
    # subtle: a child RLM with no trace (it failed before it could send one) may have called
    # tools too: the cell is not answerable either
    in_children = any(sub.child is None or _called_tools(sub.child) for sub in children)
    answerable = len(records) == len(tools) and not in_children
    model_calls = len(tools) < len(cell.subcalls)
    return RecordedCell(cell.code, model_calls, records, answerable)


def _called_tools(call: CallTrace) -> bool:
    return any(
        sub.kind == "tool"
        for node in call.walk()
        for iteration in node.iterations
        for cell in iteration.cells
        for sub in cell.subcalls
    )


def variables(repl: REPLSession) -> dict[str, str]:
    """The REPL's own variables, described as SHOW_VARS does (read under a cell's clock: a
    value may be of a class the model defined)."""
    sandbox = repl.sandbox

    def read() -> dict[str, str]:
        names = sandbox.variables()
        return {name: describe_value(sandbox.namespace[name]) for name in names if name != "answer"}

    found, error = sandbox.evaluate(read)
    return {} if error is not None else found


def replay(
    repl: REPLSession,
    cells: tuple[RecordedCell, ...],
    expected: dict[str, str],
    *,
    subcalls: bool,
    tools: ToolReplay | None = None,
) -> Restored:
    """Re-run a lost REPL's recorded cells in `repl` (see the module docstring); delete what
    could not be rebuilt and name it, with what `expected` (the variables last seen) lacks.
    `tools`: the backend `repl` was built on, which answers the cells' tool calls (without
    it, a cell that called a tool is skipped)."""
    tainted: set[str] = set()
    rerun = skipped = failed = 0
    for cell in cells:
        touched = _touched(cell.code, repl)
        if not _may_rerun(cell, subcalls, tools) or (_names(cell.code) & tainted):
            tainted |= touched
            skipped += 1
            continue
        if tools is None:
            report = repl.run(cell.code)
        else:
            with tools.answering(cell.tool_calls):
                report = repl.run(cell.code)
        if report.trace.error is not None or report.trace.timed_out:
            tainted |= touched
            failed += 1
        else:
            rerun += 1
    deleted = tainted & set(variables(repl))
    for name in deleted:
        del repl.sandbox.namespace[name]
    now = variables(repl)
    repl.sandbox.namespace["answer"] = {"content": "", "ready": False}
    # (a tainted name that is no variable now and was none before, such as a local of a
    # function a skipped cell defined, is not reported)
    lost = sorted((set(expected) - set(now)) | deleted) + sorted(
        name for name, kind in expected.items() if name in now and now[name] != kind
    )
    for name in lost:  # present but not as it was: stale
        repl.sandbox.namespace.pop(name, None)
    return Restored(rerun, skipped, failed, tuple(lost))


def _may_rerun(cell: RecordedCell, subcalls: bool, tools: ToolReplay | None) -> bool:
    if cell.made_subcalls and not subcalls:
        return False
    return cell.tools_answerable and (tools is not None or not cell.tool_calls)


def _names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _touched(code: str, repl: REPLSession) -> set[str]:
    """Names a cell assigns, defines, imports or mutates (`x.append(...)`, `x[k] = v`): what a
    cell that did not run leaves in a state other than it was. Modules and functions used as
    `name.attr` are not counted (`re.findall` does not change `re`)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    namespace = repl.sandbox.namespace
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.value, ast.Name):
            base = node.value.id
            if base in namespace and not _never_mutated(namespace[base]):
                names.add(base)
    return names


def _never_mutated(value: Any) -> bool:
    """A module, function or class (as SHOW_VARS calls them), told by its exact type alone.

    subtle: this runs outside any cell's clock, once per ``name.attr`` or ``name[k]`` of every
    replayed cell, on values the model made: describing them (`describe_value` walks a list)
    cost minutes on a 20 M-item list, and could run a method of a class the model defined."""
    kind = type(value)
    return (
        issubclass(kind, (ModuleProxy, type))
        or kind is types.FunctionType
        or kind is types.BuiltinFunctionType
    )


def follow_up_turn(turn: SessionTurn, now: dict[str, str], restored: Restored | None) -> str | None:
    """The first user message of a follow-up question, as a template with `{query}` left in
    (None for the session's first question: the prompt's usual first turn)."""
    if not turn.history and restored is None:
        return None
    shown = list(now.items())[:MAX_VARIABLES]
    lines = [f"{name}: {kind}" for name, kind in shown] or ["(no variables)"]
    if len(now) > MAX_VARIABLES:
        lines.append(f"... and {len(now) - MAX_VARIABLES} more (SHOW_VARS() lists all)")
    first = max(1, len(turn.history) - MAX_HISTORY + 1)
    history = [
        f"Q{i}: {truncate(x.query, MAX_QUERY_CHARS)}\nA{i}: {truncate(x.answer, MAX_ANSWER_CHARS)}"
        for i, x in enumerate(turn.history[-MAX_HISTORY:], first)
    ]
    if len(turn.history) > MAX_HISTORY:
        history.insert(0, f"({len(turn.history) - MAX_HISTORY} earlier question(s) not shown)")
    parts = {
        "restored": "" if restored is None else restored.notice() + "\n\n",
        "variables": "\n".join(lines),
        "history": "\n".join(history) or "(none)",
    }
    # subtle: the result is formatted again with the query (`LoopSettings.first_turn`), so the
    # braces of variable names, questions and answers are escaped here.
    escaped = {k: v.replace("{", "{{").replace("}", "}}") for k, v in parts.items()}
    return FOLLOW_UP_TURN.format(**escaped, query="{query}")
