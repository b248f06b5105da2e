"""Reading a model reply: its code blocks and a final answer written in the text. Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(r"```(?:repl|python|py)[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_ANY_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_FINAL_VAR = re.compile(
    r"^[ \t]*FINAL_VAR\(\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\1\s*\)", re.MULTILINE
)
_FINAL = re.compile(r"^[ \t]*FINAL\(", re.MULTILINE)
_QUOTES = ('"""', "'''", '"', "'")


def code_blocks(reply: str) -> list[str]:
    """The ```repl / ```python blocks of a reply, in order (an unclosed last block counts)."""
    return [m.group(1).rstrip() for m in _BLOCK.finditer(reply) if m.group(1).strip()]


@dataclass(frozen=True)
class TextFinal:
    kind: str  # "FINAL" (value is the literal answer) or "FINAL_VAR" (value is a variable name)
    value: str


def text_final(reply: str) -> TextFinal | None:
    """A FINAL(...) or FINAL_VAR(...) at the start of a line of the reply, outside code blocks.

    For FINAL the answer ends at the ")" closing its line; an answer spanning lines runs to the
    last ")" of the reply. Surrounding quotes are stripped.
    """
    prose = _ANY_FENCE.sub("", reply)
    var = _FINAL_VAR.search(prose)
    lit = _FINAL.search(prose)
    if var and (not lit or var.start() <= lit.start()):
        return TextFinal("FINAL_VAR", var.group(2))
    if lit:
        rest = prose[lit.end() :]
        line = rest.split("\n", 1)[0].rstrip()
        if line.endswith(")"):  # the usual one-line FINAL(...): prose after it is not answer
            body = line[:-1]
        else:
            close = rest.rfind(")")
            body = rest[:close] if close >= 0 else rest
        return TextFinal("FINAL", _strip_quotes(body.strip()))
    return None


def _strip_quotes(text: str) -> str:
    for quote in _QUOTES:
        if len(text) >= 2 * len(quote) and text.startswith(quote) and text.endswith(quote):
            return text[len(quote) : -len(quote)].strip()
    return text


def truncate(text: str, limit: int) -> str:
    """Keep the head and tail of `text` within about `limit` characters, saying what was cut."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n... [{cut} characters truncated] ...\n{text[-tail:]}"
