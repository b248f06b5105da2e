"""A prompt as data: `PromptVariant` (name, version, system text, worked examples, stop
sequences, turn messages), and the paper's turn messages that every variant starts from.
The variants themselves are in prompts.py (the paper's) and small_prompt.py (small models')."""

from __future__ import annotations

from dataclasses import dataclass

FIRST_TURN = (
    "You have not interacted with the REPL environment or seen your context yet. Your next "
    "action should be to look through the context; don't give a final answer yet.\n\n"
    "Query: {query}"
)
NEXT_TURN = (
    "Continue using the REPL environment (iteration {iteration} of {max_iterations}) to answer "
    "the original query: {query}\nYour next action:"
)


@dataclass(frozen=True)
class PromptVariant:
    """One prompt, as data. `system` is a template with the placeholders of `SYSTEM_PROMPT`
    ({context_description}, {functions}, {sub_window_chars}, {recursion_note},
    {max_output_chars}, {cell_timeout}); a template may use any subset. `few_shot` are (user,
    assistant) turns shown between the system message and the query; `stop` ends each REPL
    turn's reply (unless the caller set `stop` in `llm_kwargs`). The turn templates may use {query}, {iteration} and
    {max_iterations}."""

    name: str
    version: int
    system: str
    few_shot: tuple[tuple[str, str], ...] = ()
    stop: tuple[str, ...] = ()
    first_turn: str = FIRST_TURN
    next_turn: str = NEXT_TURN
    error_turn: str | None = None  # after a turn whose code raised; None: `next_turn`
    empty_turn: str | None = None  # after a turn whose code printed nothing; None: `next_turn`
    # Plan turns (rlm_ray/plans) before the code turns when set: after a plan that failed
    # ({feedback}, {query}), and after a choice of code ({query}). None: every turn is code.
    plan_retry: str | None = None
    plan_code: str | None = None

    @property
    def plans(self) -> bool:
        return self.plan_retry is not None and self.plan_code is not None

    def example_text(self) -> str:
        """The text of the worked examples (few-shot turns), where no answer may come from."""
        return "\n".join(part for turn in self.few_shot for part in turn)

    def few_shot_messages(self) -> list[dict[str, str]]:
        messages = []
        for user, assistant in self.few_shot:
            messages.append({"role": "user", "content": user})
            messages.append({"role": "assistant", "content": assistant})
        return messages
