"""Exceptions raised by rlm-ray.

    RLMError                      base of everything rlm-ray raises
    ├── ConfigError               a usage mistake, raised before any Ray work starts
    │                             (bad limit, empty or binary context, unknown model)
    ├── LLMError                  a model call failed after its retries
    │   │                         (.model, .api_base, .status_code, .attempts, .kind)
    │   └── ContextWindowError    the conversation cannot fit the model's context window
    ├── SandboxError              the REPL machinery failed (dead actor, killed process);
    │                             model mistakes are not errors: they go back to the model
    ├── SubCallError              a sub-call made from model code failed; raised *inside*
    │                             the REPL where model code can catch it
    ├── LimitExceededError        a run limit stopped the call tree
    │                             (.limit, .value, .partial_answer)
    ├── ProgramError              a replayed program (`result.program.run`) failed on its
    │                             data: a cell raised, or its answer could not be taken
    │                             (.cell: index in `program.cells` or None, .error)
    └── LocalServerError          rlm-ray's own model server (`model="local"`) did not start

Every `RLMError` has `.trace`: for an error that ended a run, the call tree up to the failure
(a `CallTrace`, like `Result.trace`) when the root call returned one, else ``None``.

Model mistakes (a `NameError` in model code, a syntax error, a runaway cell) are data: they are
fed back to the model as text and the run goes on. Only machinery failures and limits raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_ray.types import CallTrace


class RLMError(Exception):
    """Base class of every error rlm-ray raises."""

    trace: CallTrace | None = None
    """What a failed run did up to its error: the root call's tree, set on the error that
    `RLM.completion` raises when the root call returned one; otherwise ``None`` (a `ConfigError`
    raised before the run, a deadline that cut the root call off, an error inside model code)."""


class ConfigError(RLMError, ValueError):
    """A usage mistake found before any work was dispatched."""


class LLMError(RLMError):
    """A model call failed after its retries were used up."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        api_base: str | None = None,
        status_code: int | None = None,
        attempts: int = 1,
        kind: str = "",
    ) -> None:
        super().__init__(message)
        self.model = model
        self.api_base = api_base
        self.status_code = status_code
        self.attempts = attempts
        self.kind = kind  # what failed, in words ("rate limited (HTTP 429)", "timed out", ...)

    def __reduce__(self):  # keep the keyword fields across Ray's pickling
        fields = (self.model, self.api_base, self.status_code, self.attempts, self.kind)
        return (_rebuild_llm_error, (type(self), str(self), *fields))


def _rebuild_llm_error(cls, message, model, api_base, status_code, attempts, kind=""):
    return cls(
        message,
        model=model,
        api_base=api_base,
        status_code=status_code,
        attempts=attempts,
        kind=kind,
    )


class ContextWindowError(LLMError):
    """Even with old REPL outputs trimmed, the conversation does not fit the model."""


class SandboxError(RLMError):
    """The REPL machinery failed: an actor died or a cell had to be killed hard."""


class SubCallError(RLMError):
    """A sub-call (`llm_query`, `recursive_llm`, ...) failed; raised inside model code."""


class LimitExceededError(RLMError):
    """A limit of the run stopped the call tree.

    `limit` names the limit (for example ``"max_time_s"``), `value` is its configured value, and
    `partial_answer` is the best answer available when the run was stopped (may be ``None``).
    """

    def __init__(self, limit: str, value: object, partial_answer: str | None = None) -> None:
        super().__init__(f"run stopped: limit `{limit}` ({value!r}) was reached")
        self.limit = limit
        self.value = value
        self.partial_answer = partial_answer

    def __reduce__(self):
        return (type(self), (self.limit, self.value, self.partial_answer))


class ProgramError(RLMError):
    """A replayed program failed: cell `cell` (an index into `program.cells`) raised `error` on
    the new data, or (`cell` None, or the cell the answer is read from) its answer could not be
    taken. The run stops at the first failing cell: later cells build on it."""

    def __init__(self, message: str, *, cell: int | None = None, error: str = "") -> None:
        super().__init__(message)
        self.cell = cell
        self.error = error

    def __reduce__(self):
        return (_rebuild_program_error, (type(self), str(self), self.cell, self.error))


def _rebuild_program_error(cls, message, cell, error):
    return cls(message, cell=cell, error=error)


class LocalServerError(RLMError):
    """rlm-ray's own llama.cpp server for `model="local"` / `"local-small"` (see
    `rlm_ray.local.local_model`) exited at start or did not answer its health check in time.

    Once a server is up, a model call that fails on it is an `LLMError` like any other."""
