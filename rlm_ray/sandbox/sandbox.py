"""`Sandbox`: model-written Python cells under RestrictedPython, with lazy sub-calls, fan-out
and limits. What it protects and what it does not: the threat model in
`rlm_ray/sandbox/__init__.py`.

The root model writes ```repl blocks; the REPL layer hands each block ("cell") to `Sandbox.run`,
which compiles it under the policy (`policy`), executes it in a namespace that persists between
cells, with the guards the rewritten code calls (`guards`), on the cell's clock (`clock`), and
returns a `CellOutcome` (`outcome`): what was printed, the error text for the model, a FINAL()
value, whether the cell timed out. Model mistakes never raise.

This module puts the pieces together and is, with `policy` and `guards`, one of the three that
import RestrictedPython. The other pieces are free of it: `rewrites` (the AST work behind the
policy), `allowlist` (builtins and module proxies), `future_guards` (where model code waits for
sub-calls), `fanout` (parallel comprehensions), `clock` (the per-cell time limit), `output`
(what the model reads back), `boundary` (what may leave a cell) and `memory_cap`
(`limit_memory`).
"""

from __future__ import annotations

import ast
import contextlib
import gc
import time
import traceback
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_unpack_sequence

from rlm_ray.core.futures import resolve
from rlm_ray.errors import ConfigError
from rlm_ray.sandbox.allowlist import (
    CellClass,
    forget_read_only,
    guard_read_only,
    make_builtins,
    preloaded_modules,
)
from rlm_ray.sandbox.boundary import CELL_MODULE, exact_str, refuse_pickling
from rlm_ray.sandbox.clock import Cell, CellClock, CellTimeout
from rlm_ray.sandbox.fanout import FanOut
from rlm_ray.sandbox.future_guards import guarded_getitem, guarded_getiter, settle_futures
from rlm_ray.sandbox.guards import Guards, apply, inplacevar, iter_unpack_sequence
from rlm_ray.sandbox.kill_switch import KillSwitch
from rlm_ray.sandbox.outcome import NO_FINAL, CellOutcome, FinalAnswer
from rlm_ray.sandbox.output import CellOutput, Printer, describe, error_text
from rlm_ray.sandbox.policy import policy_for
from rlm_ray.sandbox.rewrites import literal_rebinding, subcall_functions

__all__ = ["NO_FINAL", "CellOutcome", "CellTimeout", "FinalAnswer", "Sandbox", "default_grace_s"]

# Exceptions model code may never swallow; KeyboardInterrupt is how Ray cancels a running task.
_CONTROL = (FinalAnswer, CellTimeout, KeyboardInterrupt)

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
        self._guards = Guards(self._protected_ids)
        guard_read_only(self._guards.is_read_only)
        self._runtime = self._runtime_globals(self._guards)
        self._preloaded = preloaded_modules()  # ordinary names: a cell may rebind them
        self.namespace: dict[str, Any] = {**self._runtime, **self._preloaded}

    def _runtime_globals(self, guards: Guards) -> dict[str, Any]:
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
            "_inplacevar_": inplacevar,
            "_apply_": apply,
            "_iter_unpack_sequence_": iter_unpack_sequence,
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
        policy = policy_for(frozenset(self._fanout_names))
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
            compiled = compile_restricted_exec(tree, filename, policy=policy_for(frozenset(names)))
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
