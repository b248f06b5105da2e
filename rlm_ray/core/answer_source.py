"""Where an answer the model typed came from: code whose value, after the run, is that answer.

A root model that reads a printed count and types ``FINAL(13)`` leaves no code behind its
answer, and a program cannot replay a number. But the run's code did make that 13: it is still
in the REPL when the run ends, held by a variable or computable from one. `find_answer_code`
looks for it there, once, in the worker, while the REPL is alive, and returns the expression
(``counts['QUESTION']``, ``collections.Counter(labels)['BROKEN']``, ``len(hits)``,
``m.group(1)``) that a replay evaluates after its last cell (`program_mode`). No pattern over
printed text: the value is read where the code put it, so the order a ``Counter`` prints its
keys in, or the words around a number, do not matter.

How (deterministic: the same run finds the same code):

1. The cells whose output showed the literal as a whole token, latest first: a model types what
   it read, and only what a cell showed can have been read.
2. In each, what it showed: the arguments of its top-level ``print(...)`` calls (each field of
   an f-string on its own), a bare expression ending the cell, then the names the cell uses.
   Names bound by a ``for`` or a comprehension are left out (their last value is an accident of
   the data's order), as are calls in loops and functions.
3. Each candidate is evaluated in the REPL if it is a *pure* expression (`is_pure`: names,
   attributes, subscripts, arithmetic, comparisons, comprehensions, and calls of a short list
   of functions and methods that change nothing, so no sub-call, tool or mutation runs again),
   and its value is searched breadth-first for the literal: the value itself, its ``len()``,
   a dict's values by key, a list's items by index, a regex match's groups.
4. The first candidate whose shallowest matches are one path (or one whose dict key the query
   names, when counts tie) gives the answer's code. None: the answer is not traced, and the
   program says it cannot answer (`AnswerRule("none")`).

Bounded (subtle): the search reads model-made values and runs model-made expressions, so the
caller runs it on a cell's clock (`Sandbox.evaluate`); besides, it opens only exact builtin
containers (never a method of a class the model defined; a leaf is compared by ``str()`` only
if it is an exact str, int, float or bool), visits at most `MAX_VALUES` values in all, tries at
most `MAX_CANDIDATES` expressions of at most `MAX_SOURCE_CHARS` characters, and finds the
literal in the outputs with `str.find` (linear).
"""

from __future__ import annotations

import ast
import collections
import itertools
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rlm_ray.core.parsing import text_final
from rlm_ray.operators.record_ops import RecordAnswers
from rlm_ray.types import CallTrace

MAX_VALUES = 50_000
"""Values the search looks at, over every candidate together."""
MAX_CANDIDATES = 40
MAX_SOURCE_CHARS = 2_000
MAX_LITERAL_CHARS = 10_000
_MAX_DEPTH = 4
_MAX_ITEMS = 10_000  # items of one list or dict looked into

PURE_FUNCTIONS = frozenset(
    "abs all any bool dict enumerate float format int len list max min range repr reversed "
    "round set sorted str sum tuple zip Counter".split()
)
"""Functions a traced expression may call: none changes anything."""
PURE_METHODS = frozenset(
    "Counter casefold count endswith find get group groups index items join keys lower "
    "lstrip most_common replace rstrip split splitlines startswith strip title total upper "
    "values".split()
)
"""Methods (and module functions) a traced expression may call."""
_ALLOWED_NODES = (
    ast.Expression, ast.Name, ast.Load, ast.Store, ast.Constant, ast.Attribute, ast.Subscript,
    ast.Slice, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.BinOp, ast.UnaryOp, ast.BoolOp,
    ast.Compare, ast.IfExp, ast.JoinedStr, ast.FormattedValue, ast.Call, ast.keyword,
    ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.comprehension, ast.Lambda,
    ast.arguments, ast.arg, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip
_NOT_VALUES = frozenset({"context", "print", *PURE_FUNCTIONS})  # the input, and functions
_DICTS = (dict, collections.Counter, collections.defaultdict, collections.OrderedDict)
_SEQUENCES = (list, tuple, RecordAnswers)
_SIZED = (*_DICTS, *_SEQUENCES, set, frozenset)
_KEYS = (str, int, bool)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"\w")

Step = tuple[str, Any]  # ("key", k), ("index", i), ("group", i) or ("len", None)


@dataclass(frozen=True)
class _Candidate:
    source: str
    whole: bool = False  # an f-string with a format: only its text is compared, not looked into


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_VALUES

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0


class NoSubCalls:
    """Stands in for a REPL's `SubCalls` while an answer is traced: a function the model
    defined, called by a traced expression, can ask no model and run no tool."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("no sub-call or tool call while the answer is traced")


def typed_answer(trace: CallTrace) -> str | None:
    """The answer of a finished call if its model typed it in a reply (``FINAL(13)`` in the
    text, also as its last word after `max_iterations`), not computed by a cell's FINAL."""
    if trace.answer is None or any(c.final for it in trace.iterations for c in it.cells):
        return None
    if trace.finished_by == "FINAL":
        return trace.answer
    last = trace.iterations[-1].response if trace.iterations else ""
    final = text_final(last) if trace.finished_by == "max_iterations" else None
    return final.value if final is not None and final.kind == "FINAL" else None


def kept_cells(trace: CallTrace) -> list[tuple[str, str]]:
    """(code, output) of the cells of `trace` that a program keeps (those that did not raise)."""
    return [
        (cell.code, cell.output)
        for iteration in trace.iterations
        for cell in iteration.cells
        if cell.error is None and cell.code.strip()
    ]


def find_answer_code(
    literal: str,
    query: str,
    cells: Sequence[tuple[str, str]],
    evaluate: Callable[[str], Any],
    arrived: Callable[[Any], Any] = lambda value: value,
) -> str | None:
    """The code whose value after the run is `literal` (see the module docstring), or None.

    `cells`: (code, output) of the cells the program keeps, in order; `evaluate(source)`: the
    value of an expression in the REPL (raises if it fails); `arrived(value)`: a sub-call's
    result as its text if it has arrived (else None), any other value as it is. Call it on a
    cell's clock."""
    value = literal.strip()
    if not value or len(value) > MAX_LITERAL_CHARS:
        return None
    budget = _Budget()
    for candidate in candidates(value, cells):
        try:
            found = evaluate(candidate.source)
        except Exception:  # a name gone, a changed value: the next candidate
            continue
        steps = _search(found, value, query, budget, candidate.whole, arrived)
        if steps is not None:
            return code(candidate.source, steps)
        if budget.left <= 0:
            return None
    return None


def candidates(literal: str, cells: Sequence[tuple[str, str]]) -> list[_Candidate]:
    """The expressions that may hold `literal`, most likely first (steps 1-2 above)."""
    found: dict[str, _Candidate] = {}
    loop_names = set().union(*(_loop_names(code) for code, _ in cells)) if cells else set()
    for code_, output in reversed(cells):
        if whole_token(output, literal) is None:
            continue
        for candidate in _shown(code_, loop_names):
            if len(candidate.source) <= MAX_SOURCE_CHARS and is_pure(candidate.source):
                found.setdefault(candidate.source, candidate)
    return list(found.values())[:MAX_CANDIDATES]


def _shown(code_: str, loop_names: set[str]) -> Iterator[_Candidate]:
    """What a cell showed (its top-level prints' arguments, a last bare expression), then the
    names it uses that no loop binds."""
    try:
        tree = ast.parse(code_)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    for statement in _top_level(tree.body):
        if not isinstance(statement, ast.Expr):
            continue
        call = statement.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            if call.func.id == "print":
                for argument in call.args:
                    yield from _printed(argument)
        elif statement is tree.body[-1]:  # the REPL shows a last bare expression
            yield from _printed(call)
    used = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    for name in sorted(used, key=lambda n: (n.lineno, n.col_offset)):
        if name.id not in loop_names and name.id not in _NOT_VALUES and not name.id[:1] == "_":
            yield _Candidate(name.id)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run at most once: the cell's own, and those under if/with/try at
    that level (not in loops or functions)."""
    for statement in body:
        yield statement
        if isinstance(statement, (ast.If, ast.With)):
            yield from _top_level(statement.body)
            yield from _top_level(getattr(statement, "orelse", []))
        elif isinstance(statement, ast.Try):
            for part in (statement.body, statement.orelse, statement.finalbody):
                yield from _top_level(part)


def _printed(argument: ast.expr) -> Iterator[_Candidate]:
    if isinstance(argument, ast.JoinedStr):  # each field of an f-string
        for part in argument.values:
            if isinstance(part, ast.FormattedValue):
                plain = part.conversion == -1 and part.format_spec is None
                if plain:
                    yield _Candidate(ast.unparse(part.value))
                else:
                    yield _Candidate(ast.unparse(ast.JoinedStr([part])), whole=True)
    elif not isinstance(argument, (ast.Constant, ast.Starred)):
        yield _Candidate(ast.unparse(argument))


def _loop_names(code_: str) -> set[str]:
    """The names bound by `for` loops and comprehensions of a cell."""
    try:
        tree = ast.parse(code_)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    targets = [n.target for n in ast.walk(tree) if isinstance(n, (ast.For, ast.comprehension))]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def is_pure(source: str) -> bool:
    """Whether `source` is an expression that changes nothing when evaluated: no sub-call, tool,
    assignment or mutating method, nothing private (the names and calls above)."""
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            return False
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return False
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return False
        if isinstance(node, ast.Call) and not _pure_call(node):
            return False
        if isinstance(node, ast.keyword) and not _pure_argument(node.value):
            return False
    return True


def _pure_argument(value: ast.expr) -> bool:
    """A keyword's value (``key=`` of sorted, min, max): a lambda, a method or a listed
    function, not a name that may hold a function of the model's."""
    if isinstance(value, ast.Name):
        return value.id in PURE_FUNCTIONS
    return isinstance(value, (ast.Lambda, ast.Attribute, ast.Constant))


def _pure_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in PURE_FUNCTIONS
    return isinstance(func, ast.Attribute) and func.attr in PURE_METHODS


# -- the search in a value --------------------------------------------------------------------
def _search(
    root: Any,
    literal: str,
    query: str,
    budget: _Budget,
    whole: bool,
    arrived: Callable[[Any], Any],
) -> tuple[Step, ...] | None:
    """The one shallowest path in `root` to a value equal to `literal` (None: none, or a tie
    the query does not settle)."""
    level: list[tuple[tuple[Step, ...], Any]] = [((), root)]
    for _ in range(_MAX_DEPTH + 1):
        found: list[tuple[Step, ...]] = []
        below: list[tuple[tuple[Step, ...], Any]] = []
        for steps, value in level:
            if not budget.spend():
                return None
            value = arrived(value)
            if _equals(value, literal):
                found.append(steps)
            elif type(value) in _SIZED and _equals(len(value), literal):
                found.append((*steps, ("len", None)))
            if not whole:
                below.extend(_children(steps, value))
        if found:
            return _pick(found, query)
        level = below
    return None


def _children(steps: tuple[Step, ...], value: Any) -> Iterator[tuple[tuple[Step, ...], Any]]:
    kind = type(value)
    if kind in _DICTS:
        for number, (key, item) in enumerate(dict.items(value)):
            if number == _MAX_ITEMS:
                return
            if type(key) in _KEYS:
                yield (*steps, ("key", key)), item
    elif kind in _SEQUENCES:
        for index, item in enumerate(itertools.islice(value, _MAX_ITEMS)):
            yield (*steps, ("index", index)), item
    elif kind is re.Match:
        groups = len(value.groups())
        for group in [*range(1, groups + 1), 0]:  # a group is more likely what was read
            yield (*steps, ("group", group)), value.group(group)


def _equals(value: Any, literal: str) -> bool:
    kind = type(value)
    if kind is str:
        return value.strip() == literal
    if kind is bool:
        return str(value) == literal
    if kind is int or kind is float:
        if _NUMBER.fullmatch(literal) is None or (kind is float and not math.isfinite(value)):
            return False
        try:
            return str(value) == literal or float(literal) == value
        except (ValueError, OverflowError):  # an int too long for str(), a huge literal
            return False
    return False


def _pick(found: list[tuple[Step, ...]], query: str) -> tuple[Step, ...] | None:
    if len(found) == 1:
        return found[0]
    asked = query.casefold()
    named = [steps for steps in found if _key_named(steps, asked)]
    return named[0] if len(named) == 1 else None


def _key_named(steps: tuple[Step, ...], asked: str) -> bool:
    keys = [value for kind, value in steps if kind == "key" and type(value) is str]
    if not keys:
        return False
    word = keys[-1].casefold().strip()
    stem = word[:-1] if len(word) > 3 and word.endswith("s") else word
    return bool(stem) and stem in asked


def code(source: str, steps: Sequence[Step]) -> str:
    """`source` followed by `steps`, as Python: ``counts['QUESTION']``, ``len(hits)``."""
    text = source
    if steps and not _atomic(source):
        text = f"({source})"
    for kind, value in steps:
        if kind == "key" or kind == "index":
            text = f"{text}[{value!r}]"
        elif kind == "group":
            text = f"{text}.group({value})"
        else:
            text = f"len({text})"
    return text


def _atomic(source: str) -> bool:
    node = ast.parse(source, mode="eval").body
    return isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call, ast.JoinedStr))


def whole_token(text: str, value: str) -> int | None:
    r"""Where `value` first stands in `text` with no word character just before or after it
    (as the regex ``(?<!\w)VALUE(?!\w)``), or None.

    subtle: linear, by `str.find`; occurrences tried past the first stop once they cost
    twice the text (a regex tries the whole value at every position)."""
    start, spent = text.find(value), 0
    while start >= 0 and spent <= 2 * len(text):
        end = start + len(value)
        before = start > 0 and _WORD.match(text, start - 1) is not None
        after = end < len(text) and _WORD.match(text, end) is not None
        if not (before or after):
            return start
        spent += len(value)
        start = text.find(value, start + 1)
    return None
