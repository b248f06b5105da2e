"""The driver's checks and settings for a replay (`RLM.replay`), before any Ray work. No Ray.

A replay runs as an ordinary root call (pool, REPL worker, sandbox, limits, budgets, trace,
usage) whose `CallSpec.program` is set: `call.run_call` then runs the program's cells
(`cells.run_program`) instead of the turn loop.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from rlm_ray.errors import ConfigError, ProgramError
from rlm_ray.program.program import Program
from rlm_ray.tools import ToolSettings

if TYPE_CHECKING:
    from rlm_ray.rlm import RLM


def check_replay(rlm: RLM, program: Program, allow_effects: bool) -> Program:
    """Refuse what cannot replay, as `ConfigError` (or `ProgramError` for a program whose
    answer no code computes), before anything starts."""
    if not isinstance(program, Program):
        raise ConfigError(
            f"`program` must be an rlm_ray.Program (result.program), got {type(program).__name__}"
        )
    if not isinstance(allow_effects, bool):
        raise ConfigError(f"`allow_effects` must be True or False, got {allow_effects!r}")
    if not program.answer.computed:
        raise ProgramError(program.answer.describe(), error="answer not computed by code")
    if rlm.config.max_depth < 1:
        raise ConfigError("a program runs in a REPL: `max_depth` must be >= 1 to replay it")
    return program


def replay_tools(tools: ToolSettings | None, allow_effects: bool) -> ToolSettings | None:
    """The tool settings of a replay's root call: the RLM's tools as they are, but a replay
    never inherits a permission for `write` tools. Only this replay's `allow_effects` (from
    `program.run(..., allow_effects=True)` / `rlm-ray replay --allow-effects`) lets them run;
    the RLM's `approve` callback is not asked. A refused `write` call fails its cell, and the
    replay stops with a `ProgramError` naming that cell (`tools.authorize` is the gate)."""
    if tools is None:
        return None
    return dataclasses.replace(tools, allow_effects=allow_effects, ask=False)
