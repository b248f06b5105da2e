"""A plan: one aggregation over a record list, as the root model states it in JSON, checked.

    {"approach": "plan",
     "from": "records",                       which record list (a dict context has several)
     "where": {"date": "2026-03-04"},         exact field values (no model call)
     "keep_if": {"field": "text", "condition": "..."} | null     llm_filter on a field
     "label": {"field": "text", "labels": {"billing": "...", ...}} | null
                                              llm_classify; the answer is the field `label`
     "extract": {"field": "text", "question": "..."} | null      llm_map; the field `extracted`
     "join": {"from": "orders", "key": "order", "in": "text"} | null
                                              each record gets the fields of the records of
                                              `from` whose `key` it names in its field `in`
     "group_by": "user" | null,
     "result": "count" | "count_per_group" | "most_common" | "least_common" | "values"
               | "groups_with_all" | "groups_changed",
     "of": "label" | null,                    the field a most/least common or values result reads
     "needs": [{"label": "billing"}, {"label": "delivery"}]}
                                              groups_with_all: groups with a record matching each;
                                              groups_changed: groups whose `of` differs between
                                              the record matching the first and the second

`check(raw, lists)` turns the JSON into a `Plan` whose every field exists and every value is
one the records hold (a date written "March 4" is read as the records write it), or raises
`PlanError` with one line that names what exists. Pure: no Ray.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlm_ray.plans.records import Record, fields, values

RESULTS = (
    "count",
    "count_per_group",
    "most_common",
    "least_common",
    "values",
    "groups_with_all",
    "groups_changed",
)
STEPS = ("where", "keep_if", "label", "extract", "join", "group_by", "result", "of", "needs")
LABEL, EXTRACTED = "label", "extracted"  # the fields `label` and `extract` add
_MONTHS = (
    "jan feb mar apr may jun jul aug sep oct nov dec".split()
)  # fmt: skip


@dataclass(frozen=True)
class Test:
    """A record whose `field` holds `value` (`prefix`: starts with it, a month of dates)."""

    __test__ = False  # a plan's test of a value, not a test case for pytest
    field: str
    value: str
    prefix: bool = False


class PlanError(ValueError):
    """A plan that cannot run: the message is one line for the model, naming what exists."""


@dataclass(frozen=True)
class Plan:
    """A checked plan; every name in it exists in the records (see the module docstring)."""

    source: str
    where: tuple[Test, ...] = ()  # tests on the record list's own fields: first
    keep_if: tuple[str, str] | None = None  # (field, condition)
    label: tuple[str, tuple[tuple[str, str], ...]] | None = None  # (field, ((label, meaning),))
    extract: tuple[str, str] | None = None  # (field, question)
    join: tuple[str, str, str] | None = None  # (record list, its key field, this list's field)
    group_by: str | None = None
    result: str = "count"
    of: str | None = None
    needs: tuple[tuple[Test, ...], ...] = ()
    then: tuple[Test, ...] = ()  # `where` tests on label, extracted or joined fields

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.label[1]) if self.label else ()


def check(raw: Any, lists: Mapping[str, list[Record]]) -> Plan:
    """`raw` (the plan's JSON, parsed) as a `Plan` checked against `lists`; `PlanError` if it
    cannot run."""
    if not isinstance(raw, Mapping):
        raise PlanError(f"a plan is a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"approach", "from", *STEPS})
    if unknown:
        raise PlanError(f"a plan has no key {unknown[0]!r}; its keys are: from, {', '.join(STEPS)}")
    source = _name(raw.get("from") or _only(lists), "from")
    if source not in lists:
        raise PlanError(f"`from`: there is no record list {source!r}; {_lists(lists)}")
    fields_ = Fields(source, lists)
    keep_if = _pair(raw, "keep_if", ("field", "condition"), fields_.base)
    label = _label(raw.get("label"), fields_)
    extract = _pair(raw, "extract", ("field", "question"), fields_.base)
    join = _join(raw.get("join"), source, lists, fields_)
    fields_.add(LABEL if label else None, EXTRACTED if extract else None)
    where = _tests(raw.get("where"), "where", fields_, label)
    group_by = _optional_field(raw, "group_by", fields_)
    result = _name(raw.get("result") or "count", "result")
    if result not in RESULTS:
        raise PlanError(
            f"`result`: {result!r} is not a result; the results are {', '.join(RESULTS)}"
        )
    of = _optional_field(raw, "of", fields_)
    needs = raw.get("needs") or []
    if not isinstance(needs, list):
        raise PlanError('`needs` is a list of objects such as {"label": "billing"}')
    tests = tuple(_tests(n, "needs", fields_, label) for n in needs)
    first = tuple(t for t in where if t.field in fields_.base)
    then = tuple(t for t in where if t.field not in fields_.base)
    plan = Plan(source, first, keep_if, label, extract, join, group_by, result, of, tests, then)
    _check_result(plan)
    return plan


class Fields:
    """The fields a plan may name: the record list's own (`base`), those of a joined list,
    then `label` and `extracted` once a step makes them."""

    def __init__(self, source: str, lists: Mapping[str, list[Record]]) -> None:
        self.source, self.lists = source, lists
        self.records = lists[source]
        self.base = fields(self.records)
        self.all = list(self.base)

    def add(self, *names: str | None) -> None:
        self.all += [n for n in names if n and n not in self.all]

    def need(self, name: Any, where: str, among: list[str] | None = None) -> str:
        among = self.all if among is None else among
        name = _name(name, where)
        if name not in among:
            raise PlanError(
                f"`{where}`: the records of {self.source!r} have no field {name!r}; their "
                f"fields are {', '.join(among)}"
            )
        return name

    def test(self, field: str, given: Any, where: str) -> Test:
        """The test of `field` for the value the records hold that `given` means (or the
        month of dates it names), or `PlanError`."""
        if isinstance(given, bool) or not isinstance(given, (str, int, float)):
            raise PlanError(f"`{where}`: the value of {field!r} must be a str, got {given!r}")
        counts = values(self.records, field) if field in self.base else None
        if counts is None:  # a joined or a derived field: read as written
            return Test(field, str(given).strip())
        found = match_value(str(given), field, counts)
        if found is not None:
            return Test(field, found)
        month = _month(str(given), counts)
        if month is not None:
            return Test(field, month, prefix=True)
        if len(counts) > max(10, len(self.records) // 2):  # free text, not a value to test
            raise PlanError(
                f"`{where}`: field {field!r} holds free text ({len(counts):,} different values), "
                f"none of them {str(given)!r}: `{where}` is for exact values; a condition of "
                "meaning goes in a condition"
            )
        shown = ", ".join(repr(v) for v in sorted(counts)[:4])
        raise PlanError(
            f"`{where}`: field {field!r} has no value {str(given)!r}; its "
            f"{len(counts):,} values include {shown}"
        )


def match_value(given: str, field: str, counts: Counter) -> str | None:
    """The one value in `counts` that `given` names: itself, in any case, without the field's
    name before it ("user 4997"), as a whole word of it or it of `given`, or a date written
    "March 4" / "4 March"; None if no value (or more than one) fits."""
    text = given.strip()
    if text in counts:
        return text
    folded = {v.casefold(): v for v in counts}
    bare = re.sub(rf"^{re.escape(field)}\W*", "", text, flags=re.I).casefold()
    for candidate in (text.casefold(), bare):
        if candidate in folded:
            return folded[candidate]
    day = _month_day(text)
    if day is not None:
        dated = [v for v in counts if v[4:10] == day or v.startswith(day[1:])]
        if len(dated) == 1:
            return dated[0]
    words = [v for v in counts if _within(bare, v.casefold()) or _within(v.casefold(), bare)]
    return words[0] if len(words) == 1 else None


def _within(part: str, whole: str) -> bool:
    return bool(part) and re.search(rf"(?<!\w){re.escape(part)}(?!\w)", whole) is not None


def _month(text: str, counts: Counter) -> str | None:
    """ "YYYY-MM" when `text` names a month ("2026-03", "March 2026", "March") of which some
    values of a date field are days."""
    folded = text.strip().casefold()
    match = re.fullmatch(r"(\d{4})-(\d{2})|([a-z]+)(?:\s+(\d{4}))?", folded)
    if match is None:
        return None
    if match[1]:
        prefixes = {f"{match[1]}-{match[2]}"}
    elif match[3][:3] in _MONTHS:
        month = f"-{_MONTHS.index(match[3][:3]) + 1:02d}"
        years = {match[4]} if match[4] else {v[:4] for v in counts if v[:4].isdigit()}
        prefixes = {f"{year}{month}" for year in years}
    else:
        return None
    found = {p for p in prefixes if any(v.startswith(p) and len(v) > len(p) for v in counts)}
    return found.pop() if len(found) == 1 else None


def _month_day(text: str) -> str | None:
    """ "-MM-DD" for "March 4", "4 March", "Mar 4th"; None for anything else."""
    match = re.fullmatch(
        r"(?:(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)|([a-z]+)\s+(\d{1,2})(?:st|nd|rd|th)?)",
        text.casefold(),
    )
    if match is None:
        return None
    day, month = (match[1], match[2]) if match[1] else (match[4], match[3])
    if month[:3] not in _MONTHS:
        return None
    return f"-{_MONTHS.index(month[:3]) + 1:02d}-{int(day):02d}"


# -- the parts ------------------------------------------------------------------------------------
def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PlanError(f"`{where}` must be a non-empty str, got {value!r}")
    return value.strip()


def _only(lists: Mapping[str, list[Record]]) -> str | None:
    return next(iter(lists)) if len(lists) == 1 else None


def _lists(lists: Mapping[str, list[Record]]) -> str:
    return "the record lists are " + ", ".join(repr(name) for name in lists)


def _pair(
    raw: Mapping[str, Any], key: str, names: tuple[str, str], among: list[str]
) -> tuple[str, str] | None:
    """A step written {names[0]: field, names[1]: text}, or None."""
    step = raw.get(key)
    if step is None:
        return None
    if not isinstance(step, Mapping):
        raise PlanError(f'`{key}` is null or {{"{names[0]}": ..., "{names[1]}": ...}}')
    field = _name(step.get(names[0]), f"{key}.{names[0]}")
    if field not in among:
        raise PlanError(
            f"`{key}.{names[0]}`: there is no field {field!r}; the fields are {', '.join(among)}"
        )
    return field, _name(step.get(names[1]), f"{key}.{names[1]}")


def _label(step: Any, fields_: Fields) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    if step is None:
        return None
    if not isinstance(step, Mapping) or not isinstance(step.get("labels"), Mapping):
        raise PlanError('`label` is null or {"field": ..., "labels": {"name": "what it means"}}')
    field = fields_.need(step.get("field"), "label.field", fields_.base)
    labels = [(_name(k, "label.labels"), str(v or "").strip()) for k, v in step["labels"].items()]
    if not labels or len({k.casefold() for k, _ in labels}) != len(labels):
        raise PlanError(f"`label.labels` must name one or more distinct labels, got {labels!r}")
    return field, tuple(labels)


def _join(step: Any, source: str, lists: Mapping[str, list[Record]], fields_: Fields) -> Any:
    if step is None:
        return None
    if not isinstance(step, Mapping):
        raise PlanError('`join` is null or {"from": record list, "key": its field, "in": field}')
    other = _name(step.get("from"), "join.from")
    if other not in lists or other == source:
        others = [n for n in lists if n != source]
        raise PlanError(f"`join.from`: {other!r} is not another record list; others: {others}")
    key = Fields(other, lists).need(step.get("key"), "join.key")
    within = fields_.need(step.get("in"), "join.in", fields_.base)
    fields_.add(*fields(lists[other]))
    return other, key, within


def _tests(raw: Any, where: str, fields_: Fields, label: Any) -> tuple[Test, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise PlanError(f"`{where}` is an object of field: value, got {raw!r}")
    tests = []
    for name, given in raw.items():
        field = fields_.need(name, where)
        if field == LABEL and label is not None:
            labels = [k for k, _ in label[1]]
            if given not in labels:
                raise PlanError(
                    f"`{where}`: {given!r} is not one of the labels: {', '.join(labels)}"
                )
            tests.append(Test(field, str(given)))
        else:
            tests.append(fields_.test(field, given, where))
    return tuple(tests)


def _optional_field(raw: Mapping[str, Any], key: str, fields_: Fields) -> str | None:
    return None if raw.get(key) is None else fields_.need(raw[key], key)


_NEEDS_GROUPS = ("count_per_group", "groups_with_all", "groups_changed")
_NEEDS_OF = ("most_common", "least_common", "values", "groups_changed")


def _check_result(plan: Plan) -> None:
    if plan.result in _NEEDS_GROUPS and plan.group_by is None:
        raise PlanError(
            f"`result` {plan.result} needs `group_by`: the field whose values are the groups"
        )
    if plan.result in _NEEDS_OF and plan.of is None:
        raise PlanError(f"`result` {plan.result} needs `of`: the field it reads")
    if plan.result == "groups_changed" and len(plan.needs) != 2:
        raise PlanError("`result` groups_changed needs two `needs`: the record before and after")
    if plan.result != "groups_changed" and plan.result != "groups_with_all" and plan.needs:
        raise PlanError(f"`needs` is for groups_with_all and groups_changed, not {plan.result}")
