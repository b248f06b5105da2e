"""What a call is given and reports: its spec (`CallSpec.root` / `.child`, the only builders),
what a lost REPL's replacement resumes from (`Checkpoint`, `Restart`), where it runs
(`Whereabouts`) and the backend that makes its own model turns (`CallBackend`). No Ray."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from rlm_ray.config import ModelSettings, RLMConfig
from rlm_ray.core.loop import Resume
from rlm_ray.core.subcalls import Backend
from rlm_ray.core.turns import Messages
from rlm_ray.tools import ToolSettings
from rlm_ray.types import IterationTrace, LLMReply, Usage


@dataclass
class CallSpec:
    """Everything an RLM call needs. `context_ref` stays a handle (nested refs are not fetched)."""

    run_id: str
    call_id: str
    depth: int
    query: str
    model: str
    models: ModelSettings
    config: RLMConfig
    context_window_tokens: int  # of this call's model
    sub_context_window_tokens: int  # of the sub-model (llm_query, children)
    deadline: float | None = None
    context_ref: Any = None
    context_value: Any = None
    admission: Any = None  # the driver's Admission actor, when the run has a budget or rate limit
    program: Any = None  # a `program.Program` to replay instead of the turn loop (root only)
    tools: ToolSettings | None = None  # the run's tools and who may let `write` ones run
    # the context window of each model the run may call (`ModelSettings.allowed`), in tokens
    model_windows: dict[str, int] = dataclasses.field(default_factory=dict)

    def window_of(self, model: str | None) -> int:
        """The context window of `model` (None: the sub-model), in tokens."""
        if model is None:
            return self.sub_context_window_tokens
        return self.model_windows.get(model, self.sub_context_window_tokens)

    @classmethod
    def root(
        cls,
        query: str,
        *,
        models: ModelSettings,
        config: RLMConfig,
        windows: tuple[int, int],
        context_ref: Any = None,
        context_value: Any = None,
        tools: ToolSettings | None = None,
        model_windows: dict[str, int] | None = None,
    ) -> CallSpec:
        """The spec of a run's root call: a new run id, the deadline from `max_time_s` counted
        from now, `windows` = (root model's, sub-model's) context windows in tokens,
        `model_windows` = the window of each model the run may call. The context goes as a
        handle (`context_ref`) or, for a corpus view or no context, as `context_value`."""
        run_id = new_run_id()
        deadline = None if config.max_time_s is None else time.time() + config.max_time_s
        return cls(
            run_id=run_id,
            call_id=run_id,
            depth=0,
            query=query,
            model=models.model,
            models=models,
            config=config,
            context_window_tokens=windows[0],
            sub_context_window_tokens=windows[1],
            deadline=deadline,
            context_ref=context_ref,
            context_value=context_value,
            tools=tools,
            model_windows=dict(model_windows or {}),
        )

    def child(self, number: int, query: str, model: str | None) -> CallSpec:
        """The spec of this call's `number`th child RLM (`recursive_llm`): one level deeper,
        its model's window, the same run, deadline, admission and tools; no context yet (the
        backend decides how it travels)."""
        return CallSpec(
            run_id=self.run_id,
            call_id=f"{self.call_id}.{number}",
            depth=self.depth + 1,
            query=query,
            model=model or self.models.sub_model,
            models=self.models,
            config=self.config,
            context_window_tokens=self.window_of(model),
            sub_context_window_tokens=self.sub_context_window_tokens,
            deadline=self.deadline,
            admission=self.admission,
            tools=self.tools,
            model_windows=self.model_windows,
        )


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Checkpoint:
    """A call's state after a model reply: enough to go on in a new REPL if this one is lost."""

    messages: Messages
    index: int  # turn index of the last reply in `messages`
    iterations: list[IterationTrace]
    usage: Usage


@dataclass
class Restart:
    """What a replacement REPL worker gets: where to resume and what was already spent."""

    count: int  # how many REPLs this call has lost so far
    started_s: float
    resume: Resume | None  # None: lost before the first reply, start over
    iterations: list[IterationTrace]
    usage: Usage


class CallBackend(Backend, Protocol):
    """A `subcalls.Backend` that also makes the call's own model turns."""

    def root_llm(
        self, messages: list, stop: tuple[str, ...] = (), overrides: dict | None = None
    ) -> LLMReply:
        """A turn of this call's own model; `stop`: the prompt's stop sequences; `overrides`:
        model keywords for this turn only (a resampled turn's temperature)."""


@dataclass(frozen=True)
class Whereabouts:
    """Where a call runs, for its trace (the Ray worker fills it in; in-process: the pid)."""

    node_id: str = ""
    actor_id: str = ""
    pid: int = dataclasses.field(default_factory=os.getpid)
    worker_id: str = ""
