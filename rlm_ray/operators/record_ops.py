"""Record operators without Ray or litellm: `llm_map`, `llm_filter`, `llm_classify` as pure logic.

One operator over many records, in rounds:

  items -> distinct items (identical records are asked once)
        -> batches packed to the sub-model's window (`pack`)
        -> one prompt per batch, items numbered [1]..[n] (`Operator.prompt`)
        -> answers parsed per number (`Operator.parse`)
        -> items still unanswered are asked again: a batch with no usable answer is split in
           two, one with some answers has only its missing items asked (`retry_groups`),
           down to single items
        -> a single item that still gets no usable answer takes the operator's default
           ("" for map, False for filter, "unknown" for classify), with a warning.

`run` drives the rounds; each round's prompts go to `ask(prompts) -> list[str]` together, so
the caller can send them in parallel (the REPL starts them through `SubCalls`, the same path as
`llm_query`: cache, budgets, rate limits, trace and progress apply). Items are str or corpus
views; a view is only measured (`len`) and sliced here, never read: it becomes text where the
model call is made.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_ray.operators.answers import UNKNOWN, UNPARSED, normalise_label, parse_numbered, yes_no
from rlm_ray.operators.batching import (
    CHARS_PER_TOKEN,
    MAX_BATCH_ITEMS,
    distinct,
    max_item_chars,
    pack,
    retry_groups,
)

SMALL_MODEL_BATCH_ITEMS = 1
"""Items per call for rlm-ray's own small local models: one, in `Operator.prompt`'s short form.
Measured with Qwen2.5-Coder-1.5B (docs/benchmarks.md, "One item a call"): on 60 distinct
customer messages, five labels with their meanings, 40/60 right at ten a call (seed 7) against
59/60 one at a time (seeds 7 and 11, and held-out seed 100007, each), in less time (a server
that caches the prompt's prefix reads only the item); on tests/test_real_model.py's 14 messages
with two labels, 8/14 at ten a call against 12/14 one at a time. A filter one item a call kept
49 of 60 true items and 21 others over five conditions (seed 7); at ten a call, 39 of 48 and
109 others over the first four."""


def batch_items_for(model: str) -> int:
    """How many items one call of `model` gets: fewer for the small local models."""
    return SMALL_MODEL_BATCH_ITEMS if model in ("local", "local-small") else MAX_BATCH_ITEMS


CLASSIFY_CUE = "\nLabel:"
FILTER_QUESTION = (
    "\n\nQuestion: does the item above meet this condition: {}? Answer yes only if it clearly "
    "does. Answer with one word, yes or no."
)


@dataclass(frozen=True)
class Operator:
    """One record operator: what to ask, how to read an answer, what an unanswered item gets."""

    kind: str  # "map" | "filter" | "classify"
    instruction: str = ""  # map: the instruction; filter: the condition
    labels: tuple[str, ...] = ()  # classify only
    descriptions: tuple[str, ...] = ()  # classify: what each label means ("" if not given)

    @property
    def fn(self) -> str:
        return f"llm_{self.kind}"

    @property
    def default(self) -> Any:
        return {"map": "", "filter": False, "classify": UNKNOWN}[self.kind]

    @property
    def answer_tokens(self) -> int:
        """Tokens kept for one item's answer."""
        if self.kind == "classify":
            return max(len(label) for label in self.labels) // CHARS_PER_TOKEN + 4
        return 4 if self.kind == "filter" else 120

    def task(self) -> str:
        if self.kind == "map":
            return f"Instruction: {self.instruction}\nApply the instruction to each item below, separately."
        if self.kind == "filter":
            return (
                f"Condition: {self.instruction}\nFor each item below, answer yes if the "
                "condition holds for it, no if it does not."
            )
        if any(self.descriptions):
            listed = "\n".join(
                f"- {label}: {text}" if text else f"- {label}"
                for label, text in zip(self.labels, self.descriptions)
            )
            labels = f"Labels:\n{listed}"
        else:
            labels = f"Labels: {', '.join(self.labels)}"
        return (
            f"{labels}\nFor each item below, answer with the one label that fits it "
            f"best, written exactly as in the list; answer {UNKNOWN} if none fits."
        )

    def single_task(self) -> str:
        """`task` for a prompt of one item: the same words, about "the item below"."""
        if self.kind == "map":
            return f"Instruction: {self.instruction}\nApply the instruction to the item below."
        return (
            self.task()
            .replace("For each item below, answer", "Answer")
            .replace("fits it best", "fits the item below best")
        )

    def single_classify_task(self) -> str:
        """The labels in one sentence, each with its meaning in brackets, for one item: the
        1.5B model labels more items right this way than from `task`'s list (docs/benchmarks.md,
        "One item a call")."""
        listed = "; ".join(
            f"{label} ({text})" if text else label
            for label, text in zip(self.labels, self.descriptions or ("",) * len(self.labels))
        )
        return f"Classify the text below as one of: {listed}. Answer with the label only."

    @property
    def one_label(self) -> bool:
        """A classify with one label: whether each item fits it, asked as a filter is (with the
        label before the item, the 1.5B model gave every item the one label: 60 of 60,
        docs/prompts.md); "no" is `UNKNOWN`."""
        return self.kind == "classify" and len(self.labels) == 1

    @property
    def condition(self) -> str:
        """What a filter asks of an item: the condition, or a single label's meaning."""
        if self.one_label:
            return (self.descriptions or ("",))[0] or f"it is {self.labels[0]}"
        return self.instruction

    def answer_form(self) -> str:
        return {"map": "answer", "filter": "yes or no", "classify": "label"}[self.kind]

    def prompt(self, items: Sequence[Any]) -> str | list[Any]:
        """The batch's prompt: a str, or parts (str and views) that `corpus.render` joins.

        One item is asked in a short form that ends with the item and a cue ("Label:"): a
        small model answers it more often right than in a numbered list (57/60 against 40/60
        at ten a call, measured in docs/benchmarks.md), and a server that caches prompt
        prefixes (llama.cpp) reads only the item for every call after the first. A filter's
        single item comes first and the question after it (`FILTER_QUESTION`): with the
        condition first, the 1.5B model said yes to most items whatever the condition."""
        n = len(items)
        if n == 1 and (self.kind == "filter" or self.one_label):
            return _merge_text(["Item: ", items[0], FILTER_QUESTION.format(self.condition)])
        if n == 1 and self.kind == "classify":
            return _merge_text([f"{self.single_classify_task()}\n\nText: ", items[0], CLASSIFY_CUE])
        if n == 1:
            return _merge_text([f"{self.single_task()}\n\nItem: ", items[0], "\nAnswer:"])
        parts: list[Any] = [f"{self.task()}\n\nItems:\n"]
        for k, item in enumerate(items, 1):
            parts += [f"[{k}] ", item, "\n"]
        parts.append(
            f"\nReply with exactly {n} line{'s' if n > 1 else ''}, one per item in order, each "
            f'"[number] {self.answer_form()}" on one line ([1] to [{n}]), and nothing else.'
        )
        return _merge_text(parts)

    def parse(self, reply: str, n: int) -> dict[int, Any]:
        """The usable answers in `reply`, by item number (1-based); missing numbers failed."""
        raw = parse_numbered(reply, n)
        if n == 1 and 1 not in raw and reply.strip():
            raw = {1: reply.strip()}  # one item: a bare answer without its number is fine
        out = {}
        for k, text in raw.items():
            value = self.value(text)
            if value is not UNPARSED:
                out[k] = value
        return out

    def value(self, text: str) -> Any:
        if self.kind == "map":
            return text.strip()
        if self.kind == "filter":
            return yes_no(text)
        if self.one_label and yes_no(text) is not UNPARSED:
            return self.labels[0] if yes_no(text) else UNKNOWN
        return normalise_label(text, self.labels, self.descriptions)


class RecordAnswers(list):
    """An operator's answers in record order (a plain list) that can also be read by record:
    `labels[record]` is the answer of that record's text.

    A 1.5B root model writes ``[r for r in records if labels[r] == "x"]`` more often than
    `zip`, and repeated it through every retry (docs/prompts.md); identical records get one
    answer (the operator asks them once), so reading by record is well defined. Only str
    records can be read this way; any other key reads the list as usual. It pickles as a plain
    list, and `sandbox.boundary.plain` copies it as one."""

    __slots__ = ("_by_record",)

    def __init__(self, values: Sequence[Any], records: Sequence[Any]) -> None:
        super().__init__(values)
        self._by_record = {r: v for r, v in zip(records, values) if type(r) is str}

    def __getitem__(self, index: Any) -> Any:
        if type(index) is str:
            try:
                return self._by_record[index]
            except KeyError:
                raise KeyError(
                    f"{index[:60]!r} is not one of the records these answers are for; read "
                    "the list by position, or pair it with its records: zip(records, answers)"
                ) from None
        return super().__getitem__(index)

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))


def map_op(instruction: str) -> Operator:
    return Operator("map", instruction)


def filter_op(condition: str) -> Operator:
    return Operator("filter", condition)


def classify_op(labels: Sequence[str], descriptions: Sequence[str] = ()) -> Operator:
    """`descriptions`, if given, says what each label means (one per label, "" for none)."""
    return Operator("classify", labels=tuple(labels), descriptions=tuple(descriptions))


def _merge_text(parts: list[Any]) -> str | list[Any]:
    """`parts` with neighbouring strs joined: one str if every part is a str."""
    merged: list[Any] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged[0] if len(merged) == 1 and isinstance(merged[0], str) else merged


# -- running -------------------------------------------------------------------------------------

Ask = Callable[[list[Any]], list[str]]


@dataclass
class Outcome:
    """An operator's answers, one per item in order (filter: the items kept), and what went
    wrong on the way (`warnings`: items cut to fit, items that never got a usable answer).
    `answers` has one answer per item in every case (filter: True or False)."""

    values: list[Any]
    warnings: list[str] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    prompts_sent: int = 0
    rounds: int = 0
    unknown: int = 0
    """classify: how many items (duplicates counted) ended `UNKNOWN`."""
    unmatched: list[str] = field(default_factory=list)
    """A few answers that named no label (for the report of `unknown`)."""


def run(
    op: Operator,
    items: Sequence[Any],
    keys: Sequence[Hashable],
    ask: Ask,
    *,
    window_tokens: int,
    max_items: int = MAX_BATCH_ITEMS,
) -> Outcome:
    """Answer `op` for every item: dedupe by `keys`, pack, ask in rounds, retry, default."""
    outcome = Outcome([])
    firsts, where = distinct(keys)
    asked = _fit(op, [items[i] for i in firsts], window_tokens, outcome)
    answers: dict[int, Any] = {}
    failed: list[int] = []
    pending = pack([len(item) for item in asked], op, window_tokens, max_items)
    while pending:
        replies = ask([op.prompt([asked[i] for i in batch]) for batch in pending])
        outcome.prompts_sent += len(pending)
        outcome.rounds += 1
        retry: list[list[int]] = []
        for batch, reply in zip(pending, replies):
            for k, value in op.parse(reply, len(batch)).items():
                answers[batch[k - 1]] = value
            got = {i for i in batch if i in answers}
            retry += retry_groups(batch, got)
            if len(batch) == 1 and batch[0] not in answers:
                failed.append(batch[0])
                if reply.strip() and len(outcome.unmatched) < 3:
                    outcome.unmatched.append(reply.strip().splitlines()[0][:40])
        pending = retry
    if failed:
        shown = ", ".join(str(firsts[i]) for i in sorted(failed)[:10])
        outcome.warnings.append(
            f"{len(failed)} item(s) got no usable answer, even asked alone (item index "
            f"{shown}{', ...' if len(failed) > 10 else ''}); they are {op.default!r}"
        )
    per_item = [answers.get(where[i], op.default) for i in range(len(where))]
    outcome.answers = per_item
    if op.kind == "classify":
        outcome.unknown = per_item.count(UNKNOWN)
    if op.kind == "filter":
        outcome.values = [item for item, keep in zip(items, per_item) if keep]
    else:
        outcome.values = per_item
    return outcome


UNKNOWN_SHARE_WARNING = 0.25  # more than this share of "unknown" labels: a warning line


def unknown_report(outcome: Outcome) -> list[str]:
    """What to tell about a classification's `UNKNOWN` items: nothing if there are none, one
    line with their count (and a few answers that named no label), and a warning line when
    they are a large share: the labels may not fit the records, or need meanings."""
    total = len(outcome.values)
    if not outcome.unknown or not total:
        return []
    answers = ", ".join(repr(a) for a in outcome.unmatched)
    named = f"; answers that named no label: {answers}" if answers else ""
    lines = [f"{outcome.unknown} of {total} items are {UNKNOWN!r}{named}"]
    if outcome.unknown / total > UNKNOWN_SHARE_WARNING:
        lines.append(
            f"warning: {outcome.unknown / total:.0%} of the items got no label; check that the "
            "labels fit the records, and give each label its meaning (a dict: label -> meaning)"
        )
    return lines


def _fit(op: Operator, items: list[Any], window_tokens: int, outcome: Outcome) -> list[Any]:
    """Items longer than a batch of their own can hold are cut (a view stays a view)."""
    limit = max_item_chars(op, window_tokens)
    long = [i for i, item in enumerate(items) if len(item) > limit]
    if long:
        outcome.warnings.append(
            f"{len(long)} item(s) longer than {limit:,} characters (what fits the sub-model's "
            f"window) were cut to their first {limit:,} characters"
        )
    return [item[:limit] if len(item) > limit else item for item in items]
