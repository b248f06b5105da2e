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

This module holds what needs RestrictedPython (the policy, and the guards the rewritten code
calls) and `Sandbox`, which puts the pieces together. The pieces, free of RestrictedPython:
`rewrites` (the AST work behind the policy), `allowlist` (builtins and module proxies),
`future_guards` (where model code waits for sub-calls), `fanout` (parallel comprehensions),
`clock` (the per-cell time limit), `output` (what the model reads back) and
`memory_cap` (`limit_memory`).

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

Guaranteed at the cell's boundary (see `rlm_ray.sandbox.boundary`):
* Only exact builtin data leaves a cell: sub-call prompts, model names, child contexts and
  operator items are copied by `boundary.plain` (``type(x) is ...`` checks, bounded size and
  depth, corpus views rebuilt from their fields); answers leave as exact ``str``. A class the
  model defines — say a ``str`` subclass whose ``split`` would run in the gateway when litellm
  reads the model name — is a clear error in the cell.
* Classes and functions defined in a cell cannot be pickled at all (their module refuses to be
  looked into), so Ray never ships one to be rebuilt elsewhere with the real builtins; model
  exceptions leave the REPL only as text.
* Host code that must touch model-made values — reading `answer`, a FINAL_VAR named in the reply,
  the text of an error, settling futures — runs inside the cell's clock (`Sandbox.run`'s
  `after`, `Sandbox.evaluate`), so a method the model overrode is time-limited like the cell.
* ``type()`` and ``.mro()`` hand out no class of the runtime (a `HostClass` stand-in instead), and
  a corpus view refuses a source that is not the runtime's.
* A cell whose C code holds the GIL (a catastrophic regex in a fan-out thread) starves every
  in-process stop; a watcher process outside the REPL (`kill_switch`) kills it a little after
  the grace period, and the runtime goes on in a new REPL from the call's checkpoint with the
  model told. A crash (a segfault from C recursion) ends the same way.
* A sub-call's `model=` names one of the models the user configured (`model`, `sub_model`,
  `RLM(models=[...])`), or the cell gets an error naming them: litellm takes a provider's key
  from the environment for any model string (`groq/...` reads GROQ_API_KEY) and would send it
  to the run's `api_base`. The gateway refuses any other model again (defence in depth), before
  litellm or a socket sees the request.
* Credentials the gateway process could read are masked (`redact.py`): the configured key and
  secret-named arguments, and every credential variable of the environment (`*_API_KEY`,
  `*_TOKEN`, `*SECRET*`, AWS/Azure/GCP ones), in model-call errors, in a cell's output and
  error before the model reads them, and in the trace.
* A prompt whose text (corpus slices counted by their offsets) is longer than its model's
  window allows is refused before it is made: in the cell, and again in the gateway before any
  slice is read, so `llm_query([context] * 2000)` costs the gateway nothing.
* Model-made text printed by the CLI (answers, errors, the trace's code, outputs and prompts)
  has its control characters written as escapes (`rlm_ray/safety/terminal.py`): no escape sequence
  of the model's reaches the user's terminal; `--json` stays exact, JSON-escaped.
* A tool host authorizes a call by the registered function's own ``@tool`` mark: the effects a
  REPL's message names count for nothing, so a ``write`` tool sent as ``"read"`` still needs
  ``approve`` or ``allow_effects``. It runs tools on at most 256 threads, stuck ones included
  (`tool_threads`): a tool past its time limit keeps its thread until it returns, and once all
  are held a new call fails without running.
* A session's REPL rebuilt after its process was lost answers the tool calls of the cells it
  re-runs from what they returned the first time (`session_repl.ToolReplay`): a tool never runs
  twice for one call of the model, and ``approve`` is asked once per real call. A cell whose
  child RLM called a tool is not re-run; its variables are reported lost.
* An answer longer than `max_answer_chars` (10 M characters by default) never leaves the REPL's
  process: a FINAL over it is an error in its cell, with no turn left the run stops with
  `LimitExceededError`; the driver refuses a longer one too, before it copies it.
* A saved program (`program.save`) writes every recorded string as a literal and escapes control
  characters and lone surrogates in its comments and docstring: no query or code keeps the
  script from parsing.
* Host code that reads model-made data outside any cell's clock does bounded work by
  construction: a child's context is measured, never printed, for its first turn
  (`rlm_ray.safety.measure`); routing reads a capped prefix of the query; a session's rebuild tells
  the kind of a variable by its type; trace files are searched in linear or capped work (a
  typed answer traced to code in the worker runs on a cell's clock: `answer_source`). No call outlives its parent: at the run's deadline, or when the parent ends,
  its children are cancelled and their REPL processes killed.

NOT protected, plainly:
* RestrictedPython is not a security boundary against a determined adversary. Its own README
  says it is "not a sandbox system or a secured environment", and it has had escapes (CVEs are
  listed in the research notes). Every object we expose widens the attack surface.
* CPU and memory exhaustion below the caps: a cell may burn its whole time limit (plus the
  grace period before the kill), and memory is capped per process (`limit_memory`), not per
  cell or per session; a model that keeps the memory it filled leaves later cells little.
* Side channels (timing, memory pressure) and anything the injected functions themselves allow,
  the caller's tools (`RLM(tools=...)`, rlm_ray/tools.py) above all: they run outside the
  sandbox with whatever rights the caller's code has; only plain data crosses to and from them,
  and a tool declared ``effects="write"`` runs only if the caller allowed it.
* Masking finds credentials by their exact text: one an endpoint returns transformed (split,
  encoded) is not masked, and the processes of a node (REPLs included) hold the provider keys
  of its environment, which an escape from the sandbox would read.
* A REPL process that escaped the sandbox holds a Ray client: the tool host still takes its
  word for the run's permission flag and approvals actor, and Ray does not stop it from calling
  any actor. The effects check and the bounds above guard the paths model code reaches through
  the REPL, not a compromised process.
* A session keeps its tool calls' full results in the driver's memory (and sends them with each
  question) for as long as it is open, so that a rebuild can answer from them.
* Objects nested inside injected values (e.g. dicts inside an injected list) are writable; the
  injected values themselves are guarded against their methods, unbound methods and the
  allowlisted in-place functions (``heapq``, ``bisect``), not against every C function.

For untrusted or multi-tenant use, run the REPL host in a container or gVisor sandbox with no
credentials and no network beyond the model gateway: what the sandbox guarantees is only as
strong as RestrictedPython and CPython underneath it.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import functools
import gc
import operator
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_unpack_sequence, safer_getattr_raise
from RestrictedPython.transformer import IOPERATOR_TO_STR, RestrictingNodeTransformer

from rlm_ray.core.subcalls import SubCallFuture, resolve
from rlm_ray.errors import ConfigError
from rlm_ray.sandbox.allowlist import (
    CellClass,
    ModuleProxy,
    forget_read_only,
    guard_read_only,
    make_builtins,
    preloaded_modules,
    tame_mro,
)
from rlm_ray.sandbox.boundary import CELL_MODULE, exact_str, refuse_pickling
from rlm_ray.sandbox.clock import Cell, CellClock, CellTimeout
from rlm_ray.sandbox.fanout import FanOut
from rlm_ray.sandbox.future_guards import (
    guarded_getitem,
    guarded_getiter,
    resolving_arguments,
    settle_futures,
    unwrap_future,
)
from rlm_ray.sandbox.kill_switch import KillSwitch
from rlm_ray.sandbox.output import CellOutput, Printer, describe, error_text
from rlm_ray.sandbox.rewrites import (
    finally_escape,
    helper_call,
    literal_rebinding,
    located,
    plan_fanout,
    scope_nodes,
    subcall_functions,
)

__all__ = ["NO_FINAL", "CellOutcome", "CellTimeout", "FinalAnswer", "Sandbox"]


# -- what a cell produces ---------------------------------------------------------------------


class FinalAnswer(BaseException):
    """Raised by FINAL()/FINAL_VAR(); a BaseException so ``except Exception`` cannot catch it."""

    def __init__(self, value: Any, kind: str = "FINAL") -> None:
        super().__init__(value, kind)
        self.value = value
        self.kind = kind


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


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's checks, plus rewrites of common idioms and parallel fan-out."""

    fanout_names: frozenset[str] = frozenset()  # set per cell, see `_policy_for`

    def visit_Module(self, node: ast.Module) -> Any:
        node = cast(ast.Module, super().visit_Module(node))
        last = node.body[-1] if node.body else None
        if isinstance(last, ast.Expr):  # notebook style: show a trailing expression's value
            last.value = helper_call("show", [last.value], last.value)
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
            call = helper_call("aug_item", [target.value, target.slice, op, value], node)
        else:
            call = helper_call(
                "aug_attr", [target.value, ast.Constant(target.attr), op, value], node
            )
        return located(ast.Expr(call), node)

    def visit_Try(self, node: ast.Try) -> Any:
        escape = next(filter(None, map(finally_escape, node.finalbody)), None)
        if escape is not None:
            self.error(escape, "return/break/continue inside `finally` is not allowed.")
        # Closing a generator suspended inside `try` runs its handlers and `finally`, possibly
        # from the garbage collector after the cell ended: model code with no time limit.
        suspended = (n for n in scope_nodes(node) if isinstance(n, (ast.Yield, ast.YieldFrom)))
        if (found := next(suspended, None)) is not None:
            self.error(found, "`yield` inside `try` is not allowed.")
        node = cast(ast.Try, super().visit_Try(node))
        for handler in node.handlers:
            if handler.type is None:  # bare `except:` must not catch FINAL() or the timeout
                handler.type = located(ast.Name("_rlm_exception_", ast.Load()), handler)
        # Whatever the handlers name (even BaseException via .mro()), ours are re-raised first.
        if node.handlers:
            control = ast.ExceptHandler(ast.Name("_rlm_control_", ast.Load()), None, [ast.Raise()])
            node.handlers.insert(0, located(control, node.handlers[0]))
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
        plan = plan_fanout(node, kind, self.fanout_names) if self.fanout_names else None
        if plan is None:
            return None
        bindings, fn, filtered = plan
        args = [ast.Constant(kind), self.visit(bindings), self.visit(fn), ast.Constant(filtered)]
        return helper_call("fanout", args, node)


@functools.lru_cache(maxsize=32)
def _policy_for(fanout_names: frozenset[str]) -> type[_Policy]:
    # compile_restricted_exec instantiates the policy itself, so per-cell state rides on a class.
    return type("_CellPolicy", (_Policy,), {"fanout_names": fanout_names})


# -- guards: what the rewritten code calls -----------------------------------------------------


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


def _iter_unpack_sequence(it: Any, spec: dict[str, Any], _getiter_: Any) -> Iterator[Any]:
    """``for k, v in pairs``: resolve `pairs` once, then unpack each element shallowly."""
    for element in guarded_getiter(it):
        yield guarded_unpack_sequence(element, spec, unwrap_future)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


class _Guards:
    """The guards that depend on one sandbox's injected (read-only) objects."""

    def __init__(self, protected_ids: set[int]) -> None:
        self.protected_ids = protected_ids

    def is_read_only(self, obj: Any) -> bool:
        return id(obj) in self.protected_ids

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
        if isinstance(obj, type):
            if obj in _CONTAINERS and name in _MUTATORS:  # `list.clear(context)`
                return self._unbound_mutator(obj, name)
            if name == "mro":  # the runtime's classes in it come back as stand-ins
                return tame_mro(obj)
        if name == "obj" and isinstance(obj, AttributeError):  # CVE-2024-47532: leaks internals
            raise AttributeError("AttributeError.obj is not available in the sandbox")
        value = safer_getattr_raise(obj, name)
        if kind is ModuleProxy or not callable(value) or isinstance(value, type):
            return value
        # `"\n".join(results)`: all futures in the arguments, one wait
        return resolving_arguments(value)

    def write(self, obj: Any) -> Any:
        kind = type(obj)
        if id(obj) in self.protected_ids:
            raise TypeError(f"cannot modify this {kind.__name__}: it is provided by the REPL")
        if kind in _WRITABLE or isinstance(kind, CellClass):
            return obj
        raise TypeError(
            f"cannot modify {kind.__name__} objects in the sandbox; only dicts, lists, sets, "
            "collections containers and instances of classes defined in the REPL are writable"
        )

    def _unbound_mutator(self, cls: type, name: str) -> Callable[..., Any]:
        method = safer_getattr_raise(cls, name)

        def call(target: Any, *args: Any, **kwargs: Any) -> Any:
            if id(target) in self.protected_ids:
                raise TypeError(f"{cls.__name__}.{name}: values provided by the REPL are read-only")
            return method(target, *args, **kwargs)

        return call

    def aug_item(self, target: Any, key: Any, op: str, value: Any) -> None:
        target[key] = _INPLACE[op](guarded_getitem(target, key), value)

    def aug_attr(self, target: Any, name: str, op: str, value: Any) -> None:
        setattr(target, name, _INPLACE[op](safer_getattr_raise(target, name), value))


# -- the sandbox --------------------------------------------------------------------------------

_MISSING = object()


@dataclass
class _Result:
    exc: BaseException | None = None
    error: str | None = None  # the exception's text, made inside the cell's clock


_OUT_OF_MEMORY = (
    "MemoryError: the REPL is out of memory, so the cell could not start. Free memory first "
    "(`del` the biggest variables, or assign them None) and work on smaller pieces."
)


def default_grace_s(cell_timeout_s: float | None) -> float:
    """How long a timed-out cell gets to unwind before its process is killed: its own limit,
    at least 1 s and at most 10 s."""
    return 10.0 if cell_timeout_s is None else min(10.0, max(1.0, cell_timeout_s))


class Sandbox:
    """A persistent namespace in which model-written cells run under RestrictedPython."""

    def __init__(
        self,
        *,
        cell_timeout_s: float | None = 60.0,
        subcall_names: Iterable[str] | None = None,
        max_workers: int = 256,
        hard_kill: Callable[[], None] | None = None,
        hard_kill_grace_s: float | None = None,
        kill_switch: KillSwitch | None = None,
    ) -> None:
        if cell_timeout_s is not None and cell_timeout_s <= 0:
            raise ConfigError(f"`cell_timeout_s` must be > 0 or None, got {cell_timeout_s!r}")
        if max_workers < 1:
            raise ConfigError(f"`max_workers` must be >= 1, got {max_workers!r}")
        refuse_pickling()
        grace_s = (
            default_grace_s(cell_timeout_s) if hard_kill_grace_s is None else hard_kill_grace_s
        )
        self._clock = CellClock(cell_timeout_s, max_workers, hard_kill, grace_s, kill_switch)
        if subcall_names is None:  # the REPL's own (rlm_ray/subcall_kinds/), imported once built
            from rlm_ray.subcall_kinds import SUBCALL_NAMES

            subcall_names = SUBCALL_NAMES
        self._subcall_names = frozenset(subcall_names)
        self._fanout_names = set(self._subcall_names)
        self._fanout = FanOut(self._clock, max_workers)
        self._injected: dict[str, Any] = {}
        self._protected_ids: set[int] = set()
        self._sources: dict[str, list[str]] = {}  # cell filename -> lines, for tracebacks
        self._cells = 0
        self._idle_output = CellOutput()  # prints from outside any cell
        self._guards = _Guards(self._protected_ids)
        guard_read_only(self._guards.is_read_only)
        self._runtime = self._runtime_globals(self._guards)
        self._preloaded = preloaded_modules()  # ordinary names: a cell may rebind them
        self.namespace: dict[str, Any] = {**self._runtime, **self._preloaded}

    def _runtime_globals(self, guards: _Guards) -> dict[str, Any]:
        printer = Printer(self._output)
        return {
            "__builtins__": make_builtins(),
            # subtle: the module of every class and function the cells define: one that refuses
            # to be looked into, so pickle and Ray's cloudpickle refuse to serialise them.
            "__name__": CELL_MODULE,
            "__metaclass__": CellClass,
            "_getattr_": guards.getattr,
            "_getitem_": guarded_getitem,
            "_getiter_": guarded_getiter,
            "_write_": guards.write,
            "_inplacevar_": _inplacevar,
            "_apply_": _apply,
            "_iter_unpack_sequence_": _iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_print_": lambda _getattr_=None: printer,
            "_print": printer,
            "_rlm_aug_item_": guards.aug_item,
            "_rlm_aug_attr_": guards.aug_attr,
            "_rlm_fanout_": self._fanout.run,
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

    def close(self) -> None:
        """Forget this sandbox's read-only values (the allowlisted mutators check them)."""
        forget_read_only(self._guards.is_read_only)

    def run(self, code: str, after: Callable[[], None] | None = None) -> CellOutcome:
        """Run one cell. Never raises for model mistakes; state persists between calls.

        `after`, if given, runs once the cell's code ended (with an error too, but not with
        FINAL() or a timeout), still inside the cell's clock (its errors are the cell's): host
        code that reads what the cell left (e.g. `answer`) may meet methods of classes the model
        defined.
        """
        started = time.monotonic()
        compiled = self._compile(code)
        if isinstance(compiled, str):
            return CellOutcome("", compiled, NO_FINAL, "", False, time.monotonic() - started)
        result = _Result()
        try:
            cell = self._clock.open()
        except (MemoryError, RuntimeError):  # no memory left for the watchdog thread
            gc.collect()
            return CellOutcome("", _OUT_OF_MEMORY, NO_FINAL, "", False, time.monotonic() - started)
        try:
            self._within(cell, result, lambda: exec(compiled, self.namespace), after)
        finally:
            self._clock.close(cell)
        self._restore_runtime()
        return self._outcome(result, cell, time.monotonic() - started)

    def evaluate(self, fn: Callable[[], Any]) -> tuple[Any, str | None]:
        """Run host code that touches model-made values under a cell's clock, as a cell would:
        ``(value, None)``, or ``(None, error text)`` if it raised or ran out of time."""
        result = _Result()
        box: list[Any] = [None]
        try:
            cell = self._clock.open()
        except (MemoryError, RuntimeError):
            gc.collect()
            return None, _OUT_OF_MEMORY
        try:
            self._within(cell, result, lambda: box.__setitem__(0, fn()), None)
        finally:
            self._clock.close(cell)
        self._restore_runtime()
        outcome = self._outcome(result, cell, 0.0)
        return (box[0], None) if outcome.error is None else (None, outcome.error)

    def value_of(self, expression: str) -> Any:
        """The value of `expression` in the namespace, compiled under the cells' policy (it
        is model-made code); call it inside `evaluate`. Raises on any failure."""
        tree = ast.parse(expression, "<expression>", mode="eval")
        policy = _policy_for(frozenset(self._fanout_names))
        compiled = compile_restricted_eval(tree, "<expression>", policy=policy)
        if compiled.errors or compiled.code is None:
            raise SyntaxError("; ".join(compiled.errors) or "not an expression")
        return eval(compiled.code, self.namespace)  # noqa: S307 (restricted code)

    def waiting(self) -> contextlib.AbstractContextManager[None]:
        """Wrap a blocking wait: time inside does not count toward the calling thread's limit."""
        return self._clock.waiting()

    def print(self, *objects: Any, sep: str = " ", end: str = "\n") -> None:
        """Print into the running cell's output, for injected functions (e.g. SHOW_VARS).

        Host-side ``print`` goes to the process's stdout, which the model never sees.
        """
        self._output()._call_print(*objects, sep=sep, end=end)

    def variables(self) -> dict[str, str]:
        """User-defined names and a short description of each value (for SHOW_VARS); call it
        inside a cell (or `evaluate`): describing a value may call its class's methods."""
        return {
            name: describe(value)
            for name, value in self.namespace.items()
            if not name.startswith("_")
            and name not in self._injected
            and self._preloaded.get(name) is not value
        }

    # -- running a cell -----------------------------------------------------------------------
    def _compile(self, code: str) -> types.CodeType | str:
        self._cells += 1
        filename = f"<cell {self._cells}>"
        try:
            tree = ast.parse(code, filename)
            if (name := literal_rebinding(tree, self._injected)) is not None:
                return self._made_up(name)
            names = subcall_functions(tree, self._fanout_names) | self._subcall_names
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

    def _made_up(self, name: str) -> str:
        """The error for a cell that types a value into an injected name (`literal_rebinding`)."""
        value = self._injected[name]
        held = describe(value) if isinstance(value, (str, list, tuple, dict)) else "value"
        if callable(value):
            held = "function"
        return (
            f"ValueError: `{name}` holds the run's own {held}; the cell assigns it a value "
            "written in the code, which would answer from made-up data. Nothing ran: use "
            f"`{name}` as it is, and give a value of your own a new name."
        )

    def _within(
        self,
        cell: Cell,
        result: _Result,
        body: Callable[[], Any],
        after: Callable[[], None] | None,
    ) -> None:
        """Everything of one cell that may run model code, on the cell's clock: the code, the
        host's reads of what it left (`after`), settling futures, and the error's text."""
        try:
            self._step(result, body)
            if after is not None and not isinstance(result.exc, FinalAnswer) and not cell.expired:
                probe = _Result()  # runs after a failed cell too: what it left still counts
                self._step(probe, after)
                result.exc = result.exc or probe.exc
            if not cell.expired:
                self._step(_Result(), lambda: settle_futures(self.namespace, self._injected))
            if result.exc is not None and not isinstance(result.exc, FinalAnswer):
                result.error = self._error_text(result.exc, cell)
        except CellTimeout as exc:  # landed between the steps, after the cell's own handler
            result.exc = result.exc or exc

    @staticmethod
    def _step(result: _Result, body: Callable[[], Any]) -> None:
        try:
            body()
        except KeyboardInterrupt:  # the host cancelling us: machinery, not a model mistake
            raise
        except BaseException as exc:  # model code can raise anything, BaseException included
            result.exc = exc

    def _error_text(self, exc: BaseException, cell: Cell) -> str | None:
        if cell.expired:
            return None  # `_outcome` says the cell timed out
        try:  # str() of the exception may call methods of a class the model defined
            return error_text(exc, self._sources)
        except CellTimeout:
            raise
        except BaseException:
            return f"{type(exc).__name__}: (its message could not be shown)"

    def _restore_runtime(self) -> None:
        for name, value in self._injected.items():
            if self.namespace.get(name, _MISSING) is not value:
                self.namespace[name] = value
        self.namespace.update(self._runtime)

    def _outcome(self, result: _Result, cell: Cell, duration_s: float) -> CellOutcome:
        exc, stdout = result.exc, exact_str(cell.output.text())
        result.exc = None
        if isinstance(exc, FinalAnswer):
            return CellOutcome(stdout, None, exc.value, exc.kind, False, duration_s)
        if exc is not None and cell.expired:
            message = (
                "TimeoutError: the cell timed out: it exceeded its "
                f"{self._clock.timeout_s:g} s time limit and was stopped. Variables assigned "
                "before the stop are kept; split the work into smaller cells or use batched "
                "sub-calls."
            )
            return CellOutcome(stdout, message, NO_FINAL, "", True, duration_s)
        if isinstance(exc, MemoryError):
            gc.collect()
        error = None if exc is None else (result.error or type(exc).__name__)
        return CellOutcome(stdout, error, NO_FINAL, "", False, duration_s)

    # -- runtime helpers the rewritten code calls ----------------------------------------------
    def _output(self) -> CellOutput:
        cell = self._clock.current
        return cell.output if cell is not None else self._idle_output

    def _show(self, value: Any) -> None:
        if value is not None:
            self._output().write(repr(resolve(value)) + "\n")
