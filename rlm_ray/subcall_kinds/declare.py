"""What one sub-call kind declares, and how a REPL binds it.

A kind is a model-facing function that makes sub-calls (`llm_query`, `recursive_llm`, the
record operators, ...). Its `SubCallKind` says everything the rest of the runtime needs:

    name      the function's name in the REPL; the sandbox plans fan-out around calls of it
    call      the function itself, `call(repl, *args, **kwargs)`: the REPL it is bound to first
    shown     what the system prompt's list of functions says of it (its signature as the model
              sees it, and what it does), in the numbered `item` it belongs to
    sends     the `subcalls.Backend` methods its work goes through (how it is sent)
    traced    the `SubCallTrace.kind`s its sub-calls record (how it is traced)
    replay    what a replay of its cell does (a program's `run`, a rebuilt session REPL)

No Ray, no RestrictedPython here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rlm_ray.core.subcalls import SubCalls

SENDS = {
    "start_llm": "model calls through the run's gateways (call cache, budgets, rate limits)",
    "start_rlm": "child RLM calls admitted by the pool (a plain model call at the depth limit)",
    "train_proxy": "a cascade's proxy, trained where the backend runs work (a Ray task)",
    "score_proxy": "a cascade's proxy scoring every record, in parallel (Ray tasks)",
    "embed": "a cascade's records embedded for its proxy, in batches on the run's gateways",
}
"""The backend methods a kind may send through, and what each one is."""

AGAIN = "again"
"""A replay calls it again: its model calls are answered from the call cache when the run has
`cache_dir` (nothing spent twice), else made again; a session REPL being rebuilt re-runs its
cell only with the cache on. A cascade draws the same samples (fixed seed), so with the same
answers it decides the same records."""


@dataclass(frozen=True)
class PromptItem:
    """One numbered item of the paper prompt's list of REPL functions: `lead`, what each of its
    kinds says (joined "A, B and C"), then `tail`."""

    lead: str = ""
    tail: str = ""


@dataclass(frozen=True)
class SubCallKind:
    """One model-facing function that makes sub-calls (see the module docstring)."""

    name: str
    call: Callable[..., Any]
    item: PromptItem
    shown: str
    """What the prompt says of it within its item; "" when another kind's text names it."""
    sends: tuple[str, ...]
    traced: tuple[str, ...]
    replay: str = AGAIN

    def __post_init__(self) -> None:
        unknown = set(self.sends) - set(SENDS)
        if unknown:
            raise ValueError(f"{self.name}: unknown backend methods {sorted(unknown)}")


class KindSettings(Protocol):
    """What a kind reads of its REPL's settings (`repl.REPLSettings`)."""

    @property
    def can_recurse(self) -> bool: ...
    @property
    def sub_context_window_tokens(self) -> int: ...
    @property
    def allowed_models(self) -> tuple[str, ...]: ...
    @property
    def model_windows(self) -> Mapping[str, int]: ...
    @property
    def approximate(self) -> Any: ...


class Host(Protocol):
    """The REPL a kind is bound to (`repl.REPLSession`)."""

    subcalls: SubCalls

    @property
    def settings(self) -> KindSettings: ...

    def show(self, line: str) -> None:
        """Print `line` in the running cell's output (a warning, a cascade's summary)."""


def bind(kind: SubCallKind, host: Host) -> Callable[..., Any]:
    """`kind.call` with `host` bound first, named as the model calls it.

    subtle: a closure, not `functools.partial`, whose `.func` / `.args` model code could read
    (they have no leading underscore) and so reach the REPL itself."""

    def function(*args: Any, **kwargs: Any) -> Any:
        return kind.call(host, *args, **kwargs)

    function.__name__ = function.__qualname__ = kind.name
    function.__doc__ = kind.call.__doc__
    parameters = list(inspect.signature(kind.call).parameters.values())[1:]
    function.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return function


def join_shown(texts: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    if len(texts) < 2:
        return "".join(texts)
    return ", ".join(texts[:-1]) + " and " + texts[-1]
