"""How a program takes its answer: decided once from the recorded run, applied after a replay.

Pure functions, no Ray. A recorded run ended in one of these ways, and its program answers the
same way on new data:

    kind        the recorded run                         a replay
    "cell"      a cell called FINAL(x) / FINAL_VAR(n)    the same cell's FINAL (any cell's, first)
    "answer"    code set answer = {..., "ready": True}   the same `answer` dict
    "FINAL_VAR" the reply said FINAL_VAR(name)           str() of `name` after the last cell
    "output"    the reply said FINAL(literal), and the   the same place in that cell's new output
                literal was printed by cell `cell`       (`pattern`, or the whole output)
    "none"      the model typed an answer code never     nothing: `run` raises ProgramError,
                printed (or ran out of turns)            never the old literal as a new answer

The "output" rule (subtle): a literal typed after reading output cannot be copied into a replay.
The latest kept cell whose output holds the literal as a whole token is its source. If that
output was the literal alone, the replay's answer is the cell's new output (one line). Else the
line is made a pattern: up to 40 characters of text before the literal (from a word start) and
the characters up to the next space after it, with digit runs generalized to ``\\d+`` and the
literal itself a capture group of its own kind (digits, a number, or any text). Exactly one
distinct match in the new output is the answer; none, or several, is a `ProgramError`.

Both searches read text a model made (a trace file may be crafted), outside any clock, so each
is bounded by construction: the literal is found with `str.find` (`whole_token`), and the
pattern reads each line of the new output up to its first 4,000 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rlm_ray.errors import ProgramError

KINDS = ("cell", "answer", "FINAL_VAR", "output", "none")
_PREFIX_CHARS = 40
_SUFFIX_CHARS = 10
_MAX_LINE_CHARS = 4_000  # of each line of a replayed output that `from_output` reads


@dataclass(frozen=True)
class AnswerRule:
    """How a `Program` takes its answer (see the module docstring for each `kind`)."""

    kind: str
    cell: int | None = None
    """"cell": the cell whose FINAL ended the recorded run; "output": the cell whose output
    held the literal (indexes into `program.cells`)."""
    name: str = ""
    """"FINAL_VAR": the variable read."""
    pattern: str | None = None
    """"output": the regex whose group 1 is the answer (None: the cell's whole output)."""
    literal: str | None = None
    """"output" and "none": the answer the root model typed in the recorded run."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"AnswerRule.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def computed(self) -> bool:
        """Whether code computes the answer (False: the root model typed it)."""
        return self.kind != "none"

    def describe(self) -> str:
        """The rule in one sentence, for people (the saved script, `rlm-ray replay`)."""
        if self.kind == "cell":
            return f"the FINAL(...) / FINAL_VAR(...) that cell {self.cell} calls"
        if self.kind == "answer":
            return 'the `answer` dict, once code sets answer["ready"] = True'
        if self.kind == "FINAL_VAR":
            return f"the variable `{self.name}` after the last cell"
        if self.kind == "output":
            where = "its whole output" if self.pattern is None else f"group 1 of `{self.pattern}`"
            return (
                f"read from cell {self.cell}'s output ({where}): in the recorded run the model "
                f"typed FINAL({self.literal}) after reading that output"
            )
        typed = (self.literal or "")[:200]
        return (
            "NOT computed by code: in the recorded run the root model typed the answer "
            f"{typed!r} itself, and no cell printed it; this program cannot answer"
        )


def literal_rule(literal: str, outputs: Sequence[tuple[int, str]]) -> AnswerRule:
    """The rule for a literal the model typed: "output" from the latest cell of `outputs`
    ((cell index, recorded output), in order) that printed it, else "none"."""
    value = literal.strip()
    if not value:
        return AnswerRule("none", literal=literal)
    for cell, output in reversed(outputs):
        if output.strip() == value:
            return AnswerRule("output", cell=cell, literal=value)
        for line in output.splitlines():
            start = whole_token(line, value)
            if start is not None:
                pattern = _template(line, start, start + len(value), value)
                return AnswerRule("output", cell=cell, pattern=pattern, literal=value)
    return AnswerRule("none", literal=value)


_WORD = re.compile(r"\w")


def whole_token(line: str, value: str) -> int | None:
    r"""Where `value` first stands in `line` with no word character just before or after it
    (the regex ``(?<!\w)VALUE(?!\w)``), or None.

    subtle: linear by construction. The regex tries the whole value at every position (a
    trace file's 1 MB output line and 1 MB literal: 167 s); `str.find` is linear, and the
    occurrences tried after the first are cut off once they cost twice the line."""
    start, spent = line.find(value), 0
    while start >= 0 and spent <= 2 * len(line):
        end = start + len(value)
        before = start > 0 and _WORD.match(line, start - 1) is not None
        after = end < len(line) and _WORD.match(line, end) is not None
        if not (before or after):
            return start
        spent += len(value)
        start = line.find(value, start + 1)
    return None


def _template(line: str, start: int, end: int, value: str) -> str:
    before = line[max(0, start - _PREFIX_CHARS) : start]
    if start > _PREFIX_CHARS and " " in before:  # begin at a word, not inside one
        before = before[before.index(" ") + 1 :]
    after = re.match(r"\S*", line[end:])
    tail = after.group(0)[:_SUFFIX_CHARS] if after else ""
    head = "^" if start == 0 else ""
    end_anchor = "[ \t]*$" if end == len(line) else ""
    return (
        head
        + _general(before)
        + f"({_kind(value, bool(tail or end_anchor))})"
        + _general(tail)
        + end_anchor
    )


def _kind(value: str, bounded: bool) -> str:
    if re.fullmatch(r"\d+", value):
        return r"\d+"
    if re.fullmatch(r"-?\d+(?:\.\d+)?", value):
        return r"-?\d+(?:\.\d+)?"
    return ".+?" if bounded else r"\S+"


def _general(text: str) -> str:
    """`text` as a regex: digit runs match any digits, blank runs any blanks, the rest as is."""
    parts = re.split(r"(\d+|\s+)", text)
    return "".join(
        r"\d+" if part.isdigit() else r"\s+" if part.isspace() else re.escape(part)
        for part in parts
        if part
    )


def from_output(rule: AnswerRule, output: str) -> str:
    """The answer of an "output" rule in a replayed cell's `output`; `ProgramError` if it is
    not there, or not once."""
    where = f"cell {rule.cell}"
    if rule.pattern is None:
        lines = [line for line in output.strip().splitlines() if line.strip()]
        if len(lines) != 1:
            raise ProgramError(
                f"the answer is read from {where}'s output, which printed the answer alone in "
                f"the recorded run, but printed {len(lines)} lines on this data: "
                f"{output.strip()[:300]!r}",
                cell=rule.cell,
                error="answer not found",
            )
        return lines[0].strip()
    # subtle: a lazy group before a tail (``(.+?)x``) is tried from every position of a line
    # that lacks the tail; lines are cut to `_MAX_LINE_CHARS`, so the search stays bounded
    capped = "\n".join(line[:_MAX_LINE_CHARS] for line in output.split("\n"))
    matches = re.finditer(rule.pattern, capped, re.M)
    found = list(dict.fromkeys(m.group(1) for m in matches))
    if len(found) != 1:
        what = "no match" if not found else f"{len(found)} different matches {found[:5]!r}"
        raise ProgramError(
            f"the answer is read from {where}'s output with {rule.pattern!r} (in the recorded "
            f"run the model typed {rule.literal!r} after reading it), but this output has "
            f"{what}: {output.strip()[:300]!r}",
            cell=rule.cell,
            error="answer not found",
        )
    return found[0]
