"""The RLM turn loop: ask the model, run its code blocks, feed the output back, until a final answer.

No Ray here. The loop takes a model (`llm(messages) -> LLMReply`) and a REPL (`REPL` below); the
runtime passes a model behind a Ray gateway and a REPL whose sub-calls are Ray work, the tests
pass in-process fakes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rlm_ray.core.answer_check import copied, too_long
from rlm_ray.core.parsing import TextFinal, code_blocks, text_final
from rlm_ray.core.stuck import StuckGuard
from rlm_ray.core.turns import REPL, AnswerError, Messages, Planner
from rlm_ray.errors import ContextWindowError
from rlm_ray.prompting import prompts, variant
from rlm_ray.types import CallTrace, CellTrace, IterationTrace, LLMReply, Usage

LLM = Callable[[Messages], LLMReply]


@dataclass(frozen=True)
class LoopSettings:
    query: str
    system: str
    max_iterations: int
    context_window_tokens: int
    reserve_output_tokens: int = 4096
    check_limits: Callable[[], None] = lambda: None
    # Example turns between the system message and the query (a prompt variant's few-shot).
    few_shot: tuple[dict[str, str], ...] = ()
    first_turn: str = variant.FIRST_TURN
    next_turn: str = variant.NEXT_TURN
    # The user message after a turn whose code raised (None: `next_turn`); small models answer
    # a guess after an error unless told to fix the code first.
    error_turn: str | None = None
    # The user message after a turn whose code ran but printed nothing (None: `next_turn`):
    # small models read an empty search as "the answer is 0".
    empty_turn: str | None = None
    # The model asked with sampling (temperature above 0), for the turn after a STUCK notice:
    # at temperature 0 a small model given nearly the same conversation writes the same failing
    # code again, however plainly the notice says so. None: the same `llm`.
    resample_llm: LLM | None = None
    checkpoint: Callable[[Messages, int], None] = lambda messages, index: None
    """Called after each model reply, before its code runs, with the conversation so far (the
    reply included) and the reply's turn index: what a `Resume` needs if the REPL is lost."""
    max_answer_chars: int | None = None
    """A longer answer is refused and the model told (None: any length)."""
    planner: Planner | None = None
    """Plan turns before the code turns (None: every turn is code)."""
    examples: str = ""
    """The text of the prompt's worked examples: an answer copied from it is refused unless
    the context (`in_context`) or an output of the call holds it too (`answer_check`)."""
    in_context: Callable[[str], bool] = lambda text: True
    plan_llm: Callable[[Messages, dict], LLMReply] | None = None
    """The model asked under a `response_format` (a plan turn); None: `llm` can't be."""


@dataclass(frozen=True)
class Resume:
    """Where a call goes on after its REPL was lost: the conversation up to its last model reply,
    whose code may or may not have run. The model is told (`notice`) that its variables are gone."""

    messages: Messages
    next_index: int
    notice: str


def run_loop(
    llm: LLM,
    repl: REPL,
    settings: LoopSettings,
    trace: CallTrace,
    usage: Usage,
    resume: Resume | None = None,
) -> str:
    """Run one RLM call to its answer, recording each turn in `trace` and model use in `usage`.

    With `resume`, the call goes on from a saved conversation in a fresh REPL."""
    messages: Messages = [{"role": "system", "content": settings.system}, *settings.few_shot]
    turn_prompt = settings.first_turn.format(query=settings.query)
    feedback, start = "", 0
    if resume is not None:
        messages, start, feedback = list(resume.messages), resume.next_index, resume.notice
        turn_prompt = _next_prompt(feedback, start - 1, settings)
    guard, stuck = StuckGuard(), False
    planner = settings.planner if settings.plan_llm is not None else None
    for index in range(start, settings.max_iterations):
        settings.check_limits()
        messages.append({"role": "user", "content": turn_prompt})
        schema = planner.response_format() if planner is not None else None
        if planner is not None and schema is not None:
            answer, turn_prompt = _plan_turn(
                planner, schema, repl, messages, index, settings, trace, usage
            )
            if answer is not None:
                trace.answer, trace.finished_by = answer
                return answer[0]
            continue
        asked = settings.resample_llm if stuck and settings.resample_llm is not None else llm
        reply, iteration = _ask(asked, messages, settings, index, usage)
        trace.iterations.append(iteration)
        settings.checkpoint(messages, index)
        answer, feedback = _take_turn(reply.text, repl, iteration, _refusal(settings, trace))
        if answer is not None:
            trace.answer, trace.finished_by = answer
            return answer[0]
        failed = any(cell.error is not None for cell in iteration.cells)
        empty = bool(iteration.cells) and not any(cell.output.strip() for cell in iteration.cells)
        notice, stuck = guard.notice(iteration.cells, repl)
        feedback += notice
        turn_prompt = _next_prompt(feedback, index, settings, failed, empty)
    return _last_word(llm, repl, messages, feedback, settings, trace, usage)


def _plan_turn(
    planner: Planner,
    schema: dict,
    repl: REPL,
    messages: Messages,
    index: int,
    settings: LoopSettings,
    trace: CallTrace,
    usage: Usage,
) -> tuple[tuple[str, str] | None, str]:
    """A plan turn: the model asked under `schema`, the plan's cell run if the reply compiles;
    ((answer, how), "") when the cell ended the call, else (None, the next user message)."""
    assert settings.plan_llm is not None
    plan_llm = settings.plan_llm
    if _form_turn(planner, messages, settings, index, trace, usage):
        schema = planner.response_format() or schema
    if not planner.active:  # the form turn chose code: as a plan turn that replied code
        messages.append({"role": "assistant", "content": '{"shape": "code"}'})
        return None, planner.next_turn("")
    reply, iteration = _ask(lambda m: plan_llm(m, schema), messages, settings, index, usage)
    trace.iterations.append(iteration)
    settings.checkpoint(messages, index)
    text = reply.text
    code, feedback = planner.read(text)
    if code is None:
        return None, planner.next_turn(feedback)
    report = repl.run(code)
    iteration.cells.append(report.trace)
    if report.final is not None:
        refused = _refusal(settings, trace)(report.final)
        if refused is None:
            return (report.final, report.finished_by), ""
        report.trace.final = False
        report.trace.error = f"{report.finished_by}(...) was not accepted: {refused}"
    planner.ran(failed=report.trace.error is not None)
    return None, planner.next_turn(_describe_cell(1, report.trace))


def _form_turn(
    planner: Planner,
    messages: Messages,
    settings: LoopSettings,
    index: int,
    trace: CallTrace,
    usage: Usage,
) -> bool:
    """The form turn (plans/forms.py), before the first plan turn: a short call of its own that
    names the query's shape; its hint is added to the plan turn's message. False if done."""
    call = planner.form_call()
    if call is None or settings.plan_llm is None:
        return False
    form_messages, form_format = call
    plan_llm = settings.plan_llm
    reply, iteration = _ask(
        lambda m: plan_llm(m, form_format), form_messages, settings, index, usage
    )
    trace.iterations.append(iteration)
    messages[-1] = {**messages[-1], "content": planner.choose(reply.text, messages[-1]["content"])}
    messages[1:-1] = planner.examples(messages[1:-1])
    return True


def _next_prompt(
    feedback: str, index: int, settings: LoopSettings, failed: bool = False, empty: bool = False
) -> str:
    """The user message after turn `index`: its REPL output, then the call to go on."""
    template = settings.next_turn
    if failed and settings.error_turn:
        template = settings.error_turn
    elif empty and not failed and settings.empty_turn:
        template = settings.empty_turn
    return (
        feedback
        + "\n\n"
        + template.format(
            iteration=index + 2, max_iterations=settings.max_iterations, query=settings.query
        )
    )


def _ask(
    llm: LLM, messages: Messages, settings: LoopSettings, index: int, usage: Usage
) -> tuple[LLMReply, IterationTrace]:
    started = time.time()
    head = 2 + len(settings.few_shot)  # system, examples, the query: never trimmed
    reply = llm(
        fit_to_window(
            messages, settings.context_window_tokens, settings.reserve_output_tokens, head=head
        )
    )
    usage.add_reply(reply)
    messages.append({"role": "assistant", "content": reply.text})
    iteration = IterationTrace(
        index=index,
        response=reply.text,
        started_s=started,
        llm_duration_s=time.time() - started,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        cost_usd=reply.cost_usd,
    )
    return reply, iteration


def _refusal(settings: LoopSettings, trace: CallTrace) -> Callable[[str], str | None]:
    """Why an answer may not end the call (None: it may): its length, or a copy of the
    examples that nothing the call has seen holds."""

    def seen() -> list[str]:
        cells = [c for it in trace.iterations for c in it.cells]
        return [settings.query] + [f"{c.output}\n{c.error or ''}" for c in cells]

    def refused(answer: str) -> str | None:
        return too_long(answer, settings.max_answer_chars) or copied(
            answer, settings.examples, seen, settings.in_context
        )

    return refused


def _take_turn(
    text: str, repl: REPL, iteration: IterationTrace, refusal: Callable[[str], str | None]
) -> tuple[tuple[str, str] | None, str]:
    """Run the reply's blocks in order; return ((answer, how), "") or (None, feedback)."""
    blocks = code_blocks(text)
    outputs = []
    failed = False
    for number, code in enumerate(blocks, 1):
        report = repl.run(code)
        iteration.cells.append(report.trace)
        if report.final is not None:
            refused = refusal(report.final)
            if refused is None:
                return (report.final, report.finished_by), ""
            report.trace.final = False  # an error in the cell that called it
            report.trace.error = f"{report.finished_by}(...) was not accepted: {refused}"
        failed = failed or report.trace.error is not None
        outputs.append(_describe_cell(number, report.trace))
    final = text_final(text)
    try:
        answer = _answer_after_code(final, failed, repl, outputs)
        refused = None if answer is None else refusal(answer[0])
        if refused is not None:
            raise AnswerError(refused)
    except AnswerError as exc:
        answer = None
        outputs.append(f"Your answer was not accepted: {exc}")
    if answer is not None:
        return answer, ""
    if not blocks and final is None:
        outputs.append(prompts.NO_CODE)
    return None, "\n\n".join(outputs)


def _answer_after_code(
    final: TextFinal | None, failed: bool, repl: REPL, outputs: list[str]
) -> tuple[str, str] | None:
    """The `answer` dict if ready, else a FINAL of the reply's text if it can be honoured."""
    ready = repl.ready_answer()
    if ready is not None:
        return ready, "answer"
    if final is None:
        return None
    if failed:
        outputs.append("Your FINAL was ignored because a code block of this reply failed.")
        return None
    answer = _text_answer(final.kind, final.value, repl)
    if answer is None:
        outputs.append(f"FINAL_VAR({final.value}): there is no variable `{final.value}`.")
        return None
    return answer, final.kind


def _text_answer(kind: str, value: str, repl: REPL) -> str | None:
    return value if kind == "FINAL" else repl.lookup(value)


def _describe_cell(number: int, cell: CellTrace) -> str:
    parts = [f"Output of code block {number}:"]
    parts.append(cell.output if cell.output.strip() else "(no output)")
    if cell.error:
        parts.append(f"Error:\n{cell.error}")
    return "\n".join(parts)


def _last_word(
    llm: LLM,
    repl: REPL,
    messages: Messages,
    feedback: str,
    settings: LoopSettings,
    trace: CallTrace,
    usage: Usage,
) -> str:
    """Out of iterations: one more call asks for the final answer; its reply is the answer."""
    settings.check_limits()
    messages.append(
        {
            "role": "user",
            "content": feedback + "\n\n" + prompts.FINAL_TURN.format(query=settings.query),
        }
    )
    reply, iteration = _ask(llm, messages, settings, settings.max_iterations, usage)
    trace.iterations.append(iteration)
    final = text_final(reply.text)
    try:
        answer = _text_answer(final.kind, final.value, repl) if final else None
    except AnswerError:
        answer = None  # no turn is left to tell the model: the reply itself is the answer
    trace.answer = answer if answer is not None else reply.text.strip()
    trace.finished_by = "max_iterations"
    return trace.answer


def estimate_tokens(messages: Messages) -> int:
    """A deliberately high estimate (3 characters a token) so trimming errs on the safe side."""
    return sum(len(m["content"]) // 3 + 4 for m in messages)


def fit_to_window(
    messages: Messages, window_tokens: int, reserve: int, *, head: int = 2
) -> Messages:
    """Trim the oldest REPL outputs (then the oldest replies) until the conversation fits.

    The first `head` messages (the system prompt, any example turns and the first user message,
    which holds the query) and the latest exchange are never trimmed; if they alone do not fit,
    raise `ContextWindowError`.
    """
    budget = window_tokens - reserve
    if estimate_tokens(messages) <= budget:
        return messages
    fitted = list(messages)
    trimmable = [i for i in range(head, len(fitted) - 2)]
    # Outputs (user turns) go first: they are the bulk and the model has already acted on them.
    order = [i for i in trimmable if fitted[i]["role"] == "user"]
    order += [i for i in trimmable if fitted[i]["role"] == "assistant"]
    for i in order:
        fitted[i] = {"role": fitted[i]["role"], "content": "[trimmed to fit the context window]"}
        if estimate_tokens(fitted) <= budget:
            return fitted
    raise ContextWindowError(
        f"the conversation needs about {estimate_tokens(fitted):,} tokens even with old REPL "
        f"outputs trimmed, but the model's window is {window_tokens:,} tokens "
        f"({reserve:,} kept for the reply)"
    )
