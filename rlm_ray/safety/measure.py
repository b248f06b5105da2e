"""Bounded measures of values a model may have made: how long their text is, how it begins.

Host code describes values the model chose — a child's context (`recursive_llm(q, ctx)`), the
items of its first turn's preview — outside any cell's clock. ``len(str(item))`` there costs
what the model made it cost: ``[['x' * 10**6] * 100] * 9800`` is a 1 MB string shared 980,000
times, a few MB to hold and ship, and 98 GB to print. So nothing here prints a value whole:

* `text_length` adds up the lengths of a value's parts instead (the length of its ``str()``,
  give or take the escapes of nested strings), visiting at most `Budget.nodes` parts;
* `text_head` writes the start of a value's ``str()``, stopping after `chars` characters.

Both cost at most a fixed amount of work, whatever plain data (str, numbers, lists, tuples,
dicts, corpus views) the value holds. No Ray here.
"""

from __future__ import annotations

from typing import Any

MAX_NODES = 1_000_000
"""Parts (items, keys, values, at every level) one `Budget` lets `text_length` visit."""

# _OTHER: a value of any other class is printed as it is. Only a caller's own context holds
# one: what a model hands on (a child's context) is plain data and corpus views
# (`sandbox.boundary.plain`), so this runs the caller's code, never the model's.


class Budget:
    """Parts left to visit, shared by the measures of one description (e.g. a context's items)."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: int = MAX_NODES) -> None:
        self.nodes = nodes

    def spend(self, n: int = 1) -> bool:
        """Take `n` parts; False once the budget is spent."""
        self.nodes -= n
        return self.nodes >= 0


def text_length(value: Any, budget: Budget | None = None) -> int | None:
    """About ``len(str(value))`` — exact for a str, counted from the parts of lists, tuples and
    dicts — or None when `budget` ran out before the value was measured. Of plain data it calls
    no method but ``len`` (of a str, or of a corpus view: its character count, read without its
    text) and ``repr`` of numbers."""
    budget = budget if budget is not None else Budget()
    if type(value) is str:
        return len(value) if budget.spend() else None
    return _length(value, budget, nested=False)


def _length(value: Any, budget: Budget, nested: bool) -> int | None:
    if not budget.spend():
        return None
    kind = type(value)
    if kind is str:
        return len(value) + 2 if nested else len(value)  # quotes of a nested str's repr
    if kind is list or kind is tuple or kind is dict:
        return _container_length(value, budget)
    if kind in (int, float, bool) or value is None:
        return _scalar_length(value)
    if hasattr(kind, "corpus_shape"):  # a corpus view: its length is known without reading it
        return len(value)
    return len(repr(value) if nested else str(value))  # see `_OTHER`


def _container_length(value: Any, budget: Budget) -> int | None:
    count = len(value)  # of an exact list, tuple or dict: no model code runs
    if count > budget.nodes:
        return None
    total = 2 + 2 * max(0, count - 1)  # brackets and ", " separators
    if type(value) is tuple and count == 1:
        total += 1  # "(x,)"
    parts = dict.items(value) if type(value) is dict else value
    for part in parts:
        sizes = (
            (_length(part[0], budget, True), _length(part[1], budget, True))
            if type(value) is dict
            else (_length(part, budget, True), -2)  # no ": " between key and value
        )
        if sizes[0] is None or sizes[1] is None:
            return None
        total += sizes[0] + 2 + sizes[1]
    return total


def _scalar_length(value: Any) -> int:
    try:
        return len(repr(value))
    except ValueError:  # an int past the interpreter's digit limit for str()
        return int(value.bit_length() * 0.302) + 2


def _scalar_text(value: Any) -> str:
    try:
        return repr(value)
    except ValueError:  # an int past the interpreter's digit limit for str()
        return f"<an int of {_scalar_length(value):,} digits>"


def text_head(value: Any, chars: int) -> str:
    """The first `chars` characters of ``str(value)`` (for nested strings, of their repr),
    written without writing the rest."""
    out: list[str] = []
    _write(value, chars, out, nested=False)
    return "".join(out)[:chars]


def _write(value: Any, chars: int, out: list[str], nested: bool) -> int:
    """Append the start of `value`'s text to `out`; returns how many characters are left."""
    if chars <= 0:
        return 0
    kind = type(value)
    if kind is str:
        text = repr(value[: chars + 1])[: chars + 1] if nested else value[:chars]
    elif kind is list or kind is tuple or kind is dict:
        return _write_container(value, chars, out)
    elif kind in (int, float, bool) or value is None:
        text = _scalar_text(value)
    elif hasattr(kind, "corpus_shape"):
        text = f"<corpus view, {len(value):,} chars>"
    else:
        text = (repr(value) if nested else str(value))[:chars]  # see `_OTHER`
    out.append(text[:chars])
    return chars - min(len(text), chars)


def _write_container(value: Any, chars: int, out: list[str]) -> int:
    is_dict = type(value) is dict
    opening, closing = ("{", "}") if is_dict else ("(", ")") if type(value) is tuple else ("[", "]")
    out.append(opening)
    chars -= 1
    items = iter(dict.items(value)) if is_dict else iter(value)
    for index, item in enumerate(items):
        if chars <= 0:
            return 0
        if index:
            out.append(", ")
            chars -= 2
        if is_dict:
            chars = _write(item[0], chars, out, nested=True)
            out.append(": ")
            chars = _write(item[1], chars - 2, out, nested=True)
        else:
            chars = _write(item, chars, out, nested=True)
    if type(value) is tuple and len(value) == 1:
        out.append(",")
        chars -= 1
    out.append(closing)
    return chars - 1
