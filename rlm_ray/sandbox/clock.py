"""A cell's time limit: which threads run the cell, how long they ran, and how they are stopped.

Time counts only while some thread of the cell runs model code, that is, is not inside
`Cell.waiting` (which the runtime's waits for sub-calls enter through `Sandbox.waiting`): a cell
that fans out 200 sub-calls is not charged for their latency.

When the limit is reached the watchdog thread stops the cell, escalating:

1. every thread of the cell gets `CellTimeout`, again every `KICK_S` until it has left: by an
   asynchronous exception (`async_raise`, checked between bytecodes), or by SIGALRM for the
   thread that called `Sandbox.run` when it is the process's main thread; a signal also stops C
   code that checks for signals (regex, big powers);
2. on the main thread a kernel timer (``ITIMER_REAL``) backs the watchdog up: C code holding the
   GIL (a catastrophic regex) starves the watchdog, so the timer's SIGALRM, due a little after
   the budget runs out, stops it instead;
3. after a grace period the sandbox's `hard_kill` callback runs (the Ray runtime's ends the REPL
   process), for code that outlives the interrupts;
4. C code that holds the GIL without checking for signals (a catastrophic regex in a fan-out
   thread) starves the watchdog too, so the watchdog also keeps a `kill_switch.KillSwitch`
   armed: a process outside this one that kills it a little after the grace period unless the
   watchdog, still running, pushed the deadline back.

`CellTimeout` is a `BaseException` and the policy in `rlm_ray.sandbox` re-raises it ahead of any
handler model code writes, so it cannot be swallowed. No RestrictedPython here.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from rlm_ray.sandbox.kill_switch import KillSwitch
from rlm_ray.sandbox.output import CellOutput


class CellTimeout(BaseException):
    """Raised into every thread of a cell that ran past its time limit."""


_TICK_S = 0.01  # watchdog clock resolution
_SWITCH_MARGIN_S = 1.0  # the outside kill comes this long after the in-process hard kill
_SWITCH_SLACK_S = 0.25  # the switch's deadline is re-sent when it moved by more than this
_CAN_SIGNAL = hasattr(signal, "pthread_kill") and hasattr(signal, "SIGALRM")
KICK_S = 0.05  # how often a timed-out cell's threads are interrupted again


FANOUT_STACK_BYTES = 1 << 20
"""Stack of a fan-out thread. subtle: the memory cap (RLIMIT_DATA) counts thread stacks, and
the default 8 MiB each would let 256 threads take 2 GiB; Python's recursion limit stops deep
recursion, Python or C, long before 1 MiB (measured: 990-deep recursion, repr and json.dumps of
a 50,000-deep list all end in RecursionError at 512 KiB)."""
_WATCHDOG_STACK_BYTES = 256 << 10
_STACK_LOCK = threading.Lock()


def start_thread(thread: threading.Thread, stack_bytes: int) -> None:
    """Start `thread` with a stack of `stack_bytes` (the process's default is left as it was)."""
    with _STACK_LOCK:
        previous = threading.stack_size(stack_bytes)
        try:
            thread.start()
        finally:
            threading.stack_size(previous)


def async_raise(ident: int, exc: type[BaseException] | None) -> None:
    """Raise `exc` in thread `ident` at its next bytecode; None clears a pending one."""
    arg = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), arg)


class Cell:
    """Bookkeeping of one running cell: which threads run it and which of them are waiting."""

    def __init__(self, max_workers: int, on_main: bool) -> None:
        self.lock = threading.Lock()
        self.depth: dict[int, int] = {}  # registered thread -> nesting of waiting()
        self.active = 0  # registered threads not inside waiting(): the clock runs while > 0
        self.workers: list[threading.Thread] = []
        self.budget = threading.Semaphore(max(0, max_workers - 1))  # the caller is a worker too
        self.output = CellOutput()
        self.main_ident = threading.get_ident()
        self.on_main = on_main
        self.expired = False
        self.closed = False
        # Set by `CellClock.open` when the cell has a time limit, undone by `CellClock.close`.
        self.watchdog: _Watchdog | None = None
        self.previous_handler: Any = None  # SIGALRM's handler before this cell

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
                    async_raise(ident, CellTimeout)


class _Watchdog(threading.Thread):
    """Counts a cell's running time (not time in waiting()) and stops it when over the limit."""

    def __init__(
        self,
        cell: Cell,
        limit_s: float,
        hard_kill: Callable[[], None] | None,
        grace_s: float,
        switch: KillSwitch | None,
    ) -> None:
        super().__init__(name="rlm-cell-watchdog", daemon=True)
        self.cell, self.limit_s, self.hard_kill, self.grace_s = cell, limit_s, hard_kill, grace_s
        self.switch = switch
        self.expired_at: float | None = None
        self.killed = False
        self._stop_event = threading.Event()
        if switch is not None:  # before the thread runs: C code may starve it from the start
            switch.arm(time.monotonic() + limit_s + grace_s + _SWITCH_MARGIN_S)

    def _push_switch(self, deadline: float) -> None:
        if self.switch is not None and abs(deadline - self.switch.deadline) > _SWITCH_SLACK_S:
            self.switch.arm(deadline)

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
                self._push_switch(now + self.limit_s - counted + self.grace_s + _SWITCH_MARGIN_S)
                continue
            self._push_switch(self.expired_at + self.grace_s + _SWITCH_MARGIN_S)
            if now - last_kick >= KICK_S:
                self.cell.kick()
                last_kick = now
            if not self.killed and now - self.expired_at >= self.grace_s:
                self.killed = True  # also ends the wait for stray workers in `CellClock._close`
                if self.hard_kill is not None:
                    self.hard_kill()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        if self.switch is not None:
            self.switch.disarm()


def _arm_alarm(cell: Cell, remaining_s: float) -> None:
    """Backstop for a main-thread cell: C code holding the GIL (a catastrophic regex) starves
    the watchdog, so a kernel timer due a little after the remaining budget fires instead.
    The watchdog pushes it back on every tick, so it only fires when the watchdog could not run.
    """
    if cell.on_main:
        signal.setitimer(signal.ITIMER_REAL, remaining_s + 2 * _TICK_S if remaining_s else 0.0)


def _retrying(fn: Callable[[], None]) -> None:
    # subtle: a stop request aimed at the cell may still land while we tear the cell down.
    while True:
        try:
            return fn()
        except CellTimeout:
            continue


class CellClock:
    """The time limit of one sandbox's cells: opens each cell with its watchdog and alarm."""

    def __init__(
        self,
        timeout_s: float | None,
        max_workers: int,
        hard_kill: Callable[[], None] | None,
        grace_s: float,
        switch: KillSwitch | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self._max_workers = max_workers
        self._hard_kill = hard_kill
        self._grace_s = grace_s
        self._switch = switch
        self.current: Cell | None = None
        """The cell running now, if any."""

    def waiting(self) -> contextlib.AbstractContextManager[None]:
        """Wrap a blocking wait: time inside does not count toward the calling thread's limit."""
        cell = self.current
        return cell.waiting() if cell is not None else contextlib.nullcontext()

    def open(self) -> Cell:
        """Start a cell on the calling thread, with its clock running.

        Raises `MemoryError` or `RuntimeError` (no memory for the watchdog thread) with no
        clock left behind: nothing of a cell that could not start may fire later."""
        on_main = threading.current_thread() is threading.main_thread()
        cell = Cell(self._max_workers, on_main and _CAN_SIGNAL)
        if self.timeout_s is not None:
            watchdog = _Watchdog(cell, self.timeout_s, self._hard_kill, self._grace_s, self._switch)
            try:
                start_thread(watchdog, _WATCHDOG_STACK_BYTES)
            except BaseException:
                if self._switch is not None:
                    self._switch.disarm()
                raise
            cell.watchdog = watchdog
        cell.enter()
        self.current = cell
        if self.timeout_s is not None and cell.on_main:
            cell.previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
            _arm_alarm(cell, self.timeout_s)
        return cell

    def close(self, cell: Cell) -> None:
        """End `cell`: wait for its stray workers, stop its watchdog, restore the alarm."""
        _retrying(lambda: self._close(cell))

    def _close(self, cell: Cell) -> None:
        cell.leave()  # first: no more interrupts aimed at this thread
        self._join_workers(cell)
        if cell.watchdog is not None:
            cell.watchdog.stop()
        with cell.lock:
            cell.closed = True
        if cell.on_main and self.timeout_s is not None:
            _arm_alarm(cell, 0.0)
            previous = cell.previous_handler
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        async_raise(threading.get_ident(), None)  # drop an interrupt that raced the end
        self.current = None

    def _join_workers(self, cell: Cell) -> None:
        """Wait for fan-out threads a timeout left running, until they stop or hard-kill time."""
        watchdog = cell.watchdog
        for thread in list(cell.workers):
            while thread.is_alive() and not (watchdog is not None and watchdog.killed):
                thread.join(KICK_S)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        cell = self.current
        if cell is None or cell.closed or cell.main_ident not in cell.depth:
            return  # the cell's code is over: nothing to stop
        # Sent by the watchdog's kick or by the backstop timer: time is up either way.
        cell.expired = True
        raise CellTimeout()
