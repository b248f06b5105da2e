"""The one rule for values leaving a cell: only exact builtin data crosses.

Model code can define classes, and a class defined in a cell can override any ordinary method
of a builtin it subclasses (`str.split`, `dict.get`, `list.extend`, ...). Host code that calls
such a method — litellm reading a model name, pickle rebuilding a list, Ray re-raising an
exception — would run model code outside the sandbox, with the real builtins and no time limit.
So every value that leaves a cell (sub-call prompts and model names, child contexts, operator
items, the final answer) goes through `plain`, which:

* checks ``type(x) is ...`` — never `isinstance`, which can call model code — for str, int,
  float, bool, None, and list/tuple/dict of those (and an operator's `RecordAnswers`, copied as
  the list it is, and `llm_count`'s `Count`, copied as the int it is), and copies them (so a value the model keeps
  cannot change under the host); the project's own views (`corpus.Corpus`, `corpus.Document`)
  are rebuilt from their plain fields, and a sub-call result is its text;
* bounds the size and nesting, so a copy cannot exhaust the host;
* calls no method of the value, and raises `TypeError` with a message naming only the type.

`exact_str` turns a str (maybe of a model-defined subclass) into an exact ``str`` without calling
any of its methods. `refuse_pickling` is the second line: a module whose every attribute lookup
fails, registered as the module of everything a cell defines, so cloudpickle (which would ship a
model-defined class or function by value, to be rebuilt elsewhere with the real builtins) and
pickle refuse to serialise it.

No Ray, no RestrictedPython here.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from rlm_ray import corpus
from rlm_ray.cascade.report import Count
from rlm_ray.core.futures import SubCallFuture
from rlm_ray.operators.record_ops import RecordAnswers

MAX_ITEMS = 1_000_000
"""Most items (list/tuple elements, dict entries, all levels together) one value may hold."""
MAX_DEPTH = 32
"""Deepest nesting of lists, tuples and dicts in one value."""

_SCALARS = (str, int, float, bool, type(None))
_VIEWS = (corpus.Corpus, corpus.Document)


class _Budget:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items = 0


def exact_str(text: str) -> str:
    """`text` as an exact ``str``; a str subclass is copied by the builtin, not its methods."""
    return text if type(text) is str else str.__str__(text)


def plain(value: Any, what: str, *, views: bool = True) -> Any:
    """A copy of `value` made only of exact builtin data (and, if `views`, corpus views).

    `what` names the value in the error, e.g. ``"llm_query: prompt"``. Raises `TypeError` for
    anything else (a class defined in the REPL, a builtin subclass, a function, a module proxy)
    and `ValueError` past `MAX_ITEMS` / `MAX_DEPTH`.
    """
    return _copy(value, what, views, 0, _Budget())


def _copy(value: Any, what: str, views: bool, depth: int, budget: _Budget) -> Any:
    kind = type(value)
    if kind is SubCallFuture:
        value = value.result()  # the text of a finished sub-call, always an exact str
        kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is Count:
        return int.__int__(value)
    if depth >= MAX_DEPTH:
        raise ValueError(f"{what}: nested deeper than {MAX_DEPTH} levels")
    if kind is list or kind is tuple or kind is RecordAnswers:
        _count(budget, tuple.__len__(value) if kind is tuple else list.__len__(value), what)
        items = [_copy(v, what, views, depth + 1, budget) for v in value]
        return tuple(items) if kind is tuple else items
    if kind is dict:
        _count(budget, dict.__len__(value), what)
        copied = {}
        for key, item in dict.items(value):
            if type(key) not in _SCALARS:  # checked before hashing: no model __eq__ runs
                raise TypeError(
                    f"{what}: dict keys must be str, int, float, bool or None, got {type_name(key)}"
                )
            copied[key] = _copy(item, what, views, depth + 1, budget)
        return copied
    if views and kind in _VIEWS:
        return corpus.rebuild_view(value)
    raise TypeError(
        f"{what} must be plain data (str, int, float, bool, None, or lists, tuples and dicts of "
        f"them{', or corpus views' if views else ''}), got {type_name(value)}"
    )


def _count(budget: _Budget, n: int, what: str) -> None:
    budget.items += n
    if budget.items > MAX_ITEMS:
        raise ValueError(f"{what}: more than {MAX_ITEMS:,} items")


def type_name(value: Any) -> str:
    """The name of `value`'s type, read without running any of its code."""
    kind = type(value)
    name = type.__dict__["__name__"].__get__(kind)  # the builtin getter: never model code
    if kind.__module__ == CELL_MODULE:
        return f"{name} (a class defined in the REPL)"
    return name


# -- refusing to pickle what a cell defines ------------------------------------------------------

CELL_MODULE = "rlm_ray.cell_defined"
"""The ``__module__`` of every class and function a cell defines (the sandbox's ``__name__``)."""


class _Refusing(types.ModuleType):
    """A module with no attributes: looking one up raises `TypeError`, not `AttributeError`.

    subtle: cloudpickle and pickle look a class or function up in its module to decide whether
    to pickle it by reference; `AttributeError` would make cloudpickle ship it by value instead,
    any other error stops the pickling.
    """

    def __getattr__(self, name: str) -> Any:
        raise TypeError(
            f"{name!r} was defined in the REPL: objects of classes and functions defined in the "
            "REPL cannot leave it (pass plain data: str, numbers, lists, dicts)"
        )


def refuse_pickling() -> None:
    """Register `CELL_MODULE` (idempotent); the sandbox calls it once per process."""
    if not isinstance(sys.modules.get(CELL_MODULE), _Refusing):
        sys.modules[CELL_MODULE] = _Refusing(CELL_MODULE, "Code defined in REPL cells.")
