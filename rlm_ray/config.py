"""Limits and settings of a run: one frozen, keyword-only dataclass, validated before any Ray work.

`None` disables a limit where that makes sense (`max_time_s=None`: no deadline).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from rlm_ray.errors import ConfigError
from rlm_ray.limits.budget import Budget
from rlm_ray.limits.rate_limit import RateLimit
from rlm_ray.operators import approximate as approximation

CHUNK_BY = ("chars", "tokens", "documents")
TOKEN_CHARS = 4
"""Characters per token, the estimate behind `chunk_by="tokens"`."""


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

    max_answer_chars: int = 10_000_000
    """Longest answer a call may return, checked in the REPL's process before it is sent on
    and again by the driver: a longer FINAL is refused and the model told in its cell; a
    longer answer with no turn left (or a longer partial answer) ends the run with
    `LimitExceededError`. A child's answer counts too: it is sent to its parent."""

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

    max_sub_calls: int | None = None
    """`llm_query`, `recursive_llm` and tool calls of the whole call tree (every depth); the next
    one is refused and the run stops with `LimitExceededError`."""

    max_total_tokens: int | None = None
    """Input + output tokens of every model call of the tree. Each call's estimated input is
    reserved before it is sent; outputs of calls already in flight may pass the limit."""

    max_cost_usd: float | None = None
    """Cost of the tree in USD (litellm's prices; unpriced models cost 0). Checked before each
    model call; calls already in flight may pass it."""

    requests_per_minute: int | None = None
    """Rate limit per model, shared by the whole cluster (every run of this driver): model calls
    wait instead of meeting the provider's 429s. `None`: no limit."""

    tokens_per_minute: int | None = None
    """Token rate limit per model (estimated input before a call, corrected after). `None`: none."""

    rate_limits: Mapping[str, Mapping[str, int | None]] | None = None
    """Per-model overrides, e.g. ``{"openai/gpt-4o": {"requests_per_minute": 500}}``."""

    cache_dir: str | None = None
    """Directory of the model-call cache (`call_cache.py`), shared by every process of a node;
    `None`: no cache. `RLM` makes it absolute and checks that it can hold the cache."""

    local_server_slots: int = 1
    """`model="local"`: requests one node's model server runs at once (each with 16k tokens of
    context). 1 keeps temperature-0 runs deterministic; more batch a fan-out's sub-calls."""

    local_server_threads: int = 2
    """`model="local"`: CPU threads of each node's model server."""

    chunk_by: str = "chars"
    """How a corpus (a pyarrow.Table or a path given as `context`) is cut into the chunks put in
    the object store: "chars", "tokens" (estimated: 4 characters each) or "documents"."""

    chunk_size: int = 200_000
    """Characters, tokens or documents per chunk (see `chunk_by`)."""

    chunk_locality: bool = True
    """A sub-call whose prompt holds corpus slices is rendered by a gateway on the node that
    holds their chunks, when that gateway has room; False: round robin over the gateways."""

    approximate: Any = None
    """Whether `llm_filter`, `llm_classify` and `llm_count` (and `rlm_ray.ops`) may answer by a
    cascade when a call gives no targets of its own (docs/cascades.md): False, exact (every
    record asked); True, `approximate.DEFAULT`'s targets (recall and precision 0.9, accuracy
    0.9, counts within 2 % of the records, at confidence 0.95) over enough records; a dict of
    targets (keys `recall`, `precision`, `accuracy`, `error`, `confidence`, `min_records`,
    and `embedding_model`: the proxy also learns from the records' embeddings by that model);
    None, by sub-model (`approximate.by_model`: exact, also for the local models)."""

    def __post_init__(self) -> None:
        check_chunking(self.chunk_by, self.chunk_size)
        if not isinstance(self.chunk_locality, bool):
            raise ConfigError(
                f"`chunk_locality` must be True or False, got {self.chunk_locality!r}"
            )
        _check_int(self, "max_depth", minimum=0)
        _check_int(self, "max_iterations", minimum=1)
        _check_int(self, "max_concurrent_calls", minimum=1)
        _check_int(self, "max_output_chars", minimum=200)
        _check_int(self, "max_answer_chars", minimum=100)
        _check_int(self, "max_retries", minimum=0)
        _check_int(self, "max_repl_restarts", minimum=0)
        _check_int(self, "max_repl_actors_per_node", minimum=1)
        _check_int(self, "num_gateways", minimum=1)
        _check_int(self, "local_server_slots", minimum=1)
        _check_int(self, "local_server_threads", minimum=1)
        _check_int(self, "repl_memory_mb", minimum=64, optional=True)
        _check_int(self, "context_window_tokens", minimum=1024, optional=True)
        _check_int(self, "max_sub_calls", minimum=0, optional=True)
        _check_int(self, "max_total_tokens", minimum=1, optional=True)
        _check_int(self, "requests_per_minute", minimum=1, optional=True)
        _check_int(self, "tokens_per_minute", minimum=1, optional=True)
        _check_rate_limits(self.rate_limits)
        _check_positive(self, "max_cost_usd", "an amount in USD")
        _check_seconds(self, "max_time_s")
        if self.cache_dir is not None and not isinstance(self.cache_dir, str):
            raise ConfigError(f"`cache_dir` must be a directory path (str), got {self.cache_dir!r}")
        _check_seconds(self, "cell_timeout_s")
        object.__setattr__(self, "approximate", approximation.setting(self.approximate))
        _check_seconds(self, "request_timeout_s", optional=False)
        if self.max_depth > self.max_repl_actors_per_node:
            raise ConfigError(
                f"`max_depth` ({self.max_depth}) needs at least one REPL slot per depth: "
                f"raise `max_repl_actors_per_node` (now {self.max_repl_actors_per_node})"
            )

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def budget(self) -> Budget:
        return Budget(self.max_sub_calls, self.max_total_tokens, self.max_cost_usd)

    def rate_limit(self) -> RateLimit:
        return RateLimit(self.requests_per_minute, self.tokens_per_minute)

    def rate_limit_overrides(self) -> dict[str, RateLimit]:
        return {model: RateLimit(**limit) for model, limit in (self.rate_limits or {}).items()}


def check_chunking(chunk_by: object, chunk_size: object) -> None:
    if chunk_by not in CHUNK_BY:
        raise ConfigError(f"`chunk_by` must be one of {list(CHUNK_BY)}, got {chunk_by!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"`chunk_size` must be a positive integer, got {chunk_size!r}")
    if chunk_by != "documents" and chunk_size < 1000:
        raise ConfigError(
            f"`chunk_size` of {chunk_size!r} {chunk_by} makes tiny chunks; use at least 1000"
        )


def _check_int(cfg: RLMConfig, name: str, *, minimum: int, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"`{name}` must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"`{name}` must be >= {minimum}, got {value!r}")


def _check_rate_limits(limits: Any) -> None:
    if limits is None:
        return
    if not isinstance(limits, Mapping):
        raise ConfigError(f"`rate_limits` must map model names to limits, got {limits!r}")
    keys = {"requests_per_minute", "tokens_per_minute"}
    for model, limit in limits.items():
        if not isinstance(limit, Mapping) or not set(limit) <= keys:
            raise ConfigError(
                f"`rate_limits[{model!r}]` must be a dict with keys {sorted(keys)}, got {limit!r}"
            )
        try:
            RLMConfig(**limit)  # the same checks as the run-wide defaults
        except ConfigError as exc:
            raise ConfigError(f"`rate_limits[{model!r}]`: {exc}") from None


def _check_seconds(cfg: RLMConfig, name: str, *, optional: bool = True) -> None:
    _check_positive(cfg, name, "a number of seconds", optional=optional)


def _check_positive(cfg: RLMConfig, name: str, what: str, *, optional: bool = True) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"`{name}` must be {what}, got {value!r}")
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
    prompt: str | None = None
    """The prompt variant's name (`prompts.PROMPTS`); `None` picks one by model."""
    allowed_models: tuple[str, ...] = ()
    """Further models the REPL's `model=` arguments may name (`RLM(models=[...])`); `model`
    and `sub_model` always may, any other model string is refused (see `allowed`)."""
    local_servers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Models rlm-ray serves itself in this run: name -> {node id: api_base} (set per run)."""

    def allowed(self) -> tuple[str, ...]:
        """Every model this run may call: `model`, `sub_model`, then `allowed_models`.

        subtle: litellm takes a provider's key from its environment variable for any model
        string it is handed (`groq/...` reads GROQ_API_KEY) and sends it to `api_base`; only
        the models the user configured may therefore be called, never one model code names."""
        return tuple(dict.fromkeys((self.model, self.sub_model, *self.allowed_models)))
