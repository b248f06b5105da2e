"""A checked plan as the source of one REPL cell: the record operators, then plain Python.

The cell reads the records with `as_records`, keeps the records whose fields hold the `where`
values (no model call), asks the semantic steps (`llm_filter`, `llm_classify`, `llm_map`) of
the records left, joins, groups and ends with `FINAL(...)`. It is ordinary code: it runs in the
sandbox like the model's own, is traced as a cell, and a program replays it on new data.

    compile_plan(plan, "context")            -> source text
"""

from __future__ import annotations

from rlm_ray.plans.plan import EXTRACTED, LABEL, Plan, Test

UNKNOWN = "unknown"  # what llm_classify gives a record that fits no label
# An extracted name, compared and counted in one form: lower case, words only, no article.
_NORMALISE = '" ".join(re.findall(r"[a-z0-9]+", str(x).lower())).removeprefix("the ")'


def compile_plan(plan: Plan, source: str, other: str | None = None, query: str = "") -> str:
    """The cell that runs `plan`: `source` is the expression of its record list
    (``context``, or ``context["orders"]``), `other` that of the list it joins. With the
    user's `query`, a plan that finds nothing to name asks it of the whole input in one call
    (`_whole_input`) before it answers "none"."""
    lines = [
        f"# a plan, compiled by rlm-ray: {plan.result} over {plan.source!r}",
        f"rows = as_records({source})",
        'print(len(rows), "records")',
    ]
    if plan.where:
        where = plan.where
        lines += [f"rows = [r for r in rows if {_tests(where)}]", _count("with " + _shown(where))]
    lines += _seen(plan)
    lines += _keep_if(plan) + _label(plan) + _extract(plan) + _join(plan, other)
    if plan.then:
        then = plan.then
        lines += [f"rows = [r for r in rows if {_tests(then)}]", _count("with " + _shown(then))]
    return "\n".join(lines + _result(plan, query)) + "\n"


def _tests(tests: tuple[Test, ...]) -> str:
    return " and ".join(_test(test) for test in tests) or "True"


def _test(test: Test) -> str:
    field, value = test.field, test.value
    if test.prefix:
        return f"r.get({field!r}, '').startswith({value!r})"
    if field == EXTRACTED:
        return f"r.get({field!r}) == {value.lower().removeprefix('the ')!r}"
    return f"r.get({field!r}) == {value!r}"


def _shown(tests: tuple[Test, ...]) -> str:
    return ", ".join(f"{t.field} {t.value}{'...' if t.prefix else ''}" for t in tests)


def _count(what: str) -> str:
    return f"print(len(rows), {what!r})"


def _seen(plan: Plan) -> list[str]:
    """The groups and values there are before any record is dropped for its meaning: a
    per-group count names a group with no match (0), and least common a value with none."""
    lines = []
    if (
        plan.group_by
        and plan.result == "count_per_group"
        and plan.group_by not in (LABEL, EXTRACTED)
    ):
        lines.append(f"seen = sorted({{r.get({plan.group_by!r}, '') for r in rows}} - {{''}})")
    if plan.of and plan.result in ("most_common", "least_common"):
        if plan.of == LABEL:
            lines.append(f"seen = {list(plan.labels)!r}")
        elif plan.of != EXTRACTED:
            lines.append(f"seen = sorted({{r.get({plan.of!r}, '') for r in rows}} - {{''}})")
    return lines


def _keep_if(plan: Plan) -> list[str]:
    if plan.keep_if is None:
        return []
    field, condition = plan.keep_if
    return [
        f"kept = set(llm_filter({condition!r}, [r.get({field!r}, '') for r in rows]))",
        f"rows = [r for r in rows if r.get({field!r}, '') in kept]",
        _count(f"where {field}: {condition}"),
    ]


def _label(plan: Plan) -> list[str]:
    if plan.label is None:
        return []
    field, labels = plan.label
    return [
        f"labels = llm_classify([r.get({field!r}, '') for r in rows], {dict(labels)!r})",
        "for r, x in zip(rows, labels):",
        f"    r[{LABEL!r}] = x",
        f"print(collections.Counter(r[{LABEL!r}] for r in rows))",
    ]


def _extract(plan: Plan) -> list[str]:
    if plan.extract is None:
        return []
    field, question = plan.extract
    asked = f"{question.rstrip()} Answer in a few words."
    return [
        f"answers = llm_map({asked!r}, [r.get({field!r}, '') for r in rows])",
        "for r, x in zip(rows, answers):",
        f"    r[{EXTRACTED!r}] = {_NORMALISE}",
        f"print(collections.Counter(r[{EXTRACTED!r}] for r in rows).most_common(10))",
    ]


def _join(plan: Plan, other: str | None) -> list[str]:
    """Each kept record joined to the other list's records whose key it names: as one of its
    values (a logfmt line's `host=web-01`) or inside its text (a message citing "A-1042")."""
    if plan.join is None:
        return []
    name, key, _ = plan.join
    return [
        f"other = as_records({other or repr(name)})",
        "joined = []",
        "for r in rows:",
        "    text = ' '.join(str(v) for v in r.values())",
        r"    words = {str(v) for v in r.values()} | set(re.findall(r'[\w-]+(?:\.[\w-]+)*', text))",
        "    for o in other:",
        f"        k = o.get({key!r}, '')",
        "        if k and (k in words or (' ' in k and k in text)):",
        "            merged = dict(o)",
        "            merged.update(r)",
        "            joined.append(merged)",
        "rows = joined",
        _count(f"joined to {name} by {key}"),
    ]


def _whole_input(query: str, found: str) -> list[str]:
    """When the plan found nothing (`found` is empty), the query asked of the whole input in
    one plain call, as a direct reading would (a plan's empty answer to a question that asks
    for names is more often a wrong step than the truth: docs/plans.md). If the input does not
    fit the model's window the call is refused at once, and the plan's "none" stands."""
    if not query:
        return []
    return [
        f"if not {found}:",
        '    print("The plan found none: the query is asked of the whole input in one call.")',
        "    try:",
        f"        parts = [{query!r}]",
        "        named = context.items() if isinstance(context, dict) else [('Context', context)]",
        "        for name, part in named:",
        "            if isinstance(part, (list, tuple)):",
        "                part = '\\n'.join(str(x) for x in part)",
        "            parts += [name + ':', part]",
        "        FINAL(llm_query(parts))",
        "    except Exception as exc:",
        '        print("The whole input was not read:", exc)',
    ]


def _result(plan: Plan, query: str = "") -> list[str]:
    of, group = plan.of, plan.group_by
    if plan.result == "count":
        return ["FINAL(len(rows))"]
    if plan.result == "count_per_group":
        groups = "seen" if plan.group_by not in (LABEL, EXTRACTED) else "sorted(counts)"
        return [
            f"counts = collections.Counter(r.get({group!r}, '') for r in rows)",
            f'FINAL(", ".join(f"{{g}}: {{counts[g]}}" for g in {groups}))',
        ]
    if plan.result in ("most_common", "least_common"):
        sign = "-" if plan.result == "most_common" else ""
        seen = "seen" if of != EXTRACTED else "list(counts)"
        return [
            f"counts = collections.Counter(r.get({of!r}, '') for r in rows)",
            f"ranked = sorted({seen}, key=lambda v: {sign}counts[v])",
            f"ranked = [v for v in ranked if v not in ('', {UNKNOWN!r})]",
            "print([(v, counts[v]) for v in ranked])",
            *_whole_input(query, "ranked"),
            'FINAL(ranked[0] if ranked else "none")',
        ]
    if plan.result == "values":
        return [
            f"result = sorted({{r.get({of!r}, '') for r in rows}} - {{'', {UNKNOWN!r}}})",
            *_whole_input(query, "result"),
            'FINAL(", ".join(result) if result else "none")',
        ]
    lines = [
        "groups = {}",
        "for r in rows:",
        f"    groups.setdefault(r.get({group!r}, ''), []).append(r)",
    ]
    if plan.result == "groups_with_all":
        every = " and ".join(f"any({_tests(need)} for r in members)" for need in plan.needs)
        lines.append(
            f"result = sorted(g for g, members in groups.items() if g and {every or 'True'})"
        )
    else:
        before, after = (_tests(need) for need in plan.needs)
        lines += [
            "result = []",
            "for g, members in sorted(groups.items()):",
            f"    before = [r.get({of!r}) for r in members if {before}]",
            f"    after = [r.get({of!r}) for r in members if {after}]",
            "    if g and before and after and before[0] != after[0]:",
            "        result.append(g)",
        ]
    return [
        *lines,
        *_whole_input(query, "result"),
        'FINAL(", ".join(result) if result else "none")',
    ]
