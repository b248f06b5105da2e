"""Where model code waits for sub-call results (`SubCallFuture`s), and where it does not.

`llm_query(...)` returns a future at once and the call is already in flight
(`rlm_ray.core.futures`). Waiting as late as possible keeps many calls in flight together;
waiting for all the futures one operation needs in a single batch keeps the round trips few.
The guards apply that rule:

* storing keeps a future: builtin containers take futures as they are
  (``results.append(llm_query(p))``), so their methods are not wrapped (see `guards._CONTAINERS`);
* calling a method, an allowlisted function or a resolving builtin first resolves every future in
  the arguments, in one wait (`resolving_arguments`); ``str(f)``, ``len(f)`` and operators work
  through the future's own dunders;
* iterating resolves the whole iterable in one wait (`guarded_getiter`);
* indexing and unpacking unwrap one level only (`guarded_getitem`, `unwrap_future`);
* between cells, finished futures held by variables are replaced by their values
  (`settle_futures`), so the cheap paths above are taken more often.

No RestrictedPython here; the guards that need it are in `rlm_ray.sandbox`.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from rlm_ray.core.futures import SubCallFuture, contains_futures, resolve

_SETTLE_MAX_ITEMS = 1_000


def unwrap_future(obj: Any) -> Any:
    """A future's value; anything else unchanged (containers are not walked: see
    `guarded_getitem`)."""
    return obj.result() if type(obj) is SubCallFuture else obj


_MAY_HOLD_FUTURES = (SubCallFuture, list, tuple, dict, set, frozenset)


def resolving_arguments(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `fn` so futures in its arguments are resolved first, in one batch.

    Resolves like `futures.resolve`, with a cheap test first: the guards wrap a callable on every
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


def guarded_getitem(obj: Any, key: Any) -> Any:
    # Shallow on purpose: resolving the whole container on every `lines[i]` would make loops
    # over big lists quadratic while any future is alive. A future item is used lazily anyway.
    return unwrap_future(obj)[unwrap_future(key)]


def guarded_getiter(obj: Any) -> Any:
    return resolve(obj)  # one batch wait for `for r in results:`; no-op when no future exists


def settle_futures(namespace: dict[str, Any], skip: Container[str]) -> None:
    """Replace finished futures held by variables (and small containers) with their values.

    Never waits. Fewer live futures means the guards' resolving takes its fast path more.
    Private names and the names in `skip` (values the REPL injected) are left alone. The sandbox
    calls it inside the cell's clock: a dict's keys may be objects of classes the model defined.
    """
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in skip:
            continue
        try:
            if type(value) is SubCallFuture:
                if value.done:
                    namespace[name] = value.result()
            elif _small_container(value) and not contains_futures(value):
                namespace[name] = resolve(value)
        except Exception:  # a failed sub-call: it stays a future and fails when used
            pass


def _small_container(value: Any) -> bool:
    # Bounded so that a session holding a million-line list does not pay a walk per cell.
    # Exact types: a container class defined in the REPL is never walked (see `boundary`).
    return type(value) in _SETTLED and len(value) <= _SETTLE_MAX_ITEMS


_SETTLED = frozenset({list, tuple, dict, set})
