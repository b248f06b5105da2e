"""The loop's guard against a model stuck on one error: code that fails with an error already
seen in this call gets a plain notice naming the values it uses, instead of the same error once
more (small models otherwise spend every remaining turn on it). No Ray, no model."""

from __future__ import annotations

import ast
import re

from rlm_ray.core.turns import REPL, AnswerError
from rlm_ray.prompting import prompts
from rlm_ray.types import CellTrace


class StuckGuard:
    """Notices code that fails with an error already seen in this call (the same code resubmitted,
    or a variant that trips on the same thing): small models otherwise spend every remaining turn
    on it. The notice says so plainly and names the type of the values the code uses."""

    _MAX_VALUES = 6

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}  # error line -> the code blocks that raised it

    def notice(self, cells: list[CellTrace], repl: REPL) -> tuple[str, bool]:
        """What to add to the turn's output, and whether the model is stuck (repeating an
        error): a repeat gets the STUCK notice; a first type error on `context` its type."""
        for cell in cells:
            if cell.error is None:
                continue
            error, source = _error_line(cell.error), cell.code.strip()
            codes = self._seen.setdefault(error, set())
            repeated, same_code = bool(codes), source in codes
            codes.add(source)
            if repeated:
                stuck = prompts.STUCK.format(
                    what="The same code" if same_code else "Your code",
                    error=error,
                    values=self._values(source, repl),
                )
                return "\n\n" + stuck, True
            if error.startswith(_TYPE_ERRORS) and re.search(r"\bcontext\b", source):
                # a first type error on the input: name its type at once (a 1.5B model that
                # called `context.splitlines()` on a list wrote two records of its own next)
                kind = repl.describe("context")
                return ("", False) if kind is None else (f"\n\n(`context` is a {kind}.)", False)
        return "", False

    def _values(self, source: str, repl: REPL) -> str:
        described = []
        for name in ["context", *_names(source)]:
            kind = repl.describe(name)
            if kind is not None and kind not in ("function", "module", "class"):
                described.append(f"`{name}` is a {kind}" + self._start(name, repl))
            if len(described) == self._MAX_VALUES:
                break
        if not described:
            return ""
        return "The values involved: " + "; ".join(described) + ". "

    _SHOWN_CHARS = 80

    def _start(self, name: str, repl: REPL) -> str:
        """The start of a variable's value (not the context's): a small model that takes a list
        of labels for a dict sees what the list holds."""
        if name == "context":
            return ""
        try:
            text = repl.lookup(name)
        except AnswerError:
            return ""
        if not text:
            return ""
        more = "..." if len(text) > self._SHOWN_CHARS else ""
        return f", starting {text[: self._SHOWN_CHARS]}{more}"


_TYPE_ERRORS = ("AttributeError", "TypeError")


def _error_line(error: str) -> str:
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else error


def _names(source: str) -> list[str]:
    """The names a block uses, in order of first use (a regex if it does not parse)."""
    try:
        nodes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)]
        found = [n.id for n in sorted(nodes, key=lambda n: (n.lineno, n.col_offset))]
    except SyntaxError:
        found = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source)
    return list(dict.fromkeys(n for n in found if n != "context"))
