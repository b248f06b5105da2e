"""One RLM call, free of Ray: the REPL session, the turn loop, the error paths and the usage.

`run_call(spec, context, backend)` is what a REPL worker does for one call. The backend starts
the call's model turns and sub-calls somewhere (`runtime.RayBackend` on Ray; tests pass a
`testing.thread_backend.ThreadBackend`, which has a `root_llm`); the worker passes in where it runs (for the trace),
how to save a checkpoint after each model reply, and what a restarted call already did.

    run_call(spec, context, backend)
      depth >= max_depth          one plain model call over query and context, no REPL
      else REPLSession + run_loop the turn loop (loop.py) over the call's REPL (repl.py)
      spec.program                a replay: the program's cells instead (program_mode.py)
      an RLMError                 a CallResult carrying it (a limit gets the best partial answer)
      an answer (or partial one)  refused in this process if longer than `max_answer_chars`
        too long                  (`cap_answer`): it never crosses to the parent or the driver
      always                      sub-calls drained, usage and trace totals recorded
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

from rlm_ray import corpus
from rlm_ray.config import RLMConfig
from rlm_ray.core import answer_source
from rlm_ray.core.answer_check import plain_words
from rlm_ray.core.loop import LoopSettings, Messages, run_loop
from rlm_ray.core.program_mode import run_program
from rlm_ray.core.repl import REPLSession, REPLSettings
from rlm_ray.core.spec import CallBackend, CallSpec, Checkpoint, Restart, Whereabouts
from rlm_ray.core.subcalls import Backend
from rlm_ray.errors import LimitExceededError, RLMError
from rlm_ray.operators import approximate
from rlm_ray.plans.planner import Planner, PlanTexts
from rlm_ray.prompting import prompts
from rlm_ray.prompting.plain_prompt import context_text, plain_call_prompt
from rlm_ray.safety.redact import process_secrets
from rlm_ray.sandbox.kill_switch import KillSwitch
from rlm_ray.subcall_kinds import cascades
from rlm_ray.types import CallResult, CallTrace, LLMReply, Usage


def run_call(
    spec: CallSpec,
    context: Any,
    backend: CallBackend,
    *,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    restart: Restart | None = None,
    hard_kill: Callable[[], None] | None = None,
    kill_switch: KillSwitch | None = None,
    where: Whereabouts | None = None,
    context_id: str = "",
    started_s: float | None = None,
    repl: REPLSession | None = None,
    first_turn: str | None = None,
) -> CallResult:
    """Run one RLM call to its answer, or to a `CallResult` carrying the `RLMError` that ended
    it. Machinery failures (a dead gateway, an interrupted wait) raise. `started_s`: when the
    worker took the call (before it fetched the context), else now. A session's question
    passes its live `repl` (bound to `backend`; kept open afterwards) and its `first_turn`
    template (see `session_repl`)."""
    started = time.time() if started_s is None else started_s
    trace, usage = _start_trace(spec, where or Whereabouts(), context_id, restart, started)
    if spec.depth >= spec.config.max_depth:  # max_depth=0: no REPL, one plain model call
        return cap_answer(_plain_call(spec, context, backend, trace), spec.config)
    session = repl if repl is not None else new_repl(spec, context, backend, hard_kill, kill_switch)
    variant = prompts.choose(spec.model, spec.models.prompt)

    def save(messages: Messages, index: int) -> None:
        if checkpoint is not None:
            spent = Usage()
            spent.add(usage)
            spent.add(session.subcalls.usage)
            checkpoint(Checkpoint(list(messages), index, list(trace.iterations), spent))

    planner = _planner(spec, context, variant)
    settings = dataclasses.replace(
        _loop_settings(spec, context, variant, lambda: check_limits(spec, session), planner),
        checkpoint=save,
        resample_llm=_resampler(spec, backend, variant),
        planner=planner,
        plan_llm=None if planner is None else _plan_llm(backend),
    )
    if first_turn is not None:
        settings = dataclasses.replace(settings, first_turn=first_turn)
    resume = restart.resume if restart is not None else None
    try:
        if spec.program is not None:  # program mode: the recorded cells, no root-model call
            answer = run_program(spec.program, session, trace, settings.check_limits)
        else:
            answer = run_loop(
                lambda messages: backend.root_llm(messages, stop=variant.stop),
                session,
                settings,
                trace,
                usage,
                resume,
            )
            trace.answer_code = _answer_code(trace, session)
    except RLMError as exc:
        session.subcalls.cancel_open()  # nobody will use their results
        if isinstance(exc, LimitExceededError) and exc.partial_answer is None:
            exc.partial_answer = _best_partial(session, trace)
        trace.error = f"{type(exc).__name__}: {exc}"
        return cap_answer(CallResult("", usage, trace, error=exc), spec.config)
    except BaseException:
        session.subcalls.cancel_open()
        raise
    finally:
        session.subcalls.drain()  # usage and trace of every sub-call that ran
        usage.add(session.subcalls.usage)
        if repl is None:  # a session's REPL lives on for its next question
            session.close()
        trace.duration_s = time.time() - trace.started_s
        _record_usage(trace, usage)
    return cap_answer(CallResult(answer, usage, trace), spec.config)


def _answer_code(trace: CallTrace, session: REPLSession) -> str | None:
    """For an answer the model typed: the code that computes it (what a program replays)."""
    typed = answer_source.typed_answer(trace)
    if typed is None:
        return None
    return session.answer_code(typed, trace.query, answer_source.kept_cells(trace))


def cap_answer(result: CallResult, config: RLMConfig) -> CallResult:
    """`result`, with no answer or partial answer longer than `max_answer_chars`: a longer
    answer is replaced by the `LimitExceededError` (the model, told in its cell, had no turn
    left to shorten it), a longer partial answer is dropped. Called where the answer is made,
    so that it never crosses to another process, and by the driver on what it receives."""
    limit = config.max_answer_chars
    error = result.error
    if isinstance(error, LimitExceededError) and len(error.partial_answer or "") > limit:
        error.partial_answer = None
    if len(result.answer) <= limit:
        return result
    trace = result.trace
    trace.answer, error = None, LimitExceededError("max_answer_chars", limit)
    trace.error = f"{type(error).__name__}: {error}"
    return CallResult("", result.usage, trace, error=error)


RESAMPLE_TEMPERATURE = 0.7
PLAN_MAX_TOKENS = 600  # a plan is ~150 tokens of JSON; a model that rambles is cut here


def _planner(spec: CallSpec, context: Any, variant: prompts.PromptVariant) -> Planner | None:
    """The call's plan turns, when its prompt has them (`small`) and there is a context."""
    if not variant.plans or context is None:
        return None
    assert variant.plan_retry is not None and variant.plan_code is not None
    texts = PlanTexts(retry=variant.plan_retry, code=variant.plan_code, query=spec.query)
    return Planner(context, texts)


def _plan_llm(backend: CallBackend) -> Callable[[Messages, dict], LLMReply]:
    """The call's model asked under a JSON schema (`response_format`), without the prompt's
    stop sequences (they belong to code turns)."""

    def ask(messages: Messages, response_format: dict) -> LLMReply:
        overrides = {"response_format": response_format, "max_tokens": PLAN_MAX_TOKENS}
        return backend.root_llm(messages, stop=(), overrides=overrides)

    return ask


def _resampler(
    spec: CallSpec, backend: CallBackend, variant: prompts.PromptVariant
) -> Callable[[Messages], LLMReply] | None:
    """The call's model at `RESAMPLE_TEMPERATURE`, for the turn after a STUCK notice, when the
    call asks at temperature 0 (the local models' default); None otherwise: a model that
    samples already writes other code when asked again."""
    kwargs = spec.models.llm_kwargs if spec.depth == 0 else spec.models.sub_llm_kwargs
    if kwargs.get("temperature") != 0:
        return None
    hot = {"temperature": RESAMPLE_TEMPERATURE}
    return lambda messages: backend.root_llm(messages, stop=variant.stop, overrides=hot)


def _start_trace(
    spec: CallSpec, where: Whereabouts, context_id: str, restart: Restart | None, started: float
) -> tuple[CallTrace, Usage]:
    """The call's trace and usage; a restarted call keeps what its lost REPL had done."""
    trace = CallTrace(spec.call_id, spec.depth, spec.model, spec.query, started_s=started)
    trace.node_id, trace.actor_id, trace.pid = where.node_id, where.actor_id, where.pid
    trace.worker_id, trace.context_id = where.worker_id, context_id
    usage = Usage()
    if restart is not None:
        trace.iterations, trace.repl_restarts = list(restart.iterations), restart.count
        trace.started_s = restart.started_s
        usage.add(restart.usage)
    return trace, usage


def new_repl(
    spec: CallSpec,
    context: Any,
    backend: Backend,
    hard_kill: Callable[[], None] | None,
    kill_switch: KillSwitch | None,
) -> REPLSession:
    cfg, m = spec.config, spec.models
    settings = REPLSettings(
        can_recurse=spec.depth + 1 < cfg.max_depth,
        cell_timeout_s=cfg.cell_timeout_s,
        max_output_chars=cfg.max_output_chars,
        max_workers=cfg.max_concurrent_calls,
        hard_kill=hard_kill,
        kill_switch=kill_switch,
        sub_context_window_tokens=spec.sub_context_window_tokens,
        tools=spec.tools.specs if spec.tools is not None else (),
        allowed_models=spec.models.allowed(),
        model_windows=dict(spec.model_windows),
        secrets=tuple(process_secrets(m.api_key, m.llm_kwargs, m.sub_llm_kwargs)),
        approximate=approximate.by_model(cfg.approximate, m.sub_model),
    )
    return REPLSession(context, backend, default_model=spec.models.sub_model, settings=settings)


def _plain_call(spec: CallSpec, context: Any, backend: CallBackend, trace: CallTrace) -> CallResult:
    """A call without a REPL: one model call over query and context (e.g. `max_depth=0`)."""
    prompt: Any = (  # a corpus is read by the gateway, not here
        [plain_call_prompt(spec.query, ""), context]
        if isinstance(context, corpus.Corpus)
        else plain_call_prompt(spec.query, context)
    )
    reply = backend.root_llm([{"role": "user", "content": prompt}])
    usage = Usage()
    usage.add_reply(reply)
    trace.answer, trace.finished_by = reply.text, "plain"
    trace.duration_s = time.time() - trace.started_s
    _record_usage(trace, usage)
    return CallResult(reply.text, usage, trace)


def _record_usage(trace: CallTrace, usage: Usage) -> None:
    trace.total_calls, trace.total_cost_usd = usage.calls, usage.cost_usd
    trace.total_input_tokens, trace.total_output_tokens = usage.input_tokens, usage.output_tokens


def _best_partial(session: REPLSession, trace: CallTrace) -> str | None:
    """A stopped call's best answer: the model's `answer["content"]` if it set one as text
    (read inside a cell's clock, see `REPLSession`), else its last reply."""
    if session.partial_answer is not None:
        return session.partial_answer
    return trace.iterations[-1].response if trace.iterations else None


def _loop_settings(
    spec: CallSpec,
    context: Any,
    variant: prompts.PromptVariant,
    check: Callable[[], None],
    planner: Planner | None = None,
) -> LoopSettings:
    cfg = spec.config
    system = _system_prompt(spec, context, variant)
    kwargs = spec.models.llm_kwargs if spec.depth == 0 else spec.models.sub_llm_kwargs
    reserve = int(kwargs.get("max_tokens") or 4096)
    return LoopSettings(
        query=spec.query,
        system=system,
        max_iterations=cfg.max_iterations,
        context_window_tokens=spec.context_window_tokens,
        reserve_output_tokens=min(reserve, spec.context_window_tokens // 4),
        check_limits=check,
        max_answer_chars=cfg.max_answer_chars,
        few_shot=tuple(variant.few_shot_messages()),
        first_turn=prompts.first_turn(
            variant, context, spec.query, planner.lists if planner is not None else None
        ),
        next_turn=variant.next_turn,
        error_turn=variant.error_turn,
        empty_turn=variant.empty_turn,
        examples=variant.example_text(),
        in_context=lambda text: holds(context, text),
    )


def holds(context: Any, text: str) -> bool:
    """Whether `context` holds `text`, as words (case and punctuation aside). Only asked of an
    answer that the prompt's examples hold too (`answer_check`), so it may read the context."""
    if context is None:
        return False
    words = plain_words(text)
    if isinstance(context, corpus.Corpus):  # searched where the chunks are, never read here
        pattern = r"\W+".join(re.escape(w) for w in words.split())
        return bool(context.grep(pattern, flags=re.IGNORECASE, max_matches=1))
    return words in plain_words(context if isinstance(context, str) else context_text(context))


def _system_prompt(spec: CallSpec, context: Any, variant: prompts.PromptVariant) -> str:
    cfg = spec.config
    text = prompts.system_prompt(
        context,
        can_recurse=spec.depth + 1 < cfg.max_depth,
        sub_window_chars=spec.sub_context_window_tokens * 3,
        max_output_chars=cfg.max_output_chars,
        cell_timeout_s=cfg.cell_timeout_s,
        variant=variant,
        tools=spec.tools.specs if spec.tools is not None else (),
    )
    targets = approximate.by_model(cfg.approximate, spec.models.sub_model)
    if targets is None:
        return text
    return f"{text}\n\n{cascades.prompt_note(targets, spec.models.sub_model)}"


def shared_prefix(spec: CallSpec) -> list[dict[str, str]] | None:
    """The messages this call's every first request starts with (system text and examples), if
    they hold nothing of its context, so another run with the same settings sends the same
    ones (a local server keeps them read: `prompt_cache.py`); None if they do."""
    variant = prompts.choose(spec.model, spec.models.prompt)
    probes = [_system_prompt(spec, probe, variant) for probe in ("a", ["b", "c"])]
    if probes[0] != probes[1]:  # the system text describes the context
        return None
    return [{"role": "system", "content": probes[0]}, *variant.few_shot_messages()]


def check_deadline(spec: CallSpec) -> None:
    if spec.deadline is not None and time.time() > spec.deadline:
        raise LimitExceededError("max_time_s", spec.config.max_time_s)


def check_limits(spec: CallSpec, session: REPLSession) -> None:
    """Before each turn: stop at the deadline, or once a run limit has refused a sub-call."""
    check_deadline(spec)
    hit = session.subcalls.limit_hit
    if hit is not None:
        raise LimitExceededError(hit.limit, hit.value)


def remaining_s(spec: CallSpec) -> float | None:
    return None if spec.deadline is None else max(0.0, spec.deadline - time.time())
