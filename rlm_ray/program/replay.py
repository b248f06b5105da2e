"""The driver's checks and settings for a replay (`RLM.replay`), before any Ray work. No Ray.

A replay runs as an ordinary root call (pool, REPL worker, sandbox, limits, budgets, trace,
usage) whose `CallSpec.program` is set: `call.run_call` then runs the program's cells
(`cells.run_program`) instead of the turn loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlm_ray.config import ModelSettings
from rlm_ray.errors import ConfigError, ProgramError
from rlm_ray.program.program import Program

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


def replay_models(models: ModelSettings, allow_effects: bool) -> ModelSettings:
    """The model settings of a replay's root call.

    TOOLS (issue 11, part 2), to wire after merging: a replay must not inherit the recorded
    run's permission for `write` tools. This is the one place to do it: return `models` (or the
    spec's tool settings) with the RLM's tools kept as they are and its `allow_effects` /
    `approve` replaced by this replay's `allow_effects` (and no `approve` callback), so a
    replayed `write` tool call is refused unless `program.run(..., allow_effects=True)` /
    `rlm-ray replay --allow-effects` allows it again. Refused, it fails its cell, and the
    replay stops with a `ProgramError` naming that cell.
    """
    del allow_effects  # no tools on this branch yet: nothing to refuse
    return models
