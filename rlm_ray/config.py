"""Limits and settings of a run: one frozen, keyword-only dataclass, validated before any Ray work.

`None` disables a limit where that makes sense (`max_time_s=None`: no deadline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from rlm_ray.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class RLMConfig:
    max_depth: int = 1
    """Depth of REPLs: the root is depth 0; a call at depth d gives `recursive_llm` a child REPL
    when d + 1 < max_depth, else it is one plain model call. 1 = only the root has a REPL (the
    paper's setting); 0 = no REPL at all, the root is one plain model call over query + context."""

    max_iterations: int = 20
    """Model turns per RLM call; after the last one, one more call asks for the final answer."""

    max_concurrent_calls: int = 256
    """Sub-calls of one run in flight at once (the rest queue in the gateways)."""

    max_time_s: float | None = None
    """Wall-clock deadline of the whole call tree, in seconds. Waiting on sub-calls counts here."""

    cell_timeout_s: float | None = 60.0
    """Execution time of one code block, not counting time spent waiting on sub-calls."""

    repl_memory_mb: int | None = 2048
    """Extra memory a REPL process may allocate (RLIMIT_DATA above its start-up size)."""

    max_output_chars: int = 10_000
    """REPL output shown to the model per block; longer output keeps its head and tail."""

    max_retries: int = 4
    """Retries of one model call on 429, 5xx, timeouts and dropped connections."""

    request_timeout_s: float = 120.0
    """Timeout of one model request (one attempt)."""

    context_window_tokens: int | None = None
    """The root model's context window; `None` asks litellm's model map (32k if unknown)."""

    max_repl_actors_per_node: int = 8
    """Live REPL processes per Ray node; calls beyond wait for a free one (admission control)."""

    max_repl_restarts: int = 2
    """Times one call may lose its REPL process (killed, or its node lost) and go on in a new one,
    its model told that its variables are gone; one more loss raises `SandboxError`."""

    num_gateways: int = 2
    """Async model-gateway actors per node; each keeps hundreds of model calls in flight. Two
    per node let litellm's per-call CPU cost use two cores (benchmarks/fanout.py)."""

    def __post_init__(self) -> None:
        _check_int(self, "max_depth", minimum=0)
        _check_int(self, "max_iterations", minimum=1)
        _check_int(self, "max_concurrent_calls", minimum=1)
        _check_int(self, "max_output_chars", minimum=200)
        _check_int(self, "max_retries", minimum=0)
        _check_int(self, "max_repl_restarts", minimum=0)
        _check_int(self, "max_repl_actors_per_node", minimum=1)
        _check_int(self, "num_gateways", minimum=1)
        _check_int(self, "repl_memory_mb", minimum=64, optional=True)
        _check_int(self, "context_window_tokens", minimum=1024, optional=True)
        _check_seconds(self, "max_time_s")
        _check_seconds(self, "cell_timeout_s")
        _check_seconds(self, "request_timeout_s", optional=False)
        if self.max_depth > self.max_repl_actors_per_node:
            raise ConfigError(
                f"`max_depth` ({self.max_depth}) needs at least one REPL slot per depth: "
                f"raise `max_repl_actors_per_node` (now {self.max_repl_actors_per_node})"
            )

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _check_int(cfg: RLMConfig, name: str, *, minimum: int, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"`{name}` must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"`{name}` must be >= {minimum}, got {value!r}")


def _check_seconds(cfg: RLMConfig, name: str, *, optional: bool = True) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"`{name}` must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"`{name}` must be > 0, got {value!r}")


@dataclass
class ModelSettings:
    """Which models a run uses and how litellm reaches them. `api_key` never appears in a repr."""

    model: str
    sub_model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    # kwargs may hold headers (Authorization): kept out of reprs like the key
    llm_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    sub_llm_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
