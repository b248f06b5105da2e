"""Run model-written Python cells under RestrictedPython, with lazy sub-calls, fan-out and limits.

The root model writes ```repl blocks; the REPL layer hands each block ("cell") to `Sandbox.run`,
which compiles it with RestrictedPython and a policy of our own (`_Policy`), executes it in a
namespace that persists between cells, and returns a `CellOutcome`: what was printed, the error
text for the model, a FINAL() value, whether the cell timed out. Model mistakes never raise.

On top of RestrictedPython's checks the policy rewrites what models commonly write but
RestrictedPython rejects (``d[k] += 1``, ``obj.x += 1``, bare ``except:``), turns
comprehensions whose elements make sub-calls into parallel fan-out on threads, and rejects the
two constructs that would let model code outlive its cell's time limit: leaving a ``finally``
block early, and ``yield`` inside ``try`` (its cleanup would run when the host collects it).

Threat model
------------
Protected: code written by *our own* model, possibly steered by adversarial text in its context
(prompt injection), is kept from reaching the host. It gets no files, processes, network,
environment or interpreter internals: no `open`/`eval`/`exec`/`getattr`/`globals`, no names or
attributes starting with ``_`` (so no ``__class__``/``__subclasses__``/``__globals__`` walks), no
frame or code objects, no ``str.format`` attribute walks, and imports only of a few allowlisted
modules, each exposed as a proxy holding listed functions, classes and constants, never a module
object. It cannot read other calls' namespaces (each `Sandbox` has its own globals and
builtins) or the runtime's internals (injected objects are read-only, their private state is
behind ``_`` names, and the guard functions cannot be rebound). FINAL() and the cell timeout
are `BaseException`s that model code cannot catch or swallow.

NOT protected, plainly:
* RestrictedPython is not a security boundary against a determined adversary. Its own README
  says it is "not a sandbox system or a secured environment", and it has had escapes (CVEs are
  listed in the research notes). Every object we expose widens the attack surface.
* CPU and memory exhaustion below the caps: a cell may burn its whole time limit, and memory is
  capped per process (`limit_memory`), not per cell or per session.
* C code that holds the GIL without checking for signals (``sum(range(10**10))``) cannot be
  interrupted at all: it even starves the watchdog, so `hard_kill` runs only once it returns.
  Only killing the process from outside (the parent's deadline) stops it.
* Side channels (timing, memory pressure) and anything the injected functions themselves allow.
* Objects nested inside injected values (e.g. dicts inside an injected list) are writable, and C
  functions such as ``heapq.heapify(context)`` can mutate an injected list in place: inject
  immutable values (str, tuple, read-only handles) when that matters.

For untrusted or multi-tenant use, run the REPL host in a container or gVisor sandbox with no
credentials and no network beyond the model gateway.
"""

from __future__ import annotations

import ast
import bisect
import builtins
import collections
import contextlib
import ctypes
import datetime
import functools
import gc
import heapq
import io
import itertools
import json
import math
import operator
import re
import signal
import statistics
import string
import textwrap
import threading
import time
import traceback
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from RestrictedPython import compile_restricted_exec
from RestrictedPython.Guards import guarded_unpack_sequence, safer_getattr_raise
from RestrictedPython.transformer import IOPERATOR_TO_STR, RestrictingNodeTransformer

from rlm_ray.errors import ConfigError
from rlm_ray.futures import SubCallFuture, contains_futures, resolve

__all__ = ["NO_FINAL", "CellOutcome", "CellTimeout", "FinalAnswer", "Sandbox", "limit_memory"]


# -- what a cell produces ---------------------------------------------------------------------


class FinalAnswer(BaseException):
    """Raised by FINAL()/FINAL_VAR(); a BaseException so ``except Exception`` cannot catch it."""

    def __init__(self, value: Any, kind: str = "FINAL") -> None:
        super().__init__(value, kind)
        self.value = value
        self.kind = kind


class CellTimeout(BaseException):
    """Raised into every thread of a cell that ran past its time limit."""


class _NoFinal:
    def __repr__(self) -> str:
        return "NO_FINAL"

    def __reduce__(self) -> str:
        return "NO_FINAL"  # unpickles as the module's singleton, so `is NO_FINAL` survives Ray


NO_FINAL: Any = _NoFinal()


@dataclass
class CellOutcome:
    """What running one cell produced."""

    stdout: str
    """Everything printed, plus the repr of a trailing bare expression (caller truncates)."""
    error: str | None
    """None on success, else text for the model (traceback into the cell, timeout, memory)."""
    final: Any
    """The value given to FINAL()/FINAL_VAR() in this cell, else `NO_FINAL`."""
    final_kind: str
    """``"FINAL"``, ``"FINAL_VAR"`` or ``""``."""
    timed_out: bool
    duration_s: float


# -- the policy: RestrictedPython's checks plus our rewrites -----------------------------------

# Exceptions model code may never swallow; KeyboardInterrupt is how Ray cancels a running task.
_CONTROL = (FinalAnswer, CellTimeout, KeyboardInterrupt)


def _helper(name: str, args: list[ast.expr], where: ast.AST) -> ast.Call:
    """A call to a runtime helper. Built after RestrictedPython's name checks, which would
    reject the ``_`` prefix; that prefix is also what keeps model code from reaching it."""
    call = ast.Call(func=ast.Name(f"_rlm_{name}_", ast.Load()), args=args, keywords=[])
    return _located(call, where)


def _located(node: Any, where: ast.AST) -> Any:
    ast.copy_location(node, where)
    return ast.fix_missing_locations(node)


def _calls_any(node: ast.AST, names: Iterable[str]) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
        for n in ast.walk(node)
    )


def _runs_a_call(node: ast.AST, names: frozenset[str]) -> bool:
    """Whether evaluating `node` calls one of `names`; a lambda's body does not run yet."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
        return True
    children = ast.iter_child_nodes(node)
    return any(_runs_a_call(c, names) for c in children if not isinstance(c, ast.Lambda))


def _subcall_functions(tree: ast.Module, known: set[str]) -> set[str]:
    """`known` updated with this cell's defs: a function or lambda calling one of them joins."""
    defs: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            defs[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            defs.update((t.id, node.value) for t in node.targets if isinstance(t, ast.Name))
    calling = known - defs.keys()  # a redefinition is judged again
    grew = True
    while grew:  # fixed point: f calls g calls llm_query
        new = {name for name, fn in defs.items() if name not in calling and _calls_any(fn, calling)}
        calling |= new
        grew = bool(new)
    return calling


def _bound_names(generators: list[ast.comprehension]) -> list[str] | None:
    """Names bound by the comprehension's targets, or None if a target is not plain names."""
    names: list[str] = []
    for gen in generators:
        for n in ast.walk(gen.target):
            if not isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.expr_context)):
                return None  # `for obj.attr in ...`: rare, keep it sequential
            if isinstance(n, ast.Name) and n.id not in names:
                names.append(n.id)
    return names


def _plan_fanout(
    node: Any, kind: str, names: frozenset[str]
) -> tuple[ast.expr, ast.expr, bool] | None:
    """Split a comprehension into (bindings generator, per-element lambda, has deferred filters).

    ``[f(x) for x in xs if c(x) if llm_query(x)]`` becomes
    ``((x,) for x in xs if c(x))`` and ``lambda x: (True, f(x)) if llm_query(x) else (False, None)``.
    Loop variables reach the lambda as arguments, so each element sees its own values.
    """
    last = node.generators[-1]
    elts = [node.key, node.value] if kind == "dict" else [node.elt]
    split = next((i for i, test in enumerate(last.ifs) if _runs_a_call(test, names)), None)
    if split is None and not any(_runs_a_call(e, names) for e in elts):
        return None
    deferred = last.ifs[split:] if split is not None else []
    bound = _bound_names(node.generators)
    if bound is None or any(
        isinstance(n, ast.NamedExpr) for e in elts + deferred for n in ast.walk(e)
    ):
        return None  # walrus binds in the enclosing scope: a lambda would change its meaning
    inline = ast.comprehension(last.target, last.iter, last.ifs[: len(last.ifs) - len(deferred)], 0)
    elt = ast.Tuple([ast.Name(n, ast.Load()) for n in bound], ast.Load())
    bindings = ast.GeneratorExp(elt, [*node.generators[:-1], inline])
    body = ast.Tuple([node.key, node.value], ast.Load()) if kind == "dict" else node.elt
    if deferred:
        test = deferred[0] if len(deferred) == 1 else ast.BoolOp(ast.And(), deferred)
        keep = ast.Tuple([ast.Constant(True), body], ast.Load())
        body = ast.IfExp(
            test, keep, ast.Tuple([ast.Constant(False), ast.Constant(None)], ast.Load())
        )
    params = ast.arguments([], [ast.arg(n) for n in bound], None, [], [], None, [])
    return _located(bindings, node), _located(ast.Lambda(params, body), node), bool(deferred)


def _finally_escape(node: ast.AST, in_loop: bool = False) -> ast.AST | None:
    """A return/break/continue leaving a ``finally`` block: it would discard FINAL() or the
    timeout in flight, letting ``try: <spin> finally: return`` run forever."""
    if isinstance(node, ast.Return) or (
        not in_loop and isinstance(node, (ast.Break, ast.Continue))
    ):
        return node
    loop_body = node.body if isinstance(node, (ast.For, ast.While)) else []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        # break/continue in a loop's body stay inside; in its `else:` they target an outer loop
        found = _finally_escape(child, in_loop or any(child is b for b in loop_body))
        if found is not None:
            return found
    return None


def _scope_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and its descendants in the same function scope."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            yield from _scope_nodes(child)


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's checks, plus rewrites of common idioms and parallel fan-out."""

    fanout_names: frozenset[str] = frozenset()  # set per cell, see `_policy_for`

    def visit_Module(self, node: ast.Module) -> Any:
        node = cast(ast.Module, super().visit_Module(node))
        last = node.body[-1] if node.body else None
        if isinstance(last, ast.Expr):  # notebook style: show a trailing expression's value
            last.value = _helper("show", [last.value], last.value)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        if isinstance(node.target, ast.Name):
            return super().visit_AugAssign(node)
        # Visiting the Store target applies the usual checks and wraps its object in `_write_`;
        # the helper then reads, combines and stores, evaluating the object and key once.
        target = self.visit(node.target)
        op = ast.Constant(IOPERATOR_TO_STR[type(node.op)])
        value = self.visit(node.value)
        if isinstance(target, ast.Subscript):
            call = _helper("aug_item", [target.value, target.slice, op, value], node)
        else:
            call = _helper("aug_attr", [target.value, ast.Constant(target.attr), op, value], node)
        return _located(ast.Expr(call), node)

    def visit_Try(self, node: ast.Try) -> Any:
        escape = next(filter(None, map(_finally_escape, node.finalbody)), None)
        if escape is not None:
            self.error(escape, "return/break/continue inside `finally` is not allowed.")
        # Closing a generator suspended inside `try` runs its handlers and `finally`, possibly
        # from the garbage collector after the cell ended: model code with no time limit.
        suspended = (n for n in _scope_nodes(node) if isinstance(n, (ast.Yield, ast.YieldFrom)))
        if (found := next(suspended, None)) is not None:
            self.error(found, "`yield` inside `try` is not allowed.")
        node = cast(ast.Try, super().visit_Try(node))
        for handler in node.handlers:
            if handler.type is None:  # bare `except:` must not catch FINAL() or the timeout
                handler.type = _located(ast.Name("_rlm_exception_", ast.Load()), handler)
        # Whatever the handlers name (even BaseException via .mro()), ours are re-raised first.
        if node.handlers:
            control = ast.ExceptHandler(ast.Name("_rlm_control_", ast.Load()), None, [ast.Raise()])
            node.handlers.insert(0, _located(control, node.handlers[0]))
        return node

    def visit_ListComp(self, node: ast.ListComp) -> Any:
        return self._fan_out(node, "list") or super().visit_ListComp(node)

    def visit_SetComp(self, node: ast.SetComp) -> Any:
        return self._fan_out(node, "set") or super().visit_SetComp(node)

    def visit_DictComp(self, node: ast.DictComp) -> Any:
        return self._fan_out(node, "dict") or super().visit_DictComp(node)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> Any:
        return self._fan_out(node, "gen") or super().visit_GeneratorExp(node)

    def _fan_out(self, node: Any, kind: str) -> ast.Call | None:
        plan = _plan_fanout(node, kind, self.fanout_names) if self.fanout_names else None
        if plan is None:
            return None
        bindings, fn, filtered = plan
        args = [ast.Constant(kind), self.visit(bindings), self.visit(fn), ast.Constant(filtered)]
        return _helper("fanout", args, node)


@functools.lru_cache(maxsize=32)
def _policy_for(fanout_names: frozenset[str]) -> type[_Policy]:
    # compile_restricted_exec instantiates the policy itself, so per-cell state rides on a class.
    return type("_CellPolicy", (_Policy,), {"fanout_names": fanout_names})


# -- guards: what the rewritten code calls -----------------------------------------------------


class _SandboxClass(type):
    """Metaclass of classes defined in the REPL (RestrictedPython's ``__metaclass__``)."""


_WRITABLE = frozenset(
    {dict, list, set, collections.defaultdict, collections.Counter, collections.OrderedDict}
    | {collections.deque, collections.ChainMap}
)
# Builtin containers take futures as they are: storing methods keep them lazy (so
# `results.append(llm_query(p))` in a loop leaves every call in flight), and lookups work
# through the future's __hash__/__eq__/__lt__. Their methods are therefore not wrapped, which
# also keeps `counts.get(w, 0)` in hot loops cheap.
_CONTAINERS = frozenset(
    {list, tuple, dict, set, frozenset, collections.deque, collections.defaultdict}
    | {collections.Counter, collections.OrderedDict, collections.ChainMap}
)
_MUTATORS = frozenset(
    "append extend insert pop remove clear sort reverse update setdefault popitem add discard"
    " difference_update intersection_update symmetric_difference_update appendleft extendleft"
    " popleft rotate subtract".split()
)
_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift, ">>=": operator.irshift,
    "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand, "//=": operator.ifloordiv,
    "@=": operator.imatmul,
}  # fmt: skip


def _value(obj: Any) -> Any:
    """A future's value; anything else unchanged (containers are not walked: see `_getitem`)."""
    return obj.result() if type(obj) is SubCallFuture else obj


_MAY_HOLD_FUTURES = (SubCallFuture, list, tuple, dict, set, frozenset)


def _resolving(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `fn` so futures in its arguments are resolved first, in one batch.

    Like `futures.resolving`, plus a cheap test first: the guards wrap a callable on every
    method access, and in a host with many sessions some future is nearly always alive, so
    ``counts.get(w, 0)`` in a hot loop must not pay for walking its arguments.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            kwargs = resolve(kwargs)
        for arg in args:
            if isinstance(arg, _MAY_HOLD_FUTURES):
                args = resolve(args)
                break
        return fn(*args, **kwargs)

    return call


def _getitem(obj: Any, key: Any) -> Any:
    # Shallow on purpose: resolving the whole container on every `lines[i]` would make loops
    # over big lists quadratic while any future is alive. A future item is used lazily anyway.
    return _value(obj)[_value(key)]


def _getiter(obj: Any) -> Any:
    return resolve(obj)  # one batch wait for `for r in results:`; no-op when no future exists


def _iter_unpack_sequence(it: Any, spec: dict[str, Any], _getiter_: Any) -> Iterator[Any]:
    """``for k, v in pairs``: resolve `pairs` once, then unpack each element shallowly."""
    for element in _getiter(it):
        yield guarded_unpack_sequence(element, spec, _value)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


class _Guards:
    """The guards that depend on one sandbox's injected (read-only) objects."""

    def __init__(self, protected_ids: set[int]) -> None:
        self.protected_ids = protected_ids

    def getattr(self, obj: Any, name: str) -> Any:
        if type(obj) is SubCallFuture:
            obj = obj.result()
        kind = type(obj)
        if kind in _CONTAINERS:
            if name in _MUTATORS and id(obj) in self.protected_ids:
                raise AttributeError(
                    f"{kind.__name__}.{name}: values provided by the REPL are read-only"
                )
            return safer_getattr_raise(obj, name)
        if name == "obj" and isinstance(obj, AttributeError):  # CVE-2024-47532: leaks internals
            raise AttributeError("AttributeError.obj is not available in the sandbox")
        value = safer_getattr_raise(obj, name)
        if kind is _ModuleProxy or not callable(value) or isinstance(value, type):
            return value
        return _resolving(value)  # `"\n".join(results)`: all futures in the arguments, one wait

    def write(self, obj: Any) -> Any:
        kind = type(obj)
        if id(obj) in self.protected_ids:
            raise TypeError(f"cannot modify this {kind.__name__}: it is provided by the REPL")
        if kind in _WRITABLE or isinstance(kind, _SandboxClass):
            return obj
        raise TypeError(
            f"cannot modify {kind.__name__} objects in the sandbox; only dicts, lists, sets, "
            "collections containers and instances of classes defined in the REPL are writable"
        )

    def aug_item(self, target: Any, key: Any, op: str, value: Any) -> None:
        target[key] = _INPLACE[op](_getitem(target, key), value)

    def aug_attr(self, target: Any, name: str, op: str, value: Any) -> None:
        setattr(target, name, _INPLACE[op](safer_getattr_raise(target, name), value))


class _Output:
    """Everything one cell prints, from any of its threads (RestrictedPython's print protocol)."""

    MAX_CHARS = 50_000_000  # memory backstop for runaway print loops; callers truncate far below

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            if self._size < self.MAX_CHARS:
                self._parts.append(text[: self.MAX_CHARS - self._size])
                self._size += len(text)

    def text(self) -> str:
        with self._lock:
            dropped = self._size - self.MAX_CHARS
            note = f"\n[sandbox: {dropped} more characters dropped]\n" if dropped > 0 else ""
            return "".join(self._parts) + note

    def _call_print(
        self, *objects: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: bool = False
    ) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not available in the sandbox")
        objects, sep, end = resolve((objects, sep, end))
        buffer = io.StringIO()
        print(*objects, sep=sep, end=end, file=buffer)
        self.write(buffer.getvalue())


class _Printer:
    """What `print` and `printed` reach: forwards to the output of the cell running now.

    subtle: RestrictedPython binds a module-level ``_print`` once per cell; a lambda defined in
    one cell and called in a later one still uses it, so it must not capture one cell's output.
    """

    def __init__(self, current: Callable[[], _Output]) -> None:
        self._current = current

    def __call__(self) -> str:
        return self._current().text()

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        self._current()._call_print(*objects, **kwargs)


# -- builtins -----------------------------------------------------------------------------------

_PLAIN_BUILTINS = (
    "str int float bool complex list dict set frozenset tuple slice range len repr hash iter"
    " next callable format issubclass"
).split()  # types stay types (isinstance works); futures handle these through their dunders
_RESOLVING_BUILTINS = (
    "sorted zip enumerate map filter reversed min max sum any all abs round divmod pow chr ord"
    " hex bin oct"
).split()
_EXCEPTIONS = (
    "Exception ArithmeticError AssertionError AttributeError EOFError ImportError IndexError"
    " KeyError LookupError MemoryError ModuleNotFoundError NameError NotImplementedError"
    " OverflowError RecursionError RuntimeError StopIteration TimeoutError TypeError"
    " UnboundLocalError UnicodeError UnicodeDecodeError UnicodeEncodeError ValueError"
    " ZeroDivisionError"
).split()  # no BaseException, SystemExit, KeyboardInterrupt, GeneratorExit


def _type(*args: Any) -> type | Callable[..., Any]:
    """`type(x)` only; a metaclass comes back as this function, so `type(type(1))` stays tame."""
    if len(args) != 1:
        raise TypeError(
            "type() takes exactly 1 argument in the sandbox; creating classes with "
            "type(name, bases, dict) is not allowed"
        )
    cls = type(_value(args[0]))
    return _type if issubclass(cls, type) else cls


def _isinstance(obj: Any, classinfo: Any) -> bool:
    return isinstance(_value(obj), classinfo)


def _make_builtins() -> dict[str, Any]:
    table: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN_BUILTINS}
    table.update((name, _resolving(getattr(builtins, name))) for name in _RESOLVING_BUILTINS)
    table.update((name, getattr(builtins, name)) for name in _EXCEPTIONS)
    table.update(type=_type, isinstance=_isinstance, __import__=_import)
    table["__build_class__"] = builtins.__build_class__
    return table


# -- allowlisted modules ------------------------------------------------------------------------


class _ModuleProxy:
    """An allowlisted module as model code sees it: only the listed members.

    subtle: it must have no ``__name__``. ``from json import decoder`` falls back to
    ``sys.modules[proxy.__name__ + ".decoder"]`` when the attribute is missing, which would hand
    out the real submodule.
    """

    __slots__ = ("_label", "_members")

    def __init__(self, label: str, members: dict[str, Any]) -> None:
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_members", members)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._members[name]
        except KeyError:
            raise AttributeError(
                f"module {self._label!r} has no attribute {name!r} in the sandbox"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"module {self._label!r} is read-only in the sandbox")

    __delattr__ = __setattr__  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<module {self._label!r} (sandbox)>"


_RE_FLAGS = {
    n: int(getattr(re, n))
    for n in "IGNORECASE I MULTILINE M DOTALL S VERBOSE X ASCII A UNICODE U".split()
}
_MODULE_MEMBERS = {
    "re": "compile search match fullmatch findall finditer sub subn split escape error Pattern Match",
    "json": "dumps loads JSONDecodeError",
    "math": "acos acosh asin asinh atan atan2 atanh cbrt ceil comb copysign cos cosh degrees dist e"
    " erf erfc exp exp2 expm1 fabs factorial floor fmod frexp fsum gamma gcd hypot inf isclose"
    " isfinite isinf isnan isqrt lcm ldexp lgamma log log10 log1p log2 modf nan nextafter perm pi"
    " pow prod radians remainder sin sinh sqrt tan tanh tau trunc ulp",
    "collections": "Counter defaultdict OrderedDict deque namedtuple ChainMap",
    "itertools": "accumulate batched chain combinations combinations_with_replacement compress"
    " count cycle dropwhile filterfalse groupby islice pairwise permutations product repeat"
    " starmap takewhile tee zip_longest",
    "functools": "reduce partial lru_cache cache cmp_to_key",
    "statistics": "mean fmean geometric_mean harmonic_mean median median_low median_high mode"
    " multimode pstdev pvariance stdev variance quantiles correlation covariance"
    " linear_regression StatisticsError",
    "string": "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits"
    " punctuation printable whitespace capwords",
    "textwrap": "wrap fill dedent indent shorten",
    "datetime": "date time datetime timedelta timezone MINYEAR MAXYEAR",
    "heapq": "heappush heappop heapify heapreplace heappushpop nlargest nsmallest merge",
    "bisect": "bisect bisect_left bisect_right insort insort_left insort_right",
}
_REAL_MODULES = {
    "re": re, "json": json, "math": math, "collections": collections, "itertools": itertools,
    "functools": functools, "statistics": statistics, "string": string, "textwrap": textwrap,
    "datetime": datetime, "heapq": heapq, "bisect": bisect,
}  # fmt: skip


def _proxy_member(value: Any) -> Any:
    if isinstance(value, types.ModuleType):  # never hand out a module, whatever the list says
        raise AssertionError(f"module {value!r} in a sandbox proxy")
    if callable(value) and not isinstance(value, type):
        return _resolving(value)  # `re.findall(p, llm_query(...))` needs the text
    return value


def _build_proxy(label: str) -> _ModuleProxy:
    module = _REAL_MODULES[label]
    names = [n for n in _MODULE_MEMBERS[label].split() if hasattr(module, n)]  # 3.10 lacks a few
    members = {n: _proxy_member(getattr(module, n)) for n in names}
    if label == "re":
        members.update(_RE_FLAGS)  # plain ints: the RegexFlag enum class is more surface
    return _ModuleProxy(label, members)


_PROXIES = {label: _build_proxy(label) for label in _MODULE_MEMBERS}


def _import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    if level == 0 and name in _PROXIES:
        return _PROXIES[name]
    allowed = ", ".join(sorted(_PROXIES))
    raise ImportError(
        f"module {name!r} is not available in the sandbox; allowed modules: {allowed}"
    )


# -- one running cell: its threads, its clock, its watchdog ------------------------------------

_TICK_S = 0.01  # watchdog clock resolution
_CAN_SIGNAL = hasattr(signal, "pthread_kill") and hasattr(signal, "SIGALRM")
_KICK_S = 0.05  # how often a timed-out cell's threads are interrupted again


def _async_raise(ident: int, exc: type[BaseException] | None) -> None:
    """Raise `exc` in thread `ident` at its next bytecode; None clears a pending one."""
    arg = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), arg)


class _Cell:
    """Bookkeeping of one running cell: which threads run it and which of them are waiting."""

    def __init__(self, max_workers: int, on_main: bool) -> None:
        self.lock = threading.Lock()
        self.depth: dict[int, int] = {}  # registered thread -> nesting of waiting()
        self.active = 0  # registered threads not inside waiting(): the clock runs while > 0
        self.workers: list[threading.Thread] = []
        self.budget = threading.Semaphore(max(0, max_workers - 1))  # the caller is a worker too
        self.output = _Output()
        self.main_ident = threading.get_ident()
        self.on_main = on_main
        self.expired = False
        self.closed = False

    def enter(self) -> None:
        with self.lock:
            self.depth[threading.get_ident()] = 0
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            if self.depth.pop(threading.get_ident(), None) == 0:
                self.active -= 1

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        ident = threading.get_ident()
        with self.lock:
            mine = ident in self.depth
            if mine:
                self.depth[ident] += 1
                if self.depth[ident] == 1:
                    self.active -= 1
        try:
            yield
        finally:
            if mine:
                self._resume(ident)

    def _resume(self, ident: int) -> None:
        with self.lock:
            if self.depth.get(ident):  # gone if the thread left the cell meanwhile
                self.depth[ident] -= 1
                if self.depth[ident] == 0:
                    self.active += 1

    def kick(self) -> None:
        """Interrupt every thread still running the cell."""
        with self.lock:
            if self.closed:
                return
            for ident in self.depth:
                if self.on_main and ident == self.main_ident:
                    # A signal also stops C code that checks for signals (regex, big powers).
                    # One interrupt per kick: two would land while the cell unwinds.
                    signal.pthread_kill(ident, signal.SIGALRM)
                else:
                    _async_raise(ident, CellTimeout)


class _Watchdog(threading.Thread):
    """Counts a cell's running time (not time in waiting()) and stops it when over the limit."""

    def __init__(
        self, cell: _Cell, limit_s: float, hard_kill: Callable[[], None] | None, grace_s: float
    ) -> None:
        super().__init__(name="rlm-cell-watchdog", daemon=True)
        self.cell, self.limit_s, self.hard_kill, self.grace_s = cell, limit_s, hard_kill, grace_s
        self.expired_at: float | None = None
        self.killed = False
        self._stop_event = threading.Event()

    def run(self) -> None:
        counted, last, last_kick = 0.0, time.monotonic(), 0.0
        while not self._stop_event.wait(_TICK_S):
            now = time.monotonic()
            counted += (now - last) if self.cell.active > 0 else 0.0
            last = now
            if self.expired_at is None and (counted >= self.limit_s or self.cell.expired):
                self.expired_at, self.cell.expired = now, True
                _arm_alarm(self.cell, 0.0)
            if self.expired_at is None:
                _arm_alarm(self.cell, self.limit_s - counted)
                continue
            if now - last_kick >= _KICK_S:
                self.cell.kick()
                last_kick = now
            if not self.killed and now - self.expired_at >= self.grace_s:
                self.killed = True  # also ends the wait for stray workers in `Sandbox._close`
                if self.hard_kill is not None:
                    self.hard_kill()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _arm_alarm(cell: _Cell, remaining_s: float) -> None:
    """Backstop for a main-thread cell: C code holding the GIL (a catastrophic regex) starves
    the watchdog, so a kernel timer due a little after the remaining budget fires instead.
    The watchdog pushes it back on every tick, so it only fires when the watchdog could not run.
    """
    if cell.on_main:
        signal.setitimer(signal.ITIMER_REAL, remaining_s + 2 * _TICK_S if remaining_s else 0.0)


class _FanOut:
    """One parallel comprehension: elements are claimed in order by the participating threads."""

    def __init__(self, fn: Callable[..., Any], items: list[tuple[Any, ...]]) -> None:
        self.fn, self.items = fn, items
        self.results: list[Any] = [None] * len(items)
        self.errors: dict[int, BaseException] = {}
        self._claims = itertools.count()  # next() is atomic under the GIL
        self._stop = False

    def work(self) -> None:
        while not self._stop:
            i = next(self._claims)
            if i >= len(self.items):
                return
            try:
                self.results[i] = self.fn(*self.items[i])
            except BaseException as exc:  # FINAL() and timeouts too: the caller re-raises in order
                self.errors[i] = exc
                self._stop = True  # claims are in order, so every earlier element is running

    def first_error(self) -> tuple[int, BaseException | None]:
        i = min(self.errors, default=len(self.items))
        return i, self.errors.get(i)


def _retrying(fn: Callable[[], None]) -> None:
    # subtle: a stop request aimed at the cell may still land while we tear the cell down.
    while True:
        try:
            return fn()
        except CellTimeout:
            continue


# -- the sandbox --------------------------------------------------------------------------------

_SUBCALL_NAMES = tuple(
    "llm_query llm_query_batched recursive_llm rlm_query rlm_query_batched".split()
)
_MISSING = object()
_SETTLE_MAX_ITEMS = 1_000


@dataclass
class _Result:
    exc: BaseException | None = None


class Sandbox:
    """A persistent namespace in which model-written cells run under RestrictedPython."""

    def __init__(
        self,
        *,
        cell_timeout_s: float | None = 60.0,
        subcall_names: Iterable[str] = _SUBCALL_NAMES,
        max_workers: int = 256,
        hard_kill: Callable[[], None] | None = None,
        hard_kill_grace_s: float = 10.0,
    ) -> None:
        if cell_timeout_s is not None and cell_timeout_s <= 0:
            raise ConfigError(f"`cell_timeout_s` must be > 0 or None, got {cell_timeout_s!r}")
        if max_workers < 1:
            raise ConfigError(f"`max_workers` must be >= 1, got {max_workers!r}")
        self._timeout_s = cell_timeout_s
        self._subcall_names = frozenset(subcall_names)
        self._fanout_names = set(self._subcall_names)
        self._max_workers = max_workers
        self._hard_kill = hard_kill
        self._grace_s = hard_kill_grace_s
        self._injected: dict[str, Any] = {}
        self._protected_ids: set[int] = set()
        self._sources: dict[str, list[str]] = {}  # cell filename -> lines, for tracebacks
        self._cells = 0
        self._cell: _Cell | None = None
        self._idle_output = _Output()  # prints from outside any cell
        self._runtime = self._runtime_globals(_Guards(self._protected_ids))
        self.namespace: dict[str, Any] = dict(self._runtime)

    def _runtime_globals(self, guards: _Guards) -> dict[str, Any]:
        printer = _Printer(self._output)
        return {
            "__builtins__": _make_builtins(),
            "__name__": "sandbox",
            "__metaclass__": _SandboxClass,
            "_getattr_": guards.getattr,
            "_getitem_": _getitem,
            "_getiter_": _getiter,
            "_write_": guards.write,
            "_inplacevar_": _inplacevar,
            "_apply_": _apply,
            "_iter_unpack_sequence_": _iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_print_": lambda _getattr_=None: printer,
            "_print": printer,
            "_rlm_aug_item_": guards.aug_item,
            "_rlm_aug_attr_": guards.aug_attr,
            "_rlm_fanout_": self._fanout,
            "_rlm_show_": self._show,
            "_rlm_control_": _CONTROL,
            "_rlm_exception_": Exception,
        }

    # -- public API ---------------------------------------------------------------------------
    def inject(self, **values: Any) -> None:
        """Add names for model code; they are restored after every cell and are read-only."""
        self._injected.update(values)
        self._protected_ids.clear()
        self._protected_ids.update(id(v) for v in self._injected.values())
        self.namespace.update(values)

    def run(self, code: str) -> CellOutcome:
        """Run one cell. Never raises for model mistakes; state persists between calls."""
        started = time.monotonic()
        compiled = self._compile(code)
        if isinstance(compiled, str):
            return CellOutcome("", compiled, NO_FINAL, "", False, time.monotonic() - started)
        cell, watchdog, previous = self._open()
        result = _Result()
        try:
            self._execute(compiled, result)
        except CellTimeout as exc:  # landed after the cell's own handler
            result.exc = result.exc or exc
        finally:
            _retrying(lambda: self._close(cell, watchdog, previous))
        self._after_cell()
        return self._outcome(result, cell, time.monotonic() - started)

    def waiting(self) -> contextlib.AbstractContextManager[None]:
        """Wrap a blocking wait: time inside does not count toward the calling thread's limit."""
        cell = self._cell
        return cell.waiting() if cell is not None else contextlib.nullcontext()

    def print(self, *objects: Any, sep: str = " ", end: str = "\n") -> None:
        """Print into the running cell's output, for injected functions (e.g. SHOW_VARS).

        Host-side ``print`` goes to the process's stdout, which the model never sees.
        """
        self._output()._call_print(*objects, sep=sep, end=end)

    def variables(self) -> dict[str, str]:
        """User-defined names and a short description of each value (for SHOW_VARS)."""
        return {
            name: _describe(value)
            for name, value in self.namespace.items()
            if not name.startswith("_") and name not in self._injected
        }

    # -- running a cell -----------------------------------------------------------------------
    def _compile(self, code: str) -> types.CodeType | str:
        self._cells += 1
        filename = f"<cell {self._cells}>"
        try:
            tree = ast.parse(code, filename)
            names = _subcall_functions(tree, self._fanout_names) | self._subcall_names
            compiled = compile_restricted_exec(tree, filename, policy=_policy_for(frozenset(names)))
        except SyntaxError as exc:  # parse errors, and `return` outside a function from compile()
            return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
            return f"SyntaxError: the cell could not be compiled: {type(exc).__name__}: {exc}"
        if compiled.errors:
            return "SyntaxError: the sandbox does not allow this code:\n" + "\n".join(
                compiled.errors
            )
        self._fanout_names = names
        self._sources[filename] = code.splitlines()
        return compiled.code  # type: ignore[return-value]

    def _open(self) -> tuple[_Cell, _Watchdog | None, Any]:
        on_main = threading.current_thread() is threading.main_thread()
        cell = _Cell(self._max_workers, on_main and _CAN_SIGNAL)
        cell.enter()
        self._cell = cell
        previous, watchdog = None, None
        if self._timeout_s is not None:
            if cell.on_main:
                previous = signal.signal(signal.SIGALRM, self._on_alarm)
                _arm_alarm(cell, self._timeout_s)  # before the watchdog's first tick
            watchdog = _Watchdog(cell, self._timeout_s, self._hard_kill, self._grace_s)
            watchdog.start()
        return cell, watchdog, previous

    def _execute(self, code: types.CodeType, result: _Result) -> None:
        try:
            exec(code, self.namespace)
        except KeyboardInterrupt:  # the host cancelling us: machinery, not a model mistake
            raise
        except BaseException as exc:  # model code can raise anything, BaseException included
            result.exc = exc

    def _close(self, cell: _Cell, watchdog: _Watchdog | None, previous: Any) -> None:
        cell.leave()  # first: no more interrupts aimed at this thread
        self._join_workers(cell, watchdog)
        if watchdog is not None:
            watchdog.stop()
        with cell.lock:
            cell.closed = True
        if cell.on_main and self._timeout_s is not None:
            _arm_alarm(cell, 0.0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        _async_raise(threading.get_ident(), None)  # drop an interrupt that raced the end
        self._cell = None

    def _join_workers(self, cell: _Cell, watchdog: _Watchdog | None) -> None:
        """Wait for fan-out threads a timeout left running, until they stop or hard-kill time."""
        for thread in list(cell.workers):
            while thread.is_alive() and not (watchdog is not None and watchdog.killed):
                thread.join(_KICK_S)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        cell = self._cell
        if cell is None or cell.closed or cell.main_ident not in cell.depth:
            return  # the cell's code is over: nothing to stop
        # Sent by the watchdog's kick or by the backstop timer: time is up either way.
        cell.expired = True
        raise CellTimeout()

    def _after_cell(self) -> None:
        for name, value in self._injected.items():
            if self.namespace.get(name, _MISSING) is not value:
                self.namespace[name] = value
        self.namespace.update(self._runtime)
        self._settle_futures()

    def _settle_futures(self) -> None:
        """Replace finished futures held by variables (and small containers) with their values.

        Never waits. Fewer live futures means the guards' resolving takes its fast path more.
        """
        for name, value in list(self.namespace.items()):
            if name.startswith("_") or name in self._injected:
                continue
            try:
                if type(value) is SubCallFuture:
                    if value.done:
                        self.namespace[name] = value.result()
                elif _small_container(value) and not contains_futures(value):
                    self.namespace[name] = resolve(value)
            except Exception:  # a failed sub-call: it stays a future and fails when used
                pass

    def _outcome(self, result: _Result, cell: _Cell, duration_s: float) -> CellOutcome:
        exc, stdout = result.exc, cell.output.text()
        result.exc = None
        if isinstance(exc, FinalAnswer):
            return CellOutcome(stdout, None, exc.value, exc.kind, False, duration_s)
        if exc is not None and cell.expired:
            message = (
                f"TimeoutError: the cell timed out: it exceeded its {self._timeout_s:g} s time "
                "limit and was stopped. Variables assigned before the stop are kept; split the "
                "work into smaller cells or use batched sub-calls."
            )
            return CellOutcome(stdout, message, NO_FINAL, "", True, duration_s)
        error = None if exc is None else self._format_error(exc)
        if isinstance(exc, MemoryError):
            gc.collect()
        return CellOutcome(stdout, error, NO_FINAL, "", False, duration_s)

    def _format_error(self, exc: BaseException) -> str:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in self._sources]
        lines = ["Traceback (most recent call last):"] if frames else []
        if len(frames) > 12:
            lines += [_frame_text(f, self._sources) for f in frames[:3]]
            lines.append(f"  ... {len(frames) - 11} more frames ...")
            frames = frames[-8:]
        lines += [_frame_text(f, self._sources) for f in frames]
        if isinstance(exc, MemoryError):
            lines.append(
                "MemoryError: the cell ran out of memory (the REPL memory cap was hit). Work on "
                "smaller pieces of the data and avoid building huge strings or lists."
            )
        else:
            lines.append(_exception_text(exc))
        return "\n".join(lines)

    # -- runtime helpers the rewritten code calls ----------------------------------------------
    def _output(self) -> _Output:
        cell = self._cell
        return cell.output if cell is not None else self._idle_output

    def _show(self, value: Any) -> None:
        if value is not None:
            self._output().write(repr(resolve(value)) + "\n")

    def _fanout(
        self, kind: str, bindings: Iterable[tuple[Any, ...]], fn: Callable[..., Any], filtered: bool
    ) -> Any:
        if kind == "gen":
            return self._fanout_lazy(bindings, fn, filtered)
        job = self._evaluate(list(bindings), fn)
        _, error = job.first_error()
        if error is not None:
            raise error
        values = [v for keep, v in job.results if keep] if filtered else job.results
        if kind == "list":
            return values
        return set(values) if kind == "set" else dict(values)

    def _fanout_lazy(
        self, bindings: Iterable[tuple[Any, ...]], fn: Callable[..., Any], filtered: bool
    ) -> Iterator[Any]:
        source = iter(bindings)
        while chunk := list(itertools.islice(source, self._max_workers)):
            job = self._evaluate(chunk, fn)
            failed_at, error = job.first_error()
            for value in job.results[:failed_at]:
                if not filtered:
                    yield value
                elif value[0]:
                    yield value[1]
            if error is not None:
                raise error

    def _evaluate(self, items: list[tuple[Any, ...]], fn: Callable[..., Any]) -> _FanOut:
        job = _FanOut(fn, items)
        cell = self._cell
        if cell is None:  # called outside a cell (e.g. a generator consumed later by the host)
            job.work()
            return job
        threads = self._start_workers(cell, job, min(len(items), self._max_workers) - 1)
        job.work()  # the calling thread takes elements too
        with cell.waiting():  # the workers' own time is what counts
            for thread in threads:
                while thread.is_alive():  # short joins: a stop request must get through
                    thread.join(_KICK_S)
        return job

    def _start_workers(self, cell: _Cell, job: _FanOut, wanted: int) -> list[threading.Thread]:
        threads: list[threading.Thread] = []
        # Non-blocking: when nested fan-outs have used the budget, the caller does the work.
        while len(threads) < wanted and cell.budget.acquire(blocking=False):
            thread = threading.Thread(
                target=_worker_main, args=(cell, job), name="rlm-fanout", daemon=True
            )
            cell.workers.append(thread)
            threads.append(thread)
            thread.start()
        return threads


def _worker_main(cell: _Cell, job: _FanOut) -> None:
    try:
        cell.enter()
        try:
            job.work()
        finally:
            cell.leave()
            cell.budget.release()
        _async_raise(threading.get_ident(), None)
    except CellTimeout:  # arrived between elements: the cell is being stopped anyway
        pass


# -- describing values for the model -----------------------------------------------------------


def _small_container(value: Any) -> bool:
    # Bounded so that a session holding a million-line list does not pay a walk per cell.
    return isinstance(value, (list, tuple, dict, set)) and len(value) <= _SETTLE_MAX_ITEMS


def _frame_text(frame: traceback.FrameSummary, sources: dict[str, list[str]]) -> str:
    text = f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}'
    lines = sources.get(frame.filename, [])
    if frame.lineno is not None and 0 < frame.lineno <= len(lines):
        text += "\n    " + lines[frame.lineno - 1].strip()
    return text


def _exception_text(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    except Exception:  # str() of the exception failed (e.g. a failed sub-call in its args)
        return type(exc).__name__


def _describe(value: Any) -> str:
    if type(value) is SubCallFuture:
        if not value.done:
            return "str (sub-call result, pending)"
        try:
            return _describe(value.result())
        except Exception:
            return "failed sub-call"
    if isinstance(value, str):
        return f"str ({len(value):,} chars)"
    if isinstance(value, (list, tuple, set, frozenset, dict, collections.deque)):
        return f"{type(value).__name__} ({len(value):,} items)"
    if isinstance(value, _ModuleProxy):
        return "module"
    if isinstance(value, type):
        return "class"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return "function"
    return type(value).__name__


# -- memory -------------------------------------------------------------------------------------


def _vmdata_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def limit_memory(max_mb: int) -> None:
    """Cap this process's data segment at its current size plus `max_mb` MiB.

    Past the cap, allocations raise MemoryError, which the cell reports. This is a per-process
    backstop, not a per-cell budget. RLIMIT_DATA rather than RLIMIT_AS: Ray workers map a large
    address space for the object store, so an address-space cap breaks them.
    """
    if max_mb <= 0:
        raise ConfigError(f"`max_mb` must be > 0, got {max_mb!r}")
    try:
        import resource
    except ImportError:
        resource = None  # type: ignore[assignment]
    used = _vmdata_bytes()
    if resource is None or used is None or not hasattr(resource, "RLIMIT_DATA"):
        warnings.warn(
            "limit_memory: not supported on this platform; no memory cap set",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = used + max_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
