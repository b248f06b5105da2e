"""What the model reads back from a cell: its printed text, its error text, its variables.

* `CellOutput` collects what one cell prints, from any of its threads, behind RestrictedPython's
  print protocol (``_print._call_print``), with a memory backstop against runaway print loops.
* `Printer` is what model code reaches as ``print`` and ``printed``; it forwards to the cell
  running now (see its "subtle:" note).
* `error_text` formats an exception for the model: frames from the model's own cells only, never
  from the runtime, so the model reads about its own code.
* `describe` gives SHOW_VARS its one-line summary of a value.
"""

from __future__ import annotations

import collections
import io
import threading
import traceback
import types
from collections.abc import Callable
from typing import Any

from rlm_ray.core.futures import SubCallFuture, resolve
from rlm_ray.sandbox.allowlist import ModuleProxy, import_hint

# -- printed text ------------------------------------------------------------------------------


class CellOutput:
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
            self._size += len(text)  # past the cap too: the note counts every dropped character

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


class Printer:
    """What `print` and `printed` reach: forwards to the output of the cell running now.

    subtle: RestrictedPython binds a module-level ``_print`` once per cell; a lambda defined in
    one cell and called in a later one still uses it, so it must not capture one cell's output.
    """

    def __init__(self, current: Callable[[], CellOutput]) -> None:
        self._current = current

    def __call__(self) -> str:
        return self._current().text()

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        self._current()._call_print(*objects, **kwargs)


# -- error text ----------------------------------------------------------------------------------


def error_text(exc: BaseException, sources: dict[str, list[str]]) -> str:
    """`exc` as the model sees it; `sources` maps each cell's filename to its lines."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in sources]
    lines = ["Traceback (most recent call last):"] if frames else []
    if len(frames) > 12:
        lines += [_frame_text(f, sources) for f in frames[:3]]
        lines.append(f"  ... {len(frames) - 11} more frames ...")
        frames = frames[-8:]
    lines += [_frame_text(f, sources) for f in frames]
    if isinstance(exc, MemoryError):
        lines.append(
            "MemoryError: the cell ran out of memory (the REPL memory cap was hit). Work on "
            "smaller pieces of the data and avoid building huge strings or lists."
        )
    else:
        lines.append(_exception_text(exc))
        hint = import_hint(exc.name) if isinstance(exc, NameError) and exc.name else None
        if hint is not None:  # a small model repeats the failing block unless told the fix
            lines.append(f"Fix: put `{hint}` at the top of the block.")
        elif isinstance(exc, TypeError):
            lines += [fix for start, fix in _TYPE_FIXES if str(exc).startswith(start)]
    return "\n".join(lines)


# A small model that takes a list for a dict writes `labels[record]` turn after turn; told how a
# list is read, it changes the line (tests/test_sandbox.py has the messages these start with).
_TYPE_FIXES = (
    (
        "list indices must be integers or slices, not str",
        "Fix: a list is read by position (an int), not by a str. Loop over it (`for x in "
        "items:`), pair two lists in the same order with `zip(records, labels)`, or count its "
        "values with `collections.Counter(labels)`.",
    ),
    (
        "string indices must be integers",
        "Fix: this value is a str, read by position (an int), not by a str key. Print "
        "`type()` and a short part of it to see what it holds.",
    ),
)


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


# -- variables ---------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """One line for SHOW_VARS: the kind of value, with the size of strings and containers."""
    if type(value) is SubCallFuture:
        if not value.done:
            return "str (sub-call result, pending)"
        try:
            return describe(value.result())
        except Exception:
            return "failed sub-call"
    if isinstance(value, str):
        return f"str ({len(value):,} chars)"
    if isinstance(value, (list, tuple, set, frozenset, dict, collections.deque)):
        return f"{type(value).__name__} ({len(value):,} items)"
    if isinstance(value, ModuleProxy):
        return "module"
    if isinstance(value, type):
        return "class"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return "function"
    return type(value).__name__
