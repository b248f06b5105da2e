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

from rlm_ray.future_guards import resolving_arguments, unwrap_future

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
    cls = type(unwrap_future(args[0]))
    return _type if issubclass(cls, type) else cls


def _isinstance(obj: Any, classinfo: Any) -> bool:
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


def _import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
) -> Any:
    if level == 0 and name in _PROXIES:
        return _PROXIES[name]
    allowed = ", ".join(sorted(_PROXIES))
    raise ImportError(
        f"module {name!r} is not available in the sandbox; allowed modules: {allowed}"
    )
