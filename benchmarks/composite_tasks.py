"""The composite families of the quality benchmark (issue 27): questions with more than one step.

  sets     entities with a record of kind A and another of kind B (F1 over entities)
  argmax   among the records of one kind, the most common value of an attribute (a field, or
           a name inside the text) (exact)
  groups   per group (a field), how many records are of one kind (mean 0.75^|error|)
  join     two record lists: the owners (left) of keys that records of one kind (right) cite
           or carry (F1)
  changed  entities whose status was X on one date and Y on another (F1)
  files    a directory of report files: authors with reports of kinds A and B (F1), or the
           site with the most reports of one kind (exact)

Each family has one dev domain (`domains_dev.py`, for tuning), two held-out domains
(`domains_heldout.py`, never tuned on, but run twice since) and one final domain
(`domains_final.py`, written 2026-12-08 for the final table, to be run once), each with its own
record format and wording. Task i of a split uses domain ``i % len(domains)`` and seed
``SPLIT_SEED_BASE[split] + i``; the truth is computed from the generated records. Standard
library only.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter
from typing import Any

import domains_dev
import domains_final
import domains_heldout

FAMILIES = ("sets", "argmax", "groups", "join", "changed", "files")
DOMAINS = {"dev": domains_dev.DEV, "heldout": domains_heldout.HELDOUT, "final": domains_final.FINAL}
SPLIT_SEED_BASE = {"dev": 0, "heldout": 100_000, "final": 200_000}
SPLIT_TAGS = {"dev": "d", "heldout": "h", "final": "f"}  # the last letter of a task's phrasing
DATES = tuple(f"2026-03-{day:02d}" for day in range(1, 15))
FILE_NOTES = (
    "Photos are attached to the form.",
    "Follow-up booked with the site lead.",
    "Logged by phone, details confirmed by email.",
    "Previous report on this topic is linked below.",
    "No customer impact reported beyond this note.",
)


def domains(family: str, split: str) -> tuple[dict[str, Any], ...]:
    return DOMAINS[split][family]


def make(family: str, size: int, split: str, n: int, task_type: type) -> list[Any]:
    """The first `n` tasks of a composite `family` in `split` (`task_type`: quality_tasks.Task)."""
    build = {
        "sets": sets_task,
        "argmax": argmax_task,
        "groups": groups_task,
        "join": join_task,
        "changed": changed_task,
        "files": files_task,
    }[family]
    base = SPLIT_SEED_BASE[split]
    found = domains(family, split)
    tasks = []
    for i in range(n):
        spec, seed = found[i % len(found)], base + i
        rng = random.Random(f"{family}:{spec['name']}:{size}:{seed}")
        fields = build(spec, size, rng)
        queries = fields.pop("queries")
        number = rng.randrange(len(queries))
        kind = fields.pop("question", "")
        tag = SPLIT_TAGS[split]
        tasks.append(
            task_type(
                family=family,
                size=size,
                seed=seed,
                split=split,
                phrasing=f"{family}.{spec['name']}.{kind}{tag}{number + 1}",
                query=queries[number],
                **fields,
            )
        )
    return tasks


# -- texts and records ------------------------------------------------------------------------------
def fill(template: str, slots: dict[str, Any], rng: random.Random, **fixed: str) -> str:
    """`template` with every {slot} filled: `fixed` values first, else a random one."""
    names = re.findall(r"{(\w+)}", template)
    values = {n: fixed[n] if n in fixed else rng.choice(slots[n]) for n in names}
    return template.format(**values)


class Texts:
    """Distinct texts: a template of the kind, filled, never the same text twice."""

    def __init__(self, spec: dict[str, Any], rng: random.Random) -> None:
        self.spec, self.rng, self.seen = spec, rng, set()

    def make(self, kind: str, **fixed: str) -> str:
        for _ in range(200):
            template = self.rng.choice(self.spec["kinds"][kind])
            text = fill(template, self.spec["slots"], self.rng, **fixed)
            if text not in self.seen:
                self.seen.add(text)
                return text
        return text  # the slots ran out: a repeat is still a record of its kind


def record(spec: dict[str, Any], rng: random.Random, kind: str, text: str, **fields: str) -> dict:
    """One record's values by key (date, entity, text, group, ...), the kind's own fields too."""
    values = {"kind": kind, "text": text, "date": rng.choice(DATES), **fields}
    values.setdefault("timestamp", f"{values['date']}T{rng.randrange(24):02d}:"
                      f"{rng.randrange(60):02d}:{rng.randrange(60):02d}Z")  # fmt: skip
    for name, by_kind in spec.get("kind_fields", {}).items():
        values.setdefault(name, rng.choice(by_kind[kind]))
    if "speakers" in spec:
        values.setdefault("speaker", rng.choice(spec["speakers"]))
    return values


def render(spec: dict[str, Any], records: list[dict]) -> str:
    """The records in the domain's format (`spec["format"]`, columns `spec["columns"]`)."""
    columns = spec["columns"]
    rows = [[str(r.get(key, "")) for _, key in columns] for r in records]
    names = [name for name, _ in columns]
    kind = spec["format"]
    if kind == "pipe":
        return "\n".join(" | ".join(row) for row in rows)
    if kind == "tsv":
        return "\n".join("\t".join(row) for row in [names, *rows])
    if kind == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([names, *rows])
        return out.getvalue().rstrip("\n")
    if kind == "jsonl":
        return "\n".join(
            json.dumps({n: int(v) if v.isdigit() else v for n, v in zip(names, row)})
            for row in rows
        )
    if kind == "logfmt":
        return "\n".join(" ".join(f"{n}={_logfmt(v)}" for n, v in zip(names, row)) for row in rows)
    if kind == "blocks":
        return "\n\n".join("\n".join(f"{n}: {v}" for n, v in zip(names, row)) for row in rows)
    raise ValueError(f"unknown format {kind!r}")


def _logfmt(value: str) -> str:
    return json.dumps(value) if re.search(r'[\s="]', value) else value


def text_input(spec: dict[str, Any], records: list[dict]) -> dict[str, Any]:
    """The fields of a task whose input is the records as one text."""
    text = render(spec, records)
    return {"input_kind": "str", "documents": (text,), "names": ("records.txt",), "joiner": ""}


def share(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` random non-negative counts."""
    cuts = sorted(rng.randrange(total + 1) for _ in range(parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]


def other_kinds(spec: dict[str, Any], *excluded: str) -> list[str]:
    return [k for k in spec["kinds"] if k not in excluded]


# -- families -------------------------------------------------------------------------------------
def sets_task(spec: dict[str, Any], size: int, rng: random.Random) -> dict[str, Any]:
    entities = rng.sample(spec["entities"], min(len(spec["entities"]), max(6, size // 4)))
    texts, records = Texts(spec, rng), []
    both = _profiles(entities, rng)
    counts = [max(2, c) for c in share(size, len(entities), rng)]
    for entity, count in zip(entities, counts):
        profile = both[entity]
        kinds = [k for k in ("a", "b") if k in profile]
        allowed = other_kinds(spec, *(spec[x] for x in ("a", "b") if x not in profile))
        kinds = [spec[k] for k in kinds] + [rng.choice(allowed) for _ in range(count - len(kinds))]
        for kind in kinds:
            group = {"group": rng.choice(spec["groups"])} if "groups" in spec else {}
            records.append(record(spec, rng, kind, texts.make(kind), entity=entity, **group))
    rng.shuffle(records)
    expected = tuple(sorted(e for e in entities if both[e] == "ab"))
    return {
        **text_input(spec, records),
        "queries": spec["phrasings"],
        "expected": expected,
        "metric": "f1set",
        "labels": tuple(entities),
    }


def _profiles(entities: list[str], rng: random.Random) -> dict[str, str]:
    """Which of kinds A and B each entity has: "ab", "a", "b" or "" (at least two "ab", one
    "a" and one "b")."""
    while True:
        profiles = {e: rng.choices(("ab", "a", "b", ""), (3, 2, 2, 3))[0] for e in entities}
        tally = Counter(profiles.values())
        if tally["ab"] >= 2 and tally["a"] >= 1 and tally["b"] >= 1:
            return profiles


def argmax_task(spec: dict[str, Any], size: int, rng: random.Random) -> dict[str, Any]:
    values = list(spec["values"])
    target, others = spec["target"], other_kinds(spec, spec["target"])
    winner, loud = rng.sample(values, 2)  # the target kind's top; the top over all records
    while True:
        top = rng.randint(4, 6)
        hits = {v: top if v == winner else rng.randint(0, top - 2) for v in values}
        rest = share(max(0, size - sum(hits.values())), len(values), rng)
        totals = {v: hits[v] + r for v, r in zip(values, rest)}
        ranked = sorted(totals.values(), reverse=True)
        if max(totals, key=totals.__getitem__) == loud and ranked[0] > ranked[1]:
            break
    texts, records = Texts(spec, rng), []
    for value in values:
        kinds = [target] * hits[value] + [
            rng.choice(others) for _ in range(totals[value] - hits[value])
        ]
        for kind in kinds:
            records.append(_attributed(spec, rng, texts, kind, value))
    rng.shuffle(records)
    return {
        **text_input(spec, records),
        "queries": spec["phrasings"],
        "expected": winner,
        "metric": "value",
        "labels": tuple(values),
    }


def _attributed(spec: dict, rng: random.Random, texts: Texts, kind: str, value: str) -> dict:
    """A record whose attribute is `value`: its entity field, or a name in its text."""
    if spec["attribute"] == "entity":
        return record(spec, rng, kind, texts.make(kind), entity=value)
    entity = rng.choice(spec["entities"])
    group = {"group": rng.choice(spec["groups"])} if "groups" in spec else {}
    text = texts.make(kind, **{spec["attribute"]: value})
    return record(spec, rng, kind, text, entity=entity, **group)


def groups_task(spec: dict[str, Any], size: int, rng: random.Random) -> dict[str, Any]:
    groups, target = list(spec["groups"]), spec["target"]
    while True:
        hits = {g: rng.randint(0, 6) for g in groups}
        if len(set(hits.values())) >= 3:
            break
    rest = share(max(len(groups), size - sum(hits.values())), len(groups), rng)
    texts, records = Texts(spec, rng), []
    for n, group in enumerate(groups):
        kinds = [target] * hits[group] + [
            rng.choice(other_kinds(spec, target)) for _ in range(rest[n])
        ]
        for kind in kinds:
            entity = {"entity": rng.choice(spec["entities"])} if "entities" in spec else {}
            fields = {"group": group, "id": spec.get("id_format", "{n}").format(n=len(records) + 1)}
            records.append(record(spec, rng, kind, texts.make(kind), **entity, **fields))
    rng.shuffle(records)
    for n, r in enumerate(records, 1):  # ids in the order the records are listed
        r["id"] = spec.get("id_format", "{n}").format(n=n)
    return {
        **text_input(spec, records),
        "queries": spec["phrasings"],
        "expected": tuple((g, hits[g]) for g in groups),
        "metric": "groups",
        "labels": tuple(groups),
    }


def join_task(spec: dict[str, Any], size: int, rng: random.Random) -> dict[str, Any]:
    owners = rng.sample(spec["owners"], min(len(spec["owners"]), 8))
    keys = _keys(spec, rng, sum(1 for _ in owners) * 2)
    owned = {key: owners[i % len(owners)] for i, key in enumerate(keys)}
    hit_owners = set(rng.sample(owners, max(2, len(owners) * 2 // 5)))
    # subtle: drawn in the owners' list order, not the set's, whose order of strings changes with
    # PYTHONHASHSEED: so a task is the same in every process (a --list and the run it previews)
    hit_keys = {rng.choice([k for k in keys if owned[k] == o]) for o in owners if o in hit_owners}
    texts, records = Texts(spec, rng), []
    for key in keys:
        kinds = ["other"] * rng.randint(0, 2) + ([spec["target"]] if key in hit_keys else [])
        for kind in kinds:
            records.append(record(spec, rng, kind, texts.make(kind, key=key), key=key))
    while len(records) < size - len(keys):
        key = rng.choice(keys)
        records.append(record(spec, rng, "other", texts.make("other", key=key), key=key))
    rng.shuffle(records)
    records.sort(key=lambda r: r["date"])
    left = [spec["left_format"].format(key=k, owner=owned[k], day=rng.randint(1, 28)) for k in keys]
    rng.shuffle(left)
    left_text = "\n".join(([spec["left_header"]] if spec["left_header"] else []) + left)
    parts = (spec["left_name"], spec["right_name"])
    return {
        "input_kind": "dict",
        "documents": (left_text, render(spec, records)),
        "names": parts,
        "joiner": "\n\n",
        "queries": spec["phrasings"],
        "expected": tuple(sorted(owned[k] for k in hit_keys if owned[k] in hit_owners)),
        "metric": "f1set",
        "labels": tuple(owners),
    }


def _keys(spec: dict[str, Any], rng: random.Random, n: int) -> list[str]:
    keys: set[str] = set()
    while len(keys) < n:
        number = rng.randrange(10_000, 99_999) if "05d" in spec["key_format"] else None
        if "prefix" in spec["key_format"]:
            prefix, number = rng.choice(spec["key_prefixes"]), rng.randrange(1, 60)
            keys.add(spec["key_format"].format(prefix=prefix, n=number))
        else:
            keys.add(spec["key_format"].format(n=number or rng.randrange(100, 999)))
    return sorted(keys)


def changed_task(spec: dict[str, Any], size: int, rng: random.Random) -> dict[str, Any]:
    entities = rng.sample(spec["entities"], min(len(spec["entities"]), max(8, size // 2)))
    first, last = spec["dates"]
    middle = f"{first[:8]}{(int(first[8:]) + int(last[8:])) // 2:02d}"
    kinds = list(spec["kinds"])
    while True:
        states = {e: (rng.choice(kinds), rng.choice(kinds)) for e in entities}
        hits = [e for e, s in states.items() if s == (spec["from"], spec["to"])]
        if 2 <= len(hits) <= len(entities) // 2:
            break
    texts, records = Texts(spec, rng), []
    for date, index in ((first, 0), (middle, None), (last, 1)):
        day = []
        for entity in entities:
            if index is None and rng.random() < 0.5:
                continue
            kind = states[entity][index] if index is not None else rng.choice(kinds)
            day.append(record(spec, rng, kind, texts.make(kind), entity=entity, date=date))
        rng.shuffle(day)
        records += day
    return {
        **text_input(spec, records),
        "queries": spec["phrasings"],
        "expected": tuple(sorted(hits)),
        "metric": "f1set",
        "labels": tuple(entities),
    }


def files_task(spec: dict[str, Any], size: int, rng: random.Random) -> dict[str, Any]:
    question = rng.choice(("set", "argmax"))
    texts = Texts(spec, rng)
    if question == "set":
        authors = list(spec["authors"])
        both = _profiles(authors, rng)
        docs: list[tuple[str, str, str]] = []  # author, site, kind
        for author, count in zip(authors, [max(2, c) for c in share(size, len(authors), rng)]):
            kinds = [spec[x] for x in ("a", "b") if x in both[author]]
            allowed = other_kinds(spec, *(spec[x] for x in ("a", "b") if x not in both[author]))
            kinds += [rng.choice(allowed) for _ in range(count - len(kinds))]
            docs += [(author, rng.choice(spec["sites"]), kind) for kind in kinds]
        expected: Any = tuple(sorted(a for a in authors if both[a] == "ab"))
        metric, vocabulary, phrasings = "f1set", tuple(authors), spec["set_phrasings"]
    else:
        sites, target = list(spec["sites"]), spec["a"]
        winner, loud = rng.sample(sites, 2)
        while True:
            hits = {s: 5 if s == winner else rng.randint(0, 3) for s in sites}
            rest = share(max(0, size - sum(hits.values())), len(sites), rng)
            totals = {s: hits[s] + r for s, r in zip(sites, rest)}
            ranked = sorted(totals.values(), reverse=True)
            if max(totals, key=totals.__getitem__) == loud and ranked[0] > ranked[1]:
                break
        others = other_kinds(spec, target)
        docs = [
            (rng.choice(spec["authors"]), site, kind)
            for site in sites
            for kind in [target] * hits[site]
            + [rng.choice(others) for _ in range(rest[sites.index(site)])]
        ]
        expected, metric, vocabulary = winner, "value", tuple(sites)
        phrasings = spec["argmax_phrasings"]
    rng.shuffle(docs)
    documents, names = [], []
    for n, (author, site, kind) in enumerate(docs, 1):
        date = rng.choice(DATES)
        head = spec["header"].format(author=author, site=site, date=date, n=n)
        documents.append(f"{head}\n\n{texts.make(kind)} {rng.choice(FILE_NOTES)}\n")
        names.append(spec["path"].format(site=site.replace(" ", "-"), date=date, n=n))
    return {
        "input_kind": "dir",
        "documents": tuple(documents),
        "names": tuple(names),
        "joiner": "\n\n",
        "queries": phrasings,
        "question": f"{question}.",
        "expected": expected,
        "metric": metric,
        "labels": vocabulary,
    }


# -- scoring --------------------------------------------------------------------------------------
def _mentions(answer: str, name: str) -> list[int]:
    pattern = rf"(?<![\w-]){re.escape(name)}(?![\w-])"
    return [m.start() for m in re.finditer(pattern, answer, re.IGNORECASE)]


def named(answer: str, vocabulary: tuple[str, ...]) -> set[str]:
    """The names of `vocabulary` that `answer` mentions (whole names, any case)."""
    return {name for name in vocabulary if _mentions(answer, name)}


def first_named(answer: str, vocabulary: tuple[str, ...]) -> str | None:
    found = [(min(_mentions(answer, v)), v) for v in vocabulary if _mentions(answer, v)]
    return min(found)[1] if found else None


def group_counts(answer: str, groups: tuple[str, ...]) -> dict[str, int]:
    """The number the answer gives after (or just before) each group's name; 0 if none."""
    counts = {}
    for group in groups:
        where = _mentions(answer, group)
        after = re.match(r"\W{0,6}?(\d+)", answer[where[0] + len(group) :]) if where else None
        before = re.search(r"(\d+)\W{0,6}$", answer[: where[0]]) if where and not after else None
        found = after or before
        counts[group] = int(found.group(1)) if found else 0
    return counts


def f1(predicted: set, gold: set) -> float:
    """F1 of two sets; 1.0 when both are empty."""
    hits = len(predicted & gold)
    if not predicted and not gold:
        return 1.0
    return 0.0 if hits == 0 else 2 * hits / (len(predicted) + len(gold))


def score(task: Any, answer: str) -> float:
    """A composite task's score of `answer`, in [0, 1]."""
    if task.metric == "f1set":
        return f1(named(answer, task.labels), set(task.expected))
    if task.metric == "value":
        return float(first_named(answer, task.labels) == task.expected)
    if task.metric == "groups":
        got = group_counts(answer, task.labels)
        return sum(0.75 ** abs(got[g] - n) for g, n in task.expected) / len(task.expected)
    raise ValueError(f"not a composite metric: {task.metric!r}")
