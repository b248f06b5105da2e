"""Programs: a run's code as a reusable program (`result.program`), replayed on new data with
no root-model calls. No Ray here; the replay runs through `RLM.replay` like any call.

    program.py  `Program`, `ProgramCell`: built from a trace (`result.trace` or a trace file)
    answer.py   `AnswerRule`: how the program takes its answer (FINAL in a cell, FINAL_VAR, a
                literal the model typed traced back to the output it came from, or none)
    cells.py    `run_program`: program mode, the cells in a REPL instead of the turn loop
    script.py   `program.save("p.py")`: the program as a standalone script
"""

from __future__ import annotations

from typing import Any

from rlm_ray.program.answer import AnswerRule
from rlm_ray.program.program import Program, ProgramCell


def script_main(
    program: Program, *, context: Any = None, api_base: str | None = None, argv: Any = None
) -> int:
    """What a saved script runs: `rlm-ray replay`'s options, the program instead of a trace."""
    from rlm_ray.cli import program_main

    return program_main(program, context=context, api_base=api_base, argv=argv)


__all__ = ["AnswerRule", "Program", "ProgramCell", "script_main"]
