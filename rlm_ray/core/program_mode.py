"""Program mode: a recorded run's cells in a REPL, instead of the turn loop. No Ray here.

`run_program` is to a replay what `loop.run_loop` is to a run: `call.run_call` gives it the
call's REPL (sandbox, sub-calls, limits as usual) and trace. It makes no root-model call: the
cells run in their recorded order, grouped by the turn they came from; a cell's FINAL ends the
program as it ended the run, `answer["ready"]` is checked after each turn as the loop does, and
after the last cell the program's `AnswerRule` takes the answer (a "value" rule by one more
cell, ``FINAL(expression)``, recorded with the last turn). The first cell that raises
stops the program with a `ProgramError` naming it: later cells build on what it should have made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Protocol

from rlm_ray.core.answer_rule import AnswerRule
from rlm_ray.core.turns import REPL, AnswerError
from rlm_ray.errors import ProgramError
from rlm_ray.types import CallTrace, CellTrace, IterationTrace


class Cell(Protocol):
    code: str
    turn: int


class Program(Protocol):
    """What program mode reads of a `rlm_ray.program.Program`: its cells and answer rule."""

    @property
    def cells(self) -> Sequence[Cell]: ...

    @property
    def answer(self) -> AnswerRule: ...


def run_program(
    program: Program, repl: REPL, trace: CallTrace, check_limits: Callable[[], None]
) -> str:
    """Run `program`'s cells in `repl` and return its answer, recording each recorded turn as an
    iteration of `trace` (with no model reply). Raises `ProgramError` on a failing cell or an
    answer that cannot be taken; limits raise as in a run."""
    if not program.answer.computed:
        raise ProgramError(program.answer.describe(), error="answer not computed by code")
    numbered = list(enumerate(program.cells))
    for turn, group in groupby(numbered, key=lambda item: item[1].turn):
        check_limits()
        # no model reply: `response` stays "" (and is never taken for a partial answer)
        iteration = IterationTrace(index=turn, response="", started_s=time.time(), replayed=True)
        trace.iterations.append(iteration)
        for index, cell in group:
            report = repl.run(cell.code)
            iteration.cells.append(report.trace)
            if report.trace.error is not None:
                raise _cell_error(index, cell.turn, report.trace)
            if report.final is not None:
                return _finish(trace, report.final, report.finished_by)
        ready = _read(repl.ready_answer)
        if ready is not None:
            return _finish(trace, ready, "answer")
    if program.answer.kind == "value":
        return _finish(trace, _value(program.answer, repl, trace), "value")
    return _finish(trace, _take_answer(program, repl), program.answer.kind)


def _value(rule: AnswerRule, repl: REPL, trace: CallTrace) -> str:
    """The value of the rule's expression after the last cell, taken by a cell of its own
    (`FINAL(expression)`: the sandbox, its clock, the trace), recorded with the last turn."""
    report = repl.run(f"FINAL({rule.expression})")
    if trace.iterations:
        trace.iterations[-1].cells.append(report.trace)
    if report.final is not None:
        return report.final
    error = report.trace.error or "no value"
    last = [line for line in error.strip().splitlines() if line.strip()]
    raise ProgramError(
        f"the answer is the value of `{rule.expression}` after the last cell (in the recorded "
        f"run the model typed {rule.literal!r} after reading it), which failed on this data: "
        f"{last[-1].strip() if last else error}",
        error=error,
    )


def _finish(trace: CallTrace, answer: str, how: str) -> str:
    trace.answer, trace.finished_by = answer, f"program:{how}"
    return answer


def _take_answer(program: Program, repl: REPL) -> str:
    rule = program.answer
    if rule.kind == "FINAL_VAR":
        value = _read(lambda: repl.lookup(rule.name))
        if value is None:
            raise ProgramError(
                f"the answer is the variable `{rule.name}` (FINAL_VAR in the recorded run), "
                "but no cell set it on this data",
                error=f"no variable {rule.name!r}",
            )
        return value
    what = (
        f"cell {rule.cell} called FINAL in the recorded run, but no cell did on this data"
        if rule.kind == "cell"
        else 'no cell set answer["ready"] = True on this data, as the recorded run did'
        if rule.kind == "answer"
        else f"no answer: {rule.describe()}"
    )
    raise ProgramError(f"the program ended without its answer: {what}", cell=rule.cell)


def _read(read: Callable[[], str | None]) -> str | None:
    try:
        return read()
    except AnswerError as exc:  # a failed sub-call, an unprintable value
        raise ProgramError(f"the answer could not be read: {exc}", error=str(exc)) from None


def _cell_error(index: int, turn: int, cell: CellTrace) -> ProgramError:
    error = cell.error or ""
    last = [line for line in error.strip().splitlines() if line.strip()]
    summary = last[-1].strip() if last else "error"
    return ProgramError(
        f"cell {index} (from recorded turn {turn + 1}) failed on this data: {summary}\n"
        f"--- code ---\n{cell.code}\n--- error ---\n{error}",
        cell=index,
        error=error,
    )
