"""A session's REPL between questions, free of Ray: what the model is told when a new question
starts, and how a lost REPL is rebuilt from the cells the session recorded.

A session (`rlm_ray.session.Session`) keeps one `REPLSession` alive in its pinned worker, so the
namespace survives from one question to the next. Each question carries a `SessionTurn`: the
earlier questions and answers, the session's successful cells in order, and its variables as last
seen. A worker that has no REPL for the session (the first question, or its process was lost)
builds one and `replay`s the cells:

    a cell that made no sub-call          re-run: it is pure with respect to the outside world
    a cell that made sub-calls            re-run only when the call cache is on (its calls are
                                          answered from the cache, nothing is spent again);
                                          else skipped
    a cell touching what a skipped or     skipped too, so no value is silently rebuilt from
      failed cell assigned or mutated       stale inputs

Whatever could not be rebuilt is deleted and named in the question's first turn (`Restored`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from rlm_ray.parsing import truncate
from rlm_ray.repl import REPLSession, describe_value
from rlm_ray.types import CallResult, CallTrace

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
    made_subcalls: bool


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


def record_cells(trace: CallTrace | None) -> list[RecordedCell]:
    """The cells of a question's root call that ran without error, in order."""
    if trace is None:
        return []
    return [
        RecordedCell(cell.code, bool(cell.subcalls))
        for iteration in trace.iterations
        for cell in iteration.cells
        if cell.error is None and not cell.timed_out
    ]


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
    repl: REPLSession, cells: tuple[RecordedCell, ...], expected: dict[str, str], *, subcalls: bool
) -> Restored:
    """Re-run a lost REPL's recorded cells in `repl` (see the module docstring); delete what
    could not be rebuilt and name it, with what `expected` (the variables last seen) lacks."""
    tainted: set[str] = set()
    rerun = skipped = failed = 0
    for cell in cells:
        touched = _touched(cell.code, repl)
        if (cell.made_subcalls and not subcalls) or (_names(cell.code) & tainted):
            tainted |= touched
            skipped += 1
            continue
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
            if base in namespace and describe_value(namespace[base]) not in _NOT_MUTATED:
                names.add(base)
    return names


_NOT_MUTATED = ("module", "function", "class")


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
