"""A program's replay (`RLM.replay`, `Program.run`): the checks before any Ray work, then the
run on the driver's `runtime.run.Launcher`. No Ray here.

A replay runs as an ordinary root call (pool, REPL worker, sandbox, limits, budgets, trace,
usage) whose `CallSpec.program` is set: `call.run_call` then runs the program's cells
(`program_mode.run_program`) instead of the turn loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlm_ray.errors import ConfigError, ProgramError
from rlm_ray.front.inputs import check_context
from rlm_ray.types import Result

if TYPE_CHECKING:
    from rlm_ray.config import RLMConfig
    from rlm_ray.runtime import Launcher


async def replay(
    launcher: Launcher, program: Any, context: Any, *, allow_effects: bool, owner: Any = None
) -> Result:
    """Run `program` (an `rlm_ray.Program`) on `context` with `launcher`'s settings; its
    `Result.program` is the program bound to `owner` (the `RLM` that replayed it, if any)."""
    program = check_replay(launcher.settings.config, program, allow_effects)
    context = check_context(context)
    result, timings = await launcher.complete(
        program.query, context, program=program, allow_effects=allow_effects
    )
    bound = program.bound(owner)
    return Result(result.answer, result.usage, result.trace, timings, program=bound)


def check_replay(config: RLMConfig, program: Any, allow_effects: bool) -> Any:
    """Refuse what cannot replay, as `ConfigError` (or `ProgramError` for a program whose
    answer no code computes), before anything starts. (`RLM.replay` has checked that it is an
    `rlm_ray.Program`; `Program.run` passes itself.)"""
    if not isinstance(allow_effects, bool):
        raise ConfigError(f"`allow_effects` must be True or False, got {allow_effects!r}")
    if not program.answer.computed:
        raise ProgramError(program.answer.describe(), error="answer not computed by code")
    if config.max_depth < 1:
        raise ConfigError("a program runs in a REPL: `max_depth` must be >= 1 to replay it")
    return program
