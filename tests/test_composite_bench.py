"""The composite families of the quality benchmark (benchmarks/composite_tasks.py): dev, held-out
and final domains apart, answers recomputed from the generated text, scoring."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import composite_tasks as ct  # noqa: E402
import quality_tasks as qt  # noqa: E402

SPLITS = ("dev", "heldout", "final")


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


def _wordings(domains: list[dict]) -> set[str]:
    return {p for d in domains for k in d if k.endswith("phrasings") for p in d[k]}


def test_final_domains_are_new_subjects_with_their_own_wording():
    """One final domain per family (the split for the final table, domains_final.py), none
    named or worded like a dev or held-out domain."""
    earlier = [d for split in ("dev", "heldout") for f in ct.FAMILIES for d in ct.domains(f, split)]
    final = [d for family in ct.FAMILIES for d in ct.domains(family, "final")]
    assert all(len(ct.domains(family, "final")) == 1 for family in ct.FAMILIES)
    assert len({d["name"] for d in final}) == len(final)
    assert {d["name"] for d in final}.isdisjoint({d["name"] for d in earlier})
    assert _wordings(final).isdisjoint(_wordings(earlier))
    for family in ct.FAMILIES:  # a record format of its own where the family has one
        used = {d.get("format") for split in ("dev", "heldout") for d in ct.domains(family, split)}
        assert ct.domains(family, "final")[0].get("format") not in used - {None}, family


@pytest.mark.parametrize("family", ct.FAMILIES)
def test_final_split_builds_every_family_with_a_truth(family):
    tasks = _tasks(family, "final", 4, 50)
    assert [t.seed for t in tasks] == [200_000, 200_001, 200_002, 200_003]
    assert all(t.split == "final" and t.phrasing[-2] == "f" and t.expected for t in tasks)
    finals = {t.query for t in tasks}
    assert finals.isdisjoint({t.query for s in ("dev", "heldout") for t in _tasks(family, s, 4)})


@pytest.mark.parametrize("family", ct.FAMILIES)
def test_final_inputs_are_about_the_held_out_size(family):
    """At 50 records a final input is within 0.6x..1.3x the held-out inputs' range of
    characters, so the final table is neither a shorter nor a longer test."""
    held = [len(t.text()) for t in _tasks(family, "heldout", 6, 50)]
    final = [len(t.text()) for t in _tasks(family, "final", 6, 50)]
    assert 0.6 * min(held) <= min(final) and max(final) <= 1.3 * max(held), (held, final)


def test_tasks_are_the_same_in_every_process():
    """A task is what its seed says whatever the process's string hashing, so a `--list` shows
    the tasks the run then asks (join drew its keys in a set's order: other tasks per run)."""
    code = (
        "import hashlib, composite_tasks as ct, quality_tasks as qt; print(hashlib.sha256(repr("
        "[qt.make_tasks(f, 50, s, 2) for f in ct.FAMILIES for s in ct.SPLIT_SEED_BASE]"
        ").encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=BENCHMARKS, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        digests.add(run.stdout)
    assert len(digests) == 1


def test_single_step_families_refuse_the_final_split():
    for family in qt.SINGLE_STEP:
        with pytest.raises(ValueError, match="composite families only"):
            qt.make_tasks(family, 50, "final", 1)


@pytest.mark.parametrize("family", ct.FAMILIES)
def test_tasks_are_deterministic_and_the_splits_apart(family):
    assert _tasks(family, "dev", 3) == _tasks(family, "dev", 3)
    dev, held, final = (_tasks(family, split) for split in SPLITS)
    assert {t.seed for t in dev}.isdisjoint({t.seed for t in held})
    assert {t.seed for t in final}.isdisjoint({t.seed for t in dev + held})
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


@pytest.mark.parametrize("split", SPLITS)
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


@pytest.mark.parametrize("split", SPLITS)
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


@pytest.mark.parametrize("split", SPLITS)
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


@pytest.mark.parametrize("split", SPLITS)
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
        site_first = spec["header"].index("{site}") < spec["header"].index("{author}")
        if ".set." in task.id:  # the header's first two fields: author and site, either order
            by = {}
            author = 1 if site_first else 0
            for doc in docs:
                by.setdefault(doc[author], set()).add(doc[2])
            want = {a for a, ks in by.items() if {spec["a"], spec["b"]} <= ks}
            assert set(task.expected) == want and len(want) >= 2
        else:
            site = 0 if site_first else 1
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
