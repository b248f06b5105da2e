"""Usage counted from the call tree itself, so the run's summary always equals its trace.

The live progress counters are kept by the gateways and the pool (`progress.py`); a gateway
lost with its node takes its counts with it, and a gateway counts a call whose REPL died before
the reply arrived, which the trace never sees. The trace comes back with the result whatever
happened on the way (a call whose REPL is lost goes on from its checkpoint, trace and usage
together), so the run's last progress snapshot is rebuilt from it (`final_progress`).

    model calls at depth d   the turns of every RLM call at depth d (a plain call: one; a
                             replay's recorded turns: none, they ask no model), and
                             the leaf sub-calls (`llm_query`, ...) made by calls at depth d - 1
    tokens and cost          the root's totals: `result.usage`, which `trace_usage` re-adds
                             from the tree's turns and leaf sub-calls

Standard library only (and `rlm_ray.types`, `rlm_ray.progress`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from rlm_ray.progress import DepthProgress, Progress
from rlm_ray.types import CallTrace, IterationTrace, ModelUsage, SubCallTrace, Usage


def leaf_subcalls(call: CallTrace) -> Iterator[SubCallTrace]:
    """The sub-calls of `call` that were model calls (not child RLM calls): `llm` ones and a
    cascade's embedding calls (`embed`)."""
    for iteration in call.iterations:
        for cell in iteration.cells:
            for sub in cell.subcalls:
                if sub.child is None and sub.kind in ("llm", "embed"):
                    yield sub


def model_turns(call: CallTrace) -> list[IterationTrace]:
    """The turns of `call` that asked its model (a replay's recorded turns asked none)."""
    return [iteration for iteration in call.iterations if not iteration.replayed]


def trace_usage(root: CallTrace) -> Usage:
    """Calls, tokens and cost summed over every model call the tree records: each call's turns
    and its leaf sub-calls (a failed sub-call made no call that answered: not counted)."""
    usage = Usage()
    for call in root.walk():
        if call.finished_by == "plain" and not call.iterations:  # one call, no REPL
            tokens = call.total_input_tokens, call.total_output_tokens
            usage.add(_one(call.model, *tokens, call.total_cost_usd))
        for iteration in model_turns(call):
            usage.add(
                _one(
                    call.model, iteration.input_tokens, iteration.output_tokens, iteration.cost_usd
                )
            )
        for sub in leaf_subcalls(call):
            if sub.error is None:
                usage.add(_one(sub.model, sub.input_tokens, sub.output_tokens, sub.cost_usd))
    return usage


def _one(model: str, input_tokens: int, output_tokens: int, cost: float) -> Usage:
    one = ModelUsage(1, input_tokens, output_tokens, cost)
    return Usage(1, input_tokens, output_tokens, cost, {model: one})


def final_progress(
    run_id: str, elapsed_s: float, root: CallTrace, counted: Progress | None = None
) -> Progress:
    """The run's last snapshot, from its trace: model calls and RLM calls per depth, failed
    leaf calls, tokens and cost as the trace has them. `counted` (the merged live counters)
    gives only what the trace does not record: how many calls the cache answered."""
    rlm_done: Counter[int] = Counter()
    done: Counter[int] = Counter()
    failed = 0
    for call in root.walk():
        rlm_done[call.depth] += 1
        done[call.depth] += len(model_turns(call)) or int(call.finished_by == "plain")
        for sub in leaf_subcalls(call):
            done[call.depth + 1] += 1
            failed += sub.error is not None
    depths = tuple(
        DepthProgress(depth=d, rlm_done=rlm_done[d], done=done[d])
        for d in sorted(set(rlm_done) | set(done))
    )
    calls = sum(done.values())
    cached = min(counted.cached_calls, calls) if counted is not None else 0
    return Progress(
        run_id=run_id,
        elapsed_s=elapsed_s,
        depths=depths,
        calls=calls,
        cached_calls=cached,
        failed_calls=failed,
        input_tokens=root.total_input_tokens,
        output_tokens=root.total_output_tokens,
        cost_usd=root.total_cost_usd,
        finished=True,
    )
