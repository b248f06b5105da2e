"""Model-made text made harmless for a terminal: what the CLI prints of answers, code, outputs,
prompts and errors.

A terminal acts on control characters: ESC starts sequences that write the clipboard (OSC 52),
set the window title (OSC 0), clear the screen or hide text (conceal); the 8-bit C1 codes
(CSI, OSC) do the same on some terminals; CR and BS overwrite what was printed; bidirectional
overrides reorder it. `printable` writes each of them as a visible escape (``\\x1b``) and keeps
newlines and tabs; `json_text` keeps JSON exact (the escapes are JSON's own, so a parser reads
back the very same text). Pure functions, linear in the text.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls but tab and newline, DEL, C1 controls, bidirectional embeddings, overrides and
# isolates, and lone surrogates (which cannot be written to a UTF-8 stream at all).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def printable(text: str) -> str:
    """`text` with every character a terminal would act on written as an escape."""
    return _UNSAFE.sub(_escaped, text)


def json_text(value: Any) -> str:
    """`value` as one line of JSON, exact, with no character a terminal would act on: those
    `json.dumps` leaves raw (DEL, C1, bidirectional controls, lone surrogates) become
    ``\\uXXXX`` escapes too. subtle: such characters can only stand inside JSON strings, where
    an escape means the same character."""
    return _UNSAFE.sub(_json_escaped, json.dumps(value, ensure_ascii=False))
