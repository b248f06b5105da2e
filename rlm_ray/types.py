"""The values that cross process boundaries: model replies, usage, the call-tree trace, results.

Plain dataclasses (picklable by Ray, JSON-able through `to_dict`), no behaviour beyond merging.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelUsage:
    """Usage of one model."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached_calls: int = 0

    def add(self, other: ModelUsage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.cached_calls += other.cached_calls


@dataclass
class Usage:
    """Model usage of a whole call tree: every root turn, leaf call and child RLM below it.

    `calls` counts every model call, `cached_calls` those the call cache answered: their tokens
    are counted as stored, their cost is 0 (no new spend), so `calls - cached_calls` reached the
    provider."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, ModelUsage] = field(default_factory=dict)
    cached_calls: int = 0
    tool_calls: int = 0
    """Tool calls that ran (returned or raised); refused ones are not counted (rlm_ray/tools.py)."""
    proxy_decided: int = 0
    """Records the record operators' cascades answered by their proxy, without a model call
    (docs/cascades.md); the records the sub-model answered are among `calls`."""

    def add(self, other: Usage) -> None:
        self.tool_calls += other.tool_calls
        self.proxy_decided += other.proxy_decided
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.cached_calls += other.cached_calls
        for model, usage in other.by_model.items():
            self.by_model.setdefault(model, ModelUsage()).add(usage)

    def add_reply(self, reply: LLMReply) -> None:
        cached = int(reply.cached)
        one = ModelUsage(1, reply.input_tokens, reply.output_tokens, reply.cost_usd, cached)
        self.add(
            Usage(1, one.input_tokens, one.output_tokens, one.cost_usd, {reply.model: one}, cached)
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LLMReply:
    """One model call's answer, as the gateway returns it."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    attempts: int = 1
    cached: bool = False  # answered by the call cache (cost 0, attempts 0)
    # The time the model server says it worked on the call (llama.cpp's `timings`): the rest
    # of `ended_s - started_s` it waited in the server's queue. None: the server did not say.
    server_s: float | None = None
    # Where and when the gateway ran the call (set by `runtime.LLMGateway`; 0/"" elsewhere).
    started_s: float = 0.0
    ended_s: float = 0.0
    node_id: str = ""
    actor_id: str = ""
    pid: int = 0
    # A prompt with corpus slices: whether the node that rendered it held all their chunks, and
    # the bytes of those it did not (moved to it to render); None / 0 for a prompt without.
    chunks_local: bool | None = None
    chunk_bytes_pulled: int = 0


@dataclass
class SubCallTrace:
    """One sub-call made from model code: a plain model call, a child RLM or a tool call."""

    # "llm" (llm_query, or recursive_llm at the depth limit), "rlm", "tool", or "embed" (one
    # batch of a cascade's records embedded for its proxy: docs/cascades.md)
    kind: str
    model: str
    prompt_preview: str
    started_s: float = 0.0  # when the code made the call
    duration_s: float = 0.0  # until it finished where it ran (else until the code got its outcome)
    run_started_s: float = 0.0  # when the gateway (or the child's REPL) began it; 0 if unknown
    # The time the model server says it worked on it (llama.cpp's `timings`; None: not said):
    # it ran from end - server_s on, and waited in the server's queue before.
    server_s: float | None = None
    node_id: str = ""  # the node, actor and process that served it ("" / 0 if unknown)
    actor_id: str = ""
    pid: int = 0
    # A model call whose prompt held corpus slices (rendered to text on `node_id`): whether
    # that node held all their chunks, and the bytes of those moved to it (None / 0 otherwise).
    chunks_local: bool | None = None
    chunk_bytes_pulled: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    child: CallTrace | None = None
    # What the code got back: a model call's answer or a child's (cut to 200 characters), or a
    # tool's result as JSON (cut to 1,000); "" if the sub-call failed.
    result_preview: str = ""
    # A tool call (kind "tool"; "" otherwise): its name, declared effects, the arguments, and
    # how it was let run ("none", "read", "allow_effects", "approved"; "" if refused or not run).
    tool: str = ""
    effects: str = ""
    arguments: str = ""
    decision: str = ""
    # A tool call of a session's question: (its `tools.ToolCall`, its `tools.ToolResult`) in
    # full, so that a rebuilt REPL answers the call from this record instead of running the tool
    # again (`session_repl`). None elsewhere; never written to trace files.
    # subtle: a tuple, so that `redact.redact_tree` leaves what the code really got as it was.
    tool_record: tuple[Any, Any] | None = None


@dataclass
class CascadeTrace:
    """A record operator asked for an approximate answer (docs/cascades.md): what its cascade
    did, or why the sub-model (the oracle) answered every record instead."""

    operator: str  # "llm_filter", "llm_classify", "llm_count" (or "ops.filter", ...)
    records: int  # distinct records the operator was over
    oracle_calls: dict[
        str, int
    ]  # records the oracle answered per stage: train, validate, band, exact
    proxy_decided: int  # records the proxy answered alone
    confidence: float
    agreement: float | None  # the proxy's agreement with the oracle (validation estimate)
    thresholds: dict[str, float | None]  # reject_below / accept_from (None: none)
    targets: list[dict[str, float | str | None]]  # name, target, estimate, guaranteed
    reason: str  # why every record went to the oracle ("" when the cascade ran)
    summary: str  # the one line the model's cell showed
    count: list[float] | None = None  # llm_count: [estimate, low, high]


@dataclass
class CellTrace:
    """One code block of a reply, as executed."""

    code: str
    output: str  # what the model was shown for this block (already truncated)
    error: str | None = None
    timed_out: bool = False
    started_s: float = 0.0
    duration_s: float = 0.0
    subcalls: list[SubCallTrace] = field(default_factory=list)
    final: bool = False  # the block ended the call with FINAL/FINAL_VAR (what a program replays)
    cascades: list[CascadeTrace] = field(default_factory=list)  # approximate operators it ran


@dataclass
class IterationTrace:
    """One turn of an RLM call: the model's reply and the cells it ran."""

    index: int
    response: str
    started_s: float = 0.0
    llm_duration_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cells: list[CellTrace] = field(default_factory=list)
    replayed: bool = False
    """A program's recorded turn (a replay): its cells ran again, no model was asked."""


@dataclass
class CallTrace:
    """One RLM call (the root, or a `recursive_llm` child) and everything it did."""

    call_id: str
    depth: int
    model: str
    query: str
    started_s: float = 0.0  # wall-clock (time.time()) when the call started
    duration_s: float = 0.0
    node_id: str = ""
    worker_id: str = ""
    actor_id: str = ""  # the REPL worker actor that ran the call
    pid: int = 0
    context_id: str = ""  # object-store id of the context this call read ("" if sent inline)
    repl_restarts: int = 0  # REPL processes this call lost and went on without (see REPLPool)
    iterations: list[IterationTrace] = field(default_factory=list)
    answer: str | None = None
    finished_by: str = ""  # "FINAL", "FINAL_VAR", "answer", "max_iterations"
    answer_code: str | None = None
    """An answer the model typed (``FINAL(13)`` in its reply), traced to the code whose value
    it is after the last cell, e.g. ``counts['QUESTION']`` (`answer_source.py`); what a
    program of the call evaluates. None: not typed, or not traced."""
    error: str | None = None
    # Model use of this call and everything below it (its `CallResult.usage`).
    total_calls: int = 0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    total_cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def walk(self):
        """Yield this call and every child call below it, depth first."""
        yield self
        for iteration in self.iterations:
            for cell in iteration.cells:
                for sub in cell.subcalls:
                    if sub.child is not None:
                        yield from sub.child.walk()


@dataclass
class CallResult:
    """What one RLM call returns to its caller (across Ray).

    A call that failed returns its `error` rather than raising it, so the usage it spent and
    the trace of what it did still reach its parent."""

    answer: str
    usage: Usage
    trace: CallTrace
    error: BaseException | None = None


@dataclass
class Result:
    """The answer of `RLM.completion`, with the usage and trace of the whole call tree."""

    answer: str
    usage: Usage
    trace: CallTrace
    timings: dict[str, float] = field(default_factory=dict)
    program: Any = field(default=None, compare=False, repr=False)
    """The root call's code as a reusable `rlm_ray.Program` (see rlm_ray/program/)."""

    def __str__(self) -> str:
        return self.answer
