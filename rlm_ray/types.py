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

    def add(self, other: ModelUsage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd


@dataclass
class Usage:
    """Model usage of a whole call tree: every root turn, leaf call and child RLM below it."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, ModelUsage] = field(default_factory=dict)

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        for model, usage in other.by_model.items():
            self.by_model.setdefault(model, ModelUsage()).add(usage)

    def add_reply(self, reply: LLMReply) -> None:
        one = ModelUsage(1, reply.input_tokens, reply.output_tokens, reply.cost_usd)
        self.add(Usage(1, one.input_tokens, one.output_tokens, one.cost_usd, {reply.model: one}))

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
    node_id: str = ""  # Ray node of the gateway that made the call


@dataclass
class SubCallTrace:
    """One sub-call made from model code: a plain model call or a child RLM."""

    kind: str  # "llm" (llm_query, or recursive_llm at the depth limit) or "rlm"
    model: str
    prompt_preview: str
    started_s: float = 0.0
    duration_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    node_id: str = ""  # where a plain model call ran (a child's node is in `child.node_id`)
    child: CallTrace | None = None


@dataclass
class CellTrace:
    """One code block of a reply, as executed."""

    code: str
    output: str  # what the model was shown for this block (already truncated)
    error: str | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    subcalls: list[SubCallTrace] = field(default_factory=list)


@dataclass
class IterationTrace:
    """One turn of an RLM call: the model's reply and the cells it ran."""

    index: int
    response: str
    started_s: float = 0.0
    llm_duration_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cells: list[CellTrace] = field(default_factory=list)


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
    context_id: str = ""  # object-store id of the context this call read ("" if sent inline)
    repl_restarts: int = 0  # REPL processes this call lost and went on without (see REPLPool)
    iterations: list[IterationTrace] = field(default_factory=list)
    answer: str | None = None
    finished_by: str = ""  # "FINAL", "FINAL_VAR", "answer", "max_iterations"
    error: str | None = None

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

    def __str__(self) -> str:
        return self.answer
