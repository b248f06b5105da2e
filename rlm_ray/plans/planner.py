"""The plan turns of a call: what the loop asks the model under the plan schema, and what it
makes of the reply.

    planner = Planner(context, texts)         the record lists found once, for the whole call
    planner.form_call()                       the form turn's (messages, response_format), once
    planner.choose(reply, turn)               the plan turn's message with the form named
    planner.examples(few_shot)                the worked examples of that form only
    planner.response_format()                 the schema of the next turn (None: free code)
    planner.read(reply)                       (the cell to run, or None; what to tell the model)
    planner.next_turn(feedback)               the user message after a turn that did not end

The first plan turn is preceded by the form turn (plans/forms.py): a short call of its own in
which the model names the query's shape; the plan turn then fills that shape's slots only.
A reply `{"shape": "code"}` (to either) ends the plan turns: every later turn is free code, as without
plans. A plan that does not check (`plan.check`) or that the compiler cannot make is told back
in one line and asked again, at most `max_attempts` times; then the call goes on with code.
A plan whose cell ran without answering (an error in a sub-call, say) is asked again too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rlm_ray.plans import forms, grounding, schema, shapes
from rlm_ray.plans.compile import compile_plan
from rlm_ray.plans.plan import PlanError, check
from rlm_ray.plans.records import DEFAULT_LIST, Record, record_lists


@dataclass(frozen=True)
class PlanTexts:
    """What the model reads between plan turns (the prompt variant's words)."""

    retry: str  # after a plan that failed: "{feedback}" then the request for a new plan
    code: str  # after the model chose code (or plans ran out): asks for the first code block
    query: str = ""


class Planner:
    """The plan turns of one call (`loop.Planner`)."""

    def __init__(self, context: Any, texts: PlanTexts, max_attempts: int = 3) -> None:
        self.context = context
        self.texts = texts
        self.max_attempts = max_attempts
        self.active = True
        self.failures = 0
        self.shape: str | None = None  # the form turn's choice
        self.asked_form = False
        self._lists: dict[str, list[Record]] | None = None

    @property
    def lists(self) -> dict[str, list[Record]]:
        if self._lists is None:
            self._lists = record_lists(self.context)
        return self._lists

    def response_format(self) -> dict[str, Any] | None:
        if not self.active or not any(self.lists.values()):
            self.active = False  # nothing to plan over: code
            return None
        return schema.response_format(self.lists, self.shape, self.texts.query)

    def form_call(self) -> tuple[list[dict[str, str]], dict[str, Any]] | None:
        """The form turn's messages and response_format, the first time only (None after)."""
        if self.asked_form or not self.active:
            return None
        self.asked_form = True
        return forms.form_messages(self.texts.query, self.lists), forms.form_format(self.lists)

    def choose(self, reply: str, turn: str) -> str:
        """The plan turn's message `turn` with the form the form turn's `reply` named (as it
        is if it named none: every shape stays open; code ends the plan turns)."""
        shape = forms.read_form(reply)
        if shape == shapes.CODE:
            self.active = False
            return turn
        if shape is None or shape not in forms.names(self.lists):
            return turn
        self.shape = self._dated(shape)
        return forms.with_hint(turn, forms.form_hint(self.shape))

    def _dated(self, shape: str) -> str:
        """Of the two shapes of two conditions, the one the records and query decide: a change
        when the query names two dates of the records (`grounding.names_two_dates`), else a
        group with a record of each kind (dev: "healthy in the 2026-03-01 report but degraded
        in the 2026-03-08 one" was named groups_with_both)."""
        if shape not in forms.TWO:
            return shape
        records = [r for rs in self.lists.values() for r in rs]
        dated = grounding.names_two_dates(records, self.texts.query)
        return "changed" if dated else "groups_with_both"

    def examples(self, few_shot: list[dict[str, str]]) -> list[dict[str, str]]:
        """Of the worked examples (user, assistant pairs), those of the chosen shape: the plan
        turn reads ~1,500 tokens instead of ~4,400 (the form call took the server's one slot,
        so the examples are read again; on a loaded 2-core machine, minutes). All of them if
        no shape was chosen or none is of that shape."""
        pairs = [few_shot[i : i + 2] for i in range(0, len(few_shot) - 1, 2)]
        kept = [p for p in pairs if self.shape and forms.read_form(p[1]["content"]) == self.shape]
        return [m for pair in kept for m in pair] if kept else few_shot

    def read(self, reply: str) -> tuple[str | None, str]:
        """The compiled cell of a plan reply and "", or None and what went wrong (or "" when
        the model chose code)."""
        try:
            raw = json.loads(_json_text(reply))
        except ValueError as exc:
            return None, self._failed(f"the reply is not JSON ({exc})")
        name = raw.get("shape") if isinstance(raw, dict) else None
        if name == shapes.CODE:
            self.active = False
            return None, ""
        if name not in shapes.BY_NAME:
            known = ", ".join([s.name for s in shapes.SHAPES] + [shapes.CODE])
            return None, self._failed(f"`shape` must be one of {known}, got {name!r}")
        raw = self._named_field(raw)
        copied = self._copied(raw) or self._unlisted_labels(raw)
        if copied:
            return None, self._failed(copied)
        only = next(iter(self.lists)) if len(self.lists) == 1 else None
        try:
            general, shape = shapes.to_plan(raw, only)
        except KeyError as exc:
            return None, self._failed(str(exc.args[0]))
        try:
            plan = check(general, self.lists)
        except PlanError as exc:
            return None, self._failed(shapes.renamed(str(exc), shape))
        other = plan.join[0] if plan.join else None
        sources = self._source(plan.source), other and self._source(other)
        return compile_plan(plan, *sources, query=self.texts.query), ""

    def _copied(self, raw: dict[str, Any]) -> str:
        """What is wrong with a condition copied from a record's text ("" if none is): a
        condition says what the query asks in its words, and a record's text names one record."""
        shape = shapes.BY_NAME.get(raw.get("shape", ""))
        records = [r for rs in self.lists.values() for r in rs]
        for slot, kind in shape.slots if shape else ():
            text = raw.get(slot)
            if kind in _FREE_TEXT and isinstance(text, str):
                if grounding.copied_text(text, records, self.texts.query):
                    return (
                        f"`{slot}` is the text of a record ({text[:60]!r}); write the "
                        "condition in the query's own words"
                    )
        return ""

    def _unlisted_labels(self, raw: dict[str, Any]) -> str:
        """What is wrong with labels the query does not list ("" if it lists them): a shape
        of labels answers a query that names its labels; every shape is open again for the
        next plan (dev-2: "which project comes up the most?" was named most_common_label)."""
        shape = shapes.BY_NAME.get(raw.get("shape", ""))
        labels = raw.get("labels")
        if shape is None or shapes.LABELS not in dict(shape.slots).values():
            return ""
        named = [str(k) for k in labels or {} if str(k) != shapes.OTHER]
        query = self.texts.query.casefold()
        if any(label.casefold() in query for label in named):
            return ""
        self.shape = None
        return (
            f"the query lists no labels ({', '.join(named) or 'none given'}), so it is not "
            f"`{shape.name}`: choose the shape again"
        )

    def _named_field(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A `most_common_name` whose kind of name is a field of values (the hosts of log
        lines that carry `host=`) as the `most_common_value` of that field: the field holds
        every record's value, where asking the model to find it in the text loses some."""
        if raw.get("shape") != "most_common_name" or not isinstance(raw.get("name"), str):
            return raw
        records = [r for rs in self.lists.values() for r in rs]
        field = grounding.field_named(raw["name"], records)
        if field is None:
            return raw
        kept = {k: v for k, v in raw.items() if k not in ("shape", "name")}
        return {"shape": "most_common_value", **kept, "count_field": field}

    def next_turn(self, feedback: str) -> str:
        """The user message after a plan turn that did not end the call."""
        if self.active:
            return self.texts.retry.format(feedback=feedback, query=self.texts.query)
        head = f"{feedback}\n\n" if feedback else ""
        return head + self.texts.code.format(query=self.texts.query)

    def ran(self, failed: bool) -> None:
        """A plan's cell ran without answering (`failed`: it raised)."""
        if failed:
            self._failed("")

    def _failed(self, why: str) -> str:
        self.failures += 1
        if self.failures >= self.max_attempts:
            self.active = False
        return f"Your plan was not run: {why}" if why else ""

    def _source(self, name: str) -> str:
        if isinstance(self.context, dict) and not (
            name == DEFAULT_LIST and name not in self.context
        ):
            return f"context[{name!r}]"
        return "context"


_FREE_TEXT = (shapes.TEXT, shapes.TEXT_OR_NULL, shapes.WORDS, shapes.WORDS_OR_NULL)


def _json_text(reply: str) -> str:
    """The JSON object in a reply (a server that enforces no schema may wrap it in a fence)."""
    text = reply.strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.DOTALL)
    if fenced:
        return fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text
