"""The guards the rewritten code calls: attribute reads, writes, in-place operators, unpacking.

RestrictedPython compiles ``obj.name`` into ``_getattr_(obj, "name")``, ``obj[k] = v`` into
``_write_(obj)[k] = v`` and so on; these are the functions behind those names. They keep the
REPL's injected values read-only (`Guards`, per sandbox), let only builtin containers and the
cells' own classes be written, resolve sub-call futures where a value is used, and hand out no
class of the runtime through ``.mro()``.
"""

from __future__ import annotations

import collections
import operator
from collections.abc import Callable, Iterator
from typing import Any

from RestrictedPython.Guards import guarded_unpack_sequence, safer_getattr_raise

from rlm_ray.core.futures import SubCallFuture
from rlm_ray.sandbox.allowlist import CellClass, ModuleProxy, tame_mro
from rlm_ray.sandbox.future_guards import (
    guarded_getitem,
    guarded_getiter,
    resolving_arguments,
    unwrap_future,
)

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


def iter_unpack_sequence(it: Any, spec: dict[str, Any], _getiter_: Any) -> Iterator[Any]:
    """``for k, v in pairs``: resolve `pairs` once, then unpack each element shallowly."""
    for element in guarded_getiter(it):
        yield guarded_unpack_sequence(element, spec, unwrap_future)


def inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


class Guards:
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
