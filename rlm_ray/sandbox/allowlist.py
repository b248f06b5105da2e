"""What model code can name without a guard: the builtins table and the allowlisted modules.

A cell's ``__builtins__`` is a fresh `make_builtins()` table: plain types and functions, the
exceptions a cell may raise or catch (never `BaseException`, `SystemExit`, `KeyboardInterrupt`
or `GeneratorExit`), a tame `type` and an ``__import__`` that hands out `ModuleProxy` objects
only. Each proxy holds the listed functions, classes and constants of one stdlib module (re,
json, math, ...), never a module object: no submodules, no ``os`` or ``sys`` behind an attribute,
nothing that opens files or starts processes. Widening these lists widens the attack surface
(see the threat model in `rlm_ray.sandbox`).

Functions handed out here resolve `SubCallFuture`s in their arguments first
(`future_guards.resolving_arguments`), so ``re.findall(p, llm_query(...))`` sees the text.
No RestrictedPython here.
"""

from __future__ import annotations

import bisect
import builtins
import collections
import datetime
import functools
import heapq
import itertools
import json
import math
import re
import statistics
import string
import textwrap
import types
from collections.abc import Callable
from typing import Any

from rlm_ray.sandbox.future_guards import resolving_arguments, unwrap_future

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


def _type(*args: Any) -> Any:
    """`type(x)` only; a metaclass comes back as this function, so `type(type(1))` stays tame,
    and a class of the runtime's own comes back as a `HostClass` stand-in (see `tame_class`)."""
    if len(args) != 1:
        raise TypeError(
            "type() takes exactly 1 argument in the sandbox; creating classes with "
            "type(name, bases, dict) is not allowed"
        )
    cls = type(unwrap_future(args[0]))
    return _type if issubclass(cls, type) else tame_class(cls)


class HostClass:
    """What model code gets for a class of the runtime (e.g. ``type(context)`` of a corpus
    view): its name, and `isinstance` works, but it cannot be called or subclassed, and has no
    ``mro()`` — so model code cannot build a view over a source of its own."""

    __slots__ = ("_cls",)
    _cls: type

    def __init__(self, cls: type) -> None:
        object.__setattr__(self, "_cls", cls)

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return self._cls.__name__

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("this class is read-only in the sandbox")

    def __eq__(self, other: object) -> bool:
        return type(other) is HostClass and other._cls is self._cls

    def __hash__(self) -> int:
        return hash(self._cls)

    def __repr__(self) -> str:
        return f"<class '{self._cls.__name__}'>"

    def __mro_entries__(self, bases: tuple) -> tuple:
        raise TypeError(f"classes of the REPL runtime ({self._cls.__name__}) cannot be subclassed")


_OPEN_CLASSES: set[type] = set()  # runtime classes model code may hold (e.g. SubCallError)


def allow_class(cls: type) -> type:
    """Let model code hold `cls` itself (an exception class it must be able to catch)."""
    _OPEN_CLASSES.add(cls)
    return cls


def tame_class(cls: type) -> Any:
    """`cls` if model code may hold it — a builtin, a class defined in the REPL, an allowlisted
    one — else a `HostClass` stand-in."""
    if cls.__module__ == "builtins" or cls in _OPEN_CLASSES or cls in _STDLIB_CLASSES:
        return cls
    if isinstance(cls, CellClass):
        return cls
    return HostClass(cls)


def tame_mro(cls: type) -> Callable[[], list[Any]]:
    """``cls.mro`` as model code gets it: the runtime's classes in it are stand-ins."""
    return lambda: [tame_class(c) for c in type.mro(cls)]


class CellClass(type):
    """Metaclass of classes defined in the REPL (RestrictedPython's ``__metaclass__``)."""


def _isinstance(obj: Any, classinfo: Any) -> bool:
    if type(classinfo) is HostClass:
        classinfo = classinfo._cls
    elif type(classinfo) is tuple:
        classinfo = tuple(c._cls if type(c) is HostClass else c for c in classinfo)
    return isinstance(unwrap_future(obj), classinfo)


def make_builtins() -> dict[str, Any]:
    table: dict[str, Any] = {name: getattr(builtins, name) for name in _PLAIN_BUILTINS}
    table.update(
        (name, resolving_arguments(getattr(builtins, name))) for name in _RESOLVING_BUILTINS
    )
    table.update((name, getattr(builtins, name)) for name in _EXCEPTIONS)
    table.update(type=_type, isinstance=_isinstance, __import__=_import)
    table["__build_class__"] = builtins.__build_class__
    return table


# -- allowlisted modules ------------------------------------------------------------------------


class ModuleProxy:
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
        return resolving_arguments(value)  # `re.findall(p, llm_query(...))` needs the text
    return value


def _build_proxy(label: str) -> ModuleProxy:
    module = _REAL_MODULES[label]
    names = [n for n in _MODULE_MEMBERS[label].split() if hasattr(module, n)]  # 3.10 lacks a few
    members = {n: _proxy_member(getattr(module, n)) for n in names}
    if label == "re":
        members.update(_RE_FLAGS)  # plain ints: the RegexFlag enum class is more surface
    return ModuleProxy(label, members)


_PROXIES = {label: _build_proxy(label) for label in _MODULE_MEMBERS}
_STDLIB_CLASSES: frozenset[type] = frozenset(
    value
    for proxy in _PROXIES.values()
    for value in object.__getattribute__(proxy, "_members").values()
    if isinstance(value, type)
)

# In-place mutators among the allowlisted functions: they must not change what the REPL injected.
_MUTATING = {
    "heapq": "heappush heappop heapify heapreplace heappushpop",
    "bisect": "insort insort_left insort_right",
}
_read_only_checks: list[Callable[[Any], bool]] = []


def guard_read_only(is_read_only: Callable[[Any], bool]) -> None:
    """Register a check (one per live sandbox) that says whether an object is injected."""
    _read_only_checks.append(is_read_only)


def forget_read_only(is_read_only: Callable[[Any], bool]) -> None:
    if is_read_only in _read_only_checks:
        _read_only_checks.remove(is_read_only)


def _refusing_read_only(label: str, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(target: Any, *args: Any, **kwargs: Any) -> Any:
        if any(check(target) for check in list(_read_only_checks)):
            raise TypeError(f"{label}.{name}: values provided by the REPL are read-only")
        return fn(target, *args, **kwargs)

    return call


for _label, _names in _MUTATING.items():
    _members = object.__getattribute__(_PROXIES[_label], "_members")
    for _name in _names.split():
        _members[_name] = _refusing_read_only(_label, _name, _members[_name])


PRELOADED = ("re", "json", "math", "collections")
"""Modules every REPL starts with, as if imported (a model that forgets `import collections`
otherwise loses turns to a NameError)."""


def preloaded_modules() -> dict[str, ModuleProxy]:
    return {label: _PROXIES[label] for label in PRELOADED}


def import_hint(name: str) -> str | None:
    """The import that defines `name`, if an allowed module is or holds it ("import heapq",
    "from collections import Counter"); None otherwise."""
    if name in _PROXIES:
        return f"import {name}"
    for label, proxy in _PROXIES.items():
        if name in object.__getattribute__(proxy, "_members"):
            return f"from {label} import {name}"
    return None


def _import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    if level == 0 and name in _PROXIES:
        return _PROXIES[name]
    allowed = ", ".join(sorted(_PROXIES))
    raise ImportError(
        f"module {name!r} is not available in the sandbox; allowed modules: {allowed}"
    )
