"""The composite families of the quality benchmark (benchmarks/composite_tasks.py): dev and
held-out domains apart, answers recomputed from the generated text, scoring."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import composite_tasks as ct  # noqa: E402
import quality_tasks as qt  # noqa: E402


def _tasks(family: str, split: str, n: int = 6, size: int = 60) -> list[qt.Task]:
    return qt.make_tasks(family, size, split, n)


def test_dev_and_heldout_domains_share_no_domain_format_or_wording():
    dev = [d for family in ct.FAMILIES for d in ct.domains(family, "dev")]
    held = [d for family in ct.FAMILIES for d in ct.domains(family, "heldout")]
    assert {d["name"] for d in dev}.isdisjoint({d["name"] for d in held})
    assert {d.get("format") for d in dev}.isdisjoint({d.get("format") for d in held} - {None})
    wordings = lambda ds: {p for d in ds for k in d if k.endswith("phrasings") for p in d[k]}  # noqa: E731
    assert wordings(dev).isdisjoint(wordings(held))
    for family in ct.FAMILIES:  # one dev domain to tune on, two held out
        assert (len(ct.domains(family, "dev")), len(ct.domains(family, "heldout"))) == (1, 2)


@pytest.mark.parametrize("family", ct.FAMILIES)
def test_tasks_are_deterministic_and_the_splits_apart(family):
    assert _tasks(family, "dev", 3) == _tasks(family, "dev", 3)
    dev, held = _tasks(family, "dev"), _tasks(family, "heldout")
    assert {t.seed for t in dev}.isdisjoint({t.seed for t in held})
    assert all(".d" in t.phrasing.rsplit(".", 1)[-1] or t.phrasing[-2] == "d" for t in dev)
    assert {t.query for t in dev}.isdisjoint({t.query for t in held})


# -- the truth, recomputed from the text -----------------------------------------------------------
def _kind_of(spec: dict, text: str) -> str:
    """The kind whose template the text fills (tested: exactly one)."""
    found = set()
    for kind, templates in spec["kinds"].items():
        for template in templates:
            pattern = re.sub(r"\\{\w+\\}", ".+?", re.escape(template))
            if re.fullmatch(pattern, text):
                found.add(kind)
    assert len(found) == 1, (text, found)
    return found.pop()


def _rows(spec: dict, text: str) -> list[dict[str, str]]:
    """The records back from their text, by the domain's column names."""
    names = [name for name, _ in spec["columns"]]
    kind = spec["format"]
    if kind == "pipe":
        return [dict(zip(names, line.split(" | "))) for line in text.splitlines()]
    if kind == "tsv":
        return [dict(zip(names, line.split("\t"))) for line in text.splitlines()[1:]]
    if kind == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    if kind == "jsonl":
        return [{k: str(v) for k, v in json.loads(line).items()} for line in text.splitlines()]
    if kind == "logfmt":
        pairs = r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)'
        return [
            {k: json.loads(v) if v.startswith('"') else v for k, v in re.findall(pairs, line)}
            for line in text.splitlines()
        ]
    return [dict(re.findall(r"^(\w+): (.*)$", b, re.MULTILINE)) for b in text.split("\n\n")]


def _spec(task: qt.Task) -> dict:
    name = task.phrasing.split(".")[1]
    return next(d for d in ct.domains(task.family, task.split) if d["name"] == name)


def _column(spec: dict, key: str) -> str:
    return next(name for name, k in spec["columns"] if k == key)


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_sets_and_changed_recomputed(split):
    for task in _tasks("sets", split) + _tasks("changed", split):
        spec = _spec(task)
        rows = _rows(spec, task.documents[0])
        entity, text = _column(spec, "entity"), _column(spec, "text")
        kinds: dict[str, set] = {}
        for row in rows:
            kind = _kind_of(spec, row[text])
            key = kind if task.family == "sets" else (row[_column(spec, "date")], kind)
            kinds.setdefault(row[entity], set()).add(key)
        if task.family == "sets":
            want = {e for e, ks in kinds.items() if {spec["a"], spec["b"]} <= ks}
        else:
            (first, last), a, b = spec["dates"], spec["from"], spec["to"]
            want = {e for e, ks in kinds.items() if (first, a) in ks and (last, b) in ks}
        assert set(task.expected) == want and 2 <= len(want) < len(kinds), task.id


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_argmax_and_groups_recomputed(split):
    for task in _tasks("argmax", split) + _tasks("groups", split):
        spec = _spec(task)
        rows = _rows(spec, task.documents[0])
        text = _column(spec, "text")
        hits, totals = Counter(), Counter()
        for row in rows:
            if task.family == "groups":
                value = row[spec["group_field"]]
            elif spec["attribute"] == "entity":
                value = row[_column(spec, "entity")]
            else:
                [value] = [v for v in spec["values"] if v in row[text]]
            totals[value] += 1
            hits[value] += _kind_of(spec, row[text]) == spec["target"]
        if task.family == "groups":
            assert dict(task.expected) == {g: hits[g] for g in spec["groups"]}
        else:
            (top, n), (_, second) = hits.most_common(2)
            assert top == task.expected and n > second
            assert totals.most_common(1)[0][0] != top  # one step (no filter) gets it wrong


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_join_recomputed(split):
    for task in _tasks("join", split):
        spec = _spec(task)
        assert task.input_kind == "dict" and task.names == (spec["left_name"], spec["right_name"])
        left, right = task.documents
        owner_of = {}
        for line in left.splitlines()[1 if spec["left_header"] else 0 :]:
            key = re.match(r"(?:order )?([\w-]+)", line).group(1)
            owner_of[key] = next(o for o in spec["owners"] if o in line)
        want = set()
        for row in _rows(spec, right):
            if _kind_of(spec, row[_column(spec, "text")]) != spec["target"]:
                continue
            if spec["right"] == "field":
                cited = [row[_column(spec, "key")]]
            else:
                cited = [k for k in owner_of if k in row[_column(spec, "text")]]
            want |= {owner_of[k] for k in cited}
        assert set(task.expected) == want and len(want) >= 2, task.id


@pytest.mark.parametrize("split", ["dev", "heldout"])
def test_files_recomputed(split):
    seen = set()
    for task in _tasks("files", split, 8):
        spec = _spec(task)
        assert task.input_kind == "dir" and len(set(task.names)) == len(task.names)
        docs = []
        for doc in task.documents:
            head, body = doc.split("\n\n", 1)
            fields = [line.split(": ", 1)[1] for line in head.splitlines()[:2]]
            text = next(body[: -len(n) - 2] for n in ct.FILE_NOTES if body.endswith(f"{n}\n"))
            docs.append((*fields, _kind_of(spec, text)))
        if ".set." in task.id:  # the header's first field is the author in every domain but
            by = {}  # the minutes, whose first is the team
            author = 1 if spec["name"] == "minutes-files" else 0
            for doc in docs:
                by.setdefault(doc[author], set()).add(doc[2])
            want = {a for a, ks in by.items() if {spec["a"], spec["b"]} <= ks}
            assert set(task.expected) == want and len(want) >= 2
        else:
            site = 0 if spec["name"] == "minutes-files" else 1
            (top, n), (_, second) = Counter(d[site] for d in docs if d[2] == spec["a"]).most_common(
                2
            )
            assert top == task.expected and n > second
        seen.add(task.phrasing.split(".")[2])
    assert seen == {"set", "argmax"}


# -- scoring --------------------------------------------------------------------------------------
def test_entity_sets_values_and_group_counts_are_read_from_prose():
    task = _tasks("sets", "dev", 1)[0]
    names = list(task.expected)
    assert ct.score(task, ", ".join(names)) == 1.0
    assert ct.score(task, f"Only {names[0]}.") == pytest.approx(2 / (1 + len(names)))
    assert ct.score(task, "No users.") == 0.0
    assert ct.named("web-01 and web-011, not web-1", ("web-01", "web-1", "web-11")) == {
        "web-01",
        "web-1",
    }
    assert ct.first_named("Mostly Beacon, then Atlas", ("Atlas", "Beacon")) == "Beacon"
    text = "checkout: 3, search 1\n{'login': 0}\n2 (payments)"
    counts = ct.group_counts(text, ("checkout", "search", "login", "payments", "cdn"))
    assert counts == {"checkout": 3, "search": 1, "login": 0, "payments": 2, "cdn": 0}
    groups = _tasks("groups", "dev", 1)[0]
    perfect = ", ".join(f"{g}: {n}" for g, n in groups.expected)
    assert ct.score(groups, perfect) == 1.0 and ct.score(groups, "") < 1.0
