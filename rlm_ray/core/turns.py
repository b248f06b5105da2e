"""What the turn loop (loop.py) asks of the parts it drives: the REPL that runs a turn's blocks,
the plan turns' planner, and what a block's run reports. No Ray, no model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rlm_ray.types import CellTrace

Messages = list[dict[str, str]]


class AnswerError(Exception):
    """The REPL could not turn the final value into text; the model is told and goes on."""


@dataclass
class CellReport:
    """A block as run by the REPL: its trace, and the answer if the block ended the run."""

    trace: CellTrace
    final: str | None = None
    finished_by: str = ""


class Planner(Protocol):
    """The plan turns of a call (rlm_ray/plans/planner.py): a turn under a JSON schema whose
    reply is a plan that the runtime compiles into the turn's cell, until the model chooses
    code."""

    active: bool
    """False once the turns are free code (the model chose code, or plans ran out)."""

    def response_format(self) -> dict | None:
        """The next turn's `response_format`, or None once the turns are free code."""

    def form_call(self) -> tuple[list[dict[str, str]], dict] | None:
        """The form turn's messages and `response_format`, the first time (None after)."""

    def choose(self, reply: str, turn: str) -> str:
        """The plan turn's message `turn` with what the form turn's `reply` chose."""

    def examples(self, few_shot: Messages) -> Messages:
        """The worked examples the plan turn needs of `few_shot` (the chosen shape's)."""

    def read(self, reply: str) -> tuple[str | None, str]:
        """The cell a plan reply compiles to (None: none to run) and what to tell the model."""

    def ran(self, failed: bool) -> None:
        """The plan's cell ran and did not end the call (`failed`: it raised)."""

    def next_turn(self, feedback: str) -> str:
        """The user message after a plan turn that did not end the call."""


class REPL(Protocol):
    def run(self, code: str) -> CellReport: ...

    def lookup(self, name: str) -> str | None:
        """`str()` of a REPL variable (futures resolved), or None if it is not defined.
        Raises `AnswerError` if the value cannot be computed."""

    def ready_answer(self) -> str | None:
        """The content of `answer` if the code set ``answer["ready"] = True`` (or `AnswerError`)."""

    def describe(self, name: str) -> str | None:
        """What the REPL variable `name` holds, e.g. "list (60 items) of str"; None if unset."""
