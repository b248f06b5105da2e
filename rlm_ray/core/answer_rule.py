"""How a program takes its answer: decided once from the recorded run, applied after a replay.

Pure, no Ray. A recorded run ended in one of these ways, and its program answers the same way on
new data, always with a value the code computed, never with text found in printed output:

    kind        the recorded run                         a replay
    "cell"      a cell called FINAL(x) / FINAL_VAR(n)    the same cell's FINAL (any cell's, first)
    "answer"    code set answer = {..., "ready": True}   the same `answer` dict
    "FINAL_VAR" the reply said FINAL_VAR(name)           str() of `name` after the last cell
    "value"     the reply said FINAL(literal), and the   str() of `expression` after the last
                literal is the value of `expression`     cell, e.g. counts['QUESTION'] (found by
                after the run (`answer_source.py`)       `answer_source` while the REPL lived)
    "none"      the model typed an answer no code's      nothing: `run` raises ProgramError,
                value is (or ran out of turns)           never the old literal as a new answer

subtle: a "value" rule's `expression` is code a replay evaluates, so it must be pure
(`answer_source.is_pure`: no sub-call, tool, assignment or mutation); one that is not (a
hand-edited saved script, a crafted trace file) is refused when the rule is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_ray.core.answer_source import MAX_SOURCE_CHARS, is_pure

KINDS = ("cell", "answer", "FINAL_VAR", "value", "none")


@dataclass(frozen=True)
class AnswerRule:
    """How a `Program` takes its answer (see the module docstring for each `kind`)."""

    kind: str
    cell: int | None = None
    """"cell": the cell whose FINAL ended the recorded run; "value": the latest cell whose
    output showed the literal (indexes into `program.cells`; for people: the replay reads
    `expression`, not that output)."""
    name: str = ""
    """"FINAL_VAR": the variable read."""
    expression: str = ""
    """"value": the pure expression whose value, after the last cell, is the answer."""
    literal: str | None = None
    """"value" and "none": the answer the root model typed in the recorded run."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            gone = " (the 'output' rule, a pattern over printed text, is gone)"
            raise ValueError(
                f"AnswerRule.kind must be one of {KINDS}, got {self.kind!r}"
                + (gone if self.kind == "output" else "")
            )
        if self.kind == "value" and not (
            isinstance(self.expression, str)
            and len(self.expression) <= MAX_SOURCE_CHARS
            and is_pure(self.expression)
        ):
            raise ValueError(
                "a 'value' AnswerRule needs a pure expression (names, subscripts, arithmetic "
                f"and functions that change nothing), got {str(self.expression)[:200]!r}"
            )

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
        typed = (self.literal or "")[:200]
        if self.kind == "value":
            shown = "" if self.cell is None else f" (shown by cell {self.cell})"
            return (
                f"the value of `{self.expression}` after the last cell: in the recorded run the "
                f"model typed FINAL({typed}) after reading that value{shown}"
            )
        return (
            "NOT computed by code: in the recorded run the root model typed the answer "
            f"{typed!r} itself, and no value of the run's code is that answer; this program "
            "cannot answer"
        )
