"""Programs: a run's code as a reusable program (`result.program`), replayed on new data with
no root-model calls. No Ray here; the replay runs through `RLM.replay` like any call.

    program.py  `Program`, `ProgramCell`: built from a trace (`result.trace` or a trace file)
    replay.py   `replay`: a program run on new data (`RLM.replay`, `Program.run`)
    script.py   `program.save("p.py")`: the program as a standalone script

How the program takes its answer (`AnswerRule`) is `rlm_ray/core/answer_rule.py`, and program mode
(the cells in a REPL instead of the turn loop) is `rlm_ray/core/program_mode.py`: a worker's call
runs them, below this package.
"""

from __future__ import annotations

from rlm_ray.core.answer_rule import AnswerRule
from rlm_ray.program.program import Program, ProgramCell

__all__ = ["AnswerRule", "Program", "ProgramCell"]
