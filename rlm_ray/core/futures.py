"""Sub-call futures: the text a sub-call will return, usable before it has come back.

`llm_query(...)` inside the REPL returns a `SubCallFuture` at once; the call is already in flight.
The future turns into its text the first time model code *uses* it (the sandbox guards call
`resolve` on attribute access, iteration, indexing and builtin arguments), so
``[llm_query(p) for p in pieces]`` has every call in flight before the first one is awaited.

`resolve` gathers every unresolved future in an argument tree and waits for all of them with one
call to their waiter, so ``"\\n".join(results)`` costs one round trip, not one per element.

subtle: a future's own state (`_handle`, `_settle`, `_fail`) is behind ``_`` names because model
code holds futures and the sandbox refuses every ``_`` name; the `Waiter` that settles them
(`subcalls.SubCalls`) uses those three by design. Pure Python, no Ray.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol

_MISSING = object()


class Waiter(Protocol):
    def wait(self, futures: list[SubCallFuture]) -> None:
        """Wait for `futures` and settle each one with `_settle(value)` or `_fail(error)`."""


class SubCallFuture:
    """The text a sub-call will return. Behaves like that `str` wherever it is used."""

    __slots__ = ("_handle", "_waiter", "_value", "_error", "__weakref__")

    def __init__(self, handle: Any, waiter: Waiter) -> None:
        self._handle = handle
        self._waiter = waiter
        self._value: Any = _MISSING
        self._error: BaseException | None = None
        _live.add()

    def __del__(self) -> None:
        _live.sub()

    # -- settling (called by the waiter) ------------------------------------------------------
    def _settle(self, value: Any) -> None:
        self._value = value

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._value = None

    @property
    def done(self) -> bool:
        return self._value is not _MISSING

    def result(self) -> Any:
        if self._value is _MISSING:
            self._waiter.wait([self])
        if self._error is not None:
            raise self._error
        return self._value

    # -- behave like the str it becomes -------------------------------------------------------
    def __str__(self) -> str:
        return str(self.result())

    def __repr__(self) -> str:
        return repr(self.result())

    def __format__(self, spec: str) -> str:
        return format(self.result(), spec)

    def __len__(self) -> int:
        return len(self.result())

    def __bool__(self) -> bool:
        return bool(self.result())

    def __hash__(self) -> int:
        return hash(self.result())

    def __eq__(self, other: object) -> bool:
        return self.result() == resolve(other)

    def __ne__(self, other: object) -> bool:
        return self.result() != resolve(other)

    def __lt__(self, other: object) -> bool:
        return self.result() < resolve(other)

    def __le__(self, other: object) -> bool:
        return self.result() <= resolve(other)

    def __gt__(self, other: object) -> bool:
        return self.result() > resolve(other)

    def __ge__(self, other: object) -> bool:
        return self.result() >= resolve(other)

    def __add__(self, other: object) -> Any:
        return self.result() + resolve(other)

    def __radd__(self, other: object) -> Any:
        return resolve(other) + self.result()

    def __mul__(self, other: object) -> Any:
        return self.result() * resolve(other)

    def __rmul__(self, other: object) -> Any:
        return resolve(other) * self.result()

    def __mod__(self, other: object) -> Any:
        return self.result() % resolve(other)

    def __contains__(self, item: object) -> bool:
        return resolve(item) in self.result()

    def __iter__(self):
        return iter(self.result())

    def __getitem__(self, key: Any) -> Any:
        return self.result()[resolve(key)]

    def __int__(self) -> int:
        return int(self.result())

    def __float__(self) -> float:
        return float(self.result())

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the future itself lacks (str methods); never private ones.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.result(), name)


class _LiveCount:
    """How many futures exist: lets `resolve` skip walking containers when there are none."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self._n += 1

    def sub(self) -> None:
        with self._lock:
            self._n -= 1

    def __bool__(self) -> bool:
        return self._n > 0


_live = _LiveCount()

_MAX_WALK_DEPTH = 8
# subtle: exact types only, here and in `_replace`. A container class defined in the REPL could
# override the methods a walk calls, and host code must never run model code (see `boundary`).
_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})


def contains_futures(obj: Any) -> bool:
    return bool(_live) and bool(_collect(obj, [], 0, set()))


def _collect(obj: Any, out: list[SubCallFuture], depth: int, seen: set[int]) -> list[SubCallFuture]:
    kind = type(obj)
    if kind is SubCallFuture:
        if not obj.done:
            out.append(obj)
        return out
    if depth >= _MAX_WALK_DEPTH or kind not in _CONTAINERS or id(obj) in seen:
        return out
    if id(obj) in _clean_ids:
        return out
    seen.add(id(obj))
    items: Iterable[Any] = dict.items(obj) if kind is dict else obj
    for item in items:
        if kind is dict:
            _collect(item[0], out, depth + 1, seen)
            _collect(item[1], out, depth + 1, seen)
        elif type(item) is SubCallFuture or type(item) in _CONTAINERS:
            _collect(item, out, depth + 1, seen)
    return out


# Objects known to hold no futures (the injected `context`): never walked.
_clean_ids: set[int] = set()


def mark_clean(obj: Any) -> None:
    """Declare that `obj` can never contain a future (e.g. the run's `context`)."""
    _clean_ids.add(id(obj))


def unmark_clean(obj: Any) -> None:
    _clean_ids.discard(id(obj))


def wait_all(futures: list[SubCallFuture]) -> None:
    """Wait for all `futures`, grouped by waiter, one batch per waiter."""
    by_waiter: dict[int, tuple[Waiter, list[SubCallFuture]]] = {}
    for fut in futures:
        if not fut.done:
            by_waiter.setdefault(id(fut._waiter), (fut._waiter, []))[1].append(fut)
    for waiter, batch in by_waiter.values():
        waiter.wait(batch)


def resolve(obj: Any) -> Any:
    """Return `obj` with every future in it replaced by its value.

    Lists, dicts and sets are updated in place (a future *is* its value, so this only makes the
    container cheaper to use next time, and keeps `results.sort()` sorting `results` itself);
    tuples and frozensets are rebuilt. Raises the first failed future's error.
    """
    if type(obj) is SubCallFuture:
        return obj.result()
    if not _live or type(obj) not in _CONTAINERS:
        return obj
    pending = _collect(obj, [], 0, set())
    wait_all(pending)
    return _replace(obj, 0, set())


def _replace(obj: Any, depth: int, seen: set[int]) -> Any:
    kind = type(obj)
    if kind is SubCallFuture:
        return obj.result()
    if depth >= _MAX_WALK_DEPTH or kind not in _CONTAINERS or id(obj) in seen:
        return obj
    if id(obj) in _clean_ids:
        return obj
    seen.add(id(obj))
    if kind is list:
        for i, item in enumerate(obj):
            if type(item) is SubCallFuture or type(item) in _CONTAINERS:
                new = _replace(item, depth + 1, seen)
                if new is not item:
                    obj[i] = new
        return obj
    if kind is dict:
        for key, item in list(dict.items(obj)):
            new_key = _replace(key, depth + 1, seen)
            new = _replace(item, depth + 1, seen)
            if new_key is not key:
                del obj[key]
                obj[new_key] = new
            elif new is not item:
                obj[key] = new
        return obj
    if kind is set:
        if any(type(x) is SubCallFuture for x in obj):
            items = [_replace(x, depth + 1, seen) for x in obj]
            obj.clear()
            obj.update(items)
        return obj
    items = [_replace(x, depth + 1, seen) for x in obj]
    if all(a is b for a, b in zip(items, obj)):
        return obj
    return kind(items)  # tuple or frozenset, exactly
