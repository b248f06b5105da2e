"""The quality benchmark (benchmarks/quality.py, quality_tasks.py): tasks, splits, scoring, and one
tiny end-to-end run against the scripted server."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import quality  # noqa: E402
import quality_tasks as qt  # noqa: E402

from rlm_ray.testing import Request  # noqa: E402

SIZES = {"needle": 10_000, "oolong": 120, "pairs": 80, "corpus": 60}


def _tasks(split: str, n: int = 12) -> list[qt.Task]:
    kinds = ("str", "list", "dir", "table")
    return [t for f, size in SIZES.items() for t in qt.make_tasks(f, size, split, n, kinds)]


# -- generation -----------------------------------------------------------------------------------
def test_tasks_are_deterministic_per_seed():
    assert _tasks("dev", 4) == _tasks("dev", 4)
    a, b = qt.oolong_task(200, 7, "dev"), qt.oolong_task(200, 8, "dev")
    assert a.documents != b.documents


def test_dev_and_heldout_share_no_seed_and_no_phrasing():
    dev, heldout = _tasks("dev"), _tasks("heldout")
    assert {t.seed for t in dev}.isdisjoint({t.seed for t in heldout})
    dev_phrasings = {t.phrasing for t in dev}
    held_phrasings = {t.phrasing for t in heldout}
    assert dev_phrasings.isdisjoint(held_phrasings)
    assert all(re.search(r"\.d\d$", p) for p in dev_phrasings)
    assert all(re.search(r"\.h\d$", p) for p in held_phrasings)
    for group, phrasings in qt.PHRASINGS.items():  # the templates themselves differ
        dev_texts = {text for _, text in qt.phrasings(group, "dev")}
        held_texts = {text for _, text in qt.phrasings(group, "heldout")}
        assert dev_texts and held_texts and dev_texts.isdisjoint(held_texts), group
        assert len(dev_texts) + len(held_texts) == len(phrasings)


def test_every_label_template_and_message_is_distinct():
    messages = [
        qt.message(label, i)[0] for label in qt.LABELS for i in range(qt.MESSAGES_PER_LABEL)
    ]
    assert len(set(messages)) == len(messages) == 5 * 1280


@pytest.mark.parametrize("family", ["oolong", "pairs"])
def test_records_are_distinct(family):
    task = qt.make_tasks(family, 1000, "dev", 1)[0]
    messages = [line.split(" | ", 2)[2] for line in task.documents]
    assert len(set(messages)) == len(messages) == 1000


def _parse(line: str) -> tuple[str, int, str]:
    date, user, text = line.split(" | ", 2)
    return date, int(user.removeprefix("user ")), LABEL_OF[text]


LABEL_OF = {qt.message(label, i)[0]: label for label in qt.LABELS for i in range(1280)}


def test_oolong_answers_recomputed_from_the_text():
    """The expected answer, recomputed from the documents and the question's own words."""
    seen_kinds = set()
    for task in [t for t in _tasks("dev", 30) + _tasks("heldout", 30) if t.family == "oolong"]:
        records = [_parse(line) for line in task.documents]
        counts = Counter(label for _, _, label in records)
        kind = task.phrasing.split(".")[1]
        seen_kinds.add(kind)
        question = task.query.split(qt.LABEL_HELP)[1]
        label = next((x for x in qt.LABELS if re.search(rf"\b{x}\b", question)), None)
        if kind == "most":
            assert counts.most_common(1)[0][0] == task.expected
            assert sorted(counts.values())[-1] != sorted(counts.values())[-2]
        elif kind == "least":
            full = sorted(counts.get(x, 0) for x in qt.LABELS)
            assert full[0] != full[1]
            assert min(qt.LABELS, key=lambda x: counts.get(x, 0)) == task.expected
        elif kind == "count":
            assert counts[label] == task.expected
        elif kind == "user":
            user = int(re.search(r"user (\d+)", question).group(1))
            assert sum(u == user and x == label for _, u, x in records) == task.expected
        else:
            date = re.search(r"\d{4}-\d{2}-\d{2}", question).group(0)
            assert sum(d == date and x == label for d, _, x in records) == task.expected
    assert seen_kinds == {"count", "most", "least", "user", "date"}


def test_pairs_answers_recomputed_from_the_text():
    for task in [t for t in _tasks("dev", 20) if t.family == "pairs"]:
        labels_of: dict[int, set[str]] = {}
        for _, user, label in (_parse(line) for line in task.documents):
            labels_of.setdefault(user, set()).add(label)
        question = task.query.split(qt.LABEL_HELP)[1]
        a, b = (sorted(qt.LABELS, key=lambda x: question.find(x) % 10_000) + [None])[:2]
        kind = task.phrasing.split(".")[1]

        def ok(labels, a=a, b=b, kind=kind):
            return {"one": a in labels, "both": a in labels and b in labels}.get(
                kind, a not in labels
            )

        users = sorted(u for u, labels in labels_of.items() if ok(labels))
        assert set(task.expected) == {(u, v) for u in users for v in users if u < v}, task.id
        assert 0 < len(task.expected) < len(labels_of) * (len(labels_of) - 1) // 2


def test_corpus_answers_recomputed_from_the_files():
    for task in [t for t in _tasks("dev", 20) if t.family == "corpus"]:
        assert task.input_kind == "dir" and len(set(task.names)) == len(task.names)
        fields = [dict(re.findall(r"^(\w+): (.*)$", doc, re.MULTILINE)) for doc in task.documents]
        question = task.query.split(qt.LABEL_HELP)[1]
        if task.phrasing.startswith("corpus.order"):
            user = re.search(r"user (\d+)", question).group(1)
            hits = [
                f["Order"]
                for f in fields
                if f["From"] == f"user {user}" and f"the {f['Subject']}" in question
            ]
            assert hits == [task.expected]
        elif task.phrasing.startswith("corpus.top"):
            (top, n), (_, second) = Counter(f["From"] for f in fields).most_common(2)
            assert top == f"user {task.expected}" and n > second


def test_needle_is_in_the_haystack_once_and_sizes_hold():
    for chars in (10_000, 1_000_000):
        task = qt.needle_task(chars, 3, "heldout", "list")
        text = task.text()
        assert chars <= len(text) < chars + 3_000
        assert text.count(str(task.expected)) == 1
        assert re.search(r"access code", text).start() >= 0


# -- scoring --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected", "score"),
    [
        ("4417293", "4417293", 1.0),
        ("The access code for the amber vault is 4417293.", "4417293", 1.0),
        ("FINAL(4417293)", "4417293", 1.0),
        ("4417293 or 5512093", "4417293", 0.0),
        ("4417203", "4417293", 0.0),
        ("User 4821 filed the most tickets (7 of them).", "4821", 1.0),
        ("", "4821", 0.0),
    ],
)
def test_score_exact(answer, expected, score):
    assert qt.score_exact(answer, expected) == score


@pytest.mark.parametrize(
    ("answer", "expected", "score"),
    [
        ("27", 27, 1.0),
        ("There are 27 complaints.", 27, 1.0),
        ("There are 29 complaints.", 27, 0.5625),
        ("25", 27, 0.5625),
        ("27 of the 50 messages are complaints", 27, 1.0),
        ("Out of 50 messages, the answer is 27.", 27, 1.0),
        ("On 2026-03-14 user 4821 wrote 3 complaints.", 3, 1.0),
        ("1,000", 1000, 1.0),
        ("twelve", 12, 1.0),
        ("FINAL(0)", 0, 1.0),
        ("no idea", 3, 0.0),
        ("37", 27, 0.75**10),
    ],
)
def test_score_numeric(answer, expected, score):
    assert qt.score_numeric(answer, expected) == pytest.approx(score)


@pytest.mark.parametrize(
    ("answer", "expected", "score"),
    [
        ("complaint", "complaint", 1.0),
        ("The most common label is **Praise**.", "praise", 1.0),
        ("Complaints are the most common.", "complaint", 1.0),
        ("question", "praise", 0.0),
        ("nothing", "praise", 0.0),
    ],
)
def test_score_label(answer, expected, score):
    assert qt.score_label(answer, expected, qt.LABELS) == score


def test_parse_pairs_and_f1():
    assert qt.parse_pairs("(1234, 5678), (5678, 1234), [2222,1111] (user 3 & user 4)") == {
        (1234, 5678),
        (1111, 2222),
        (3, 4),
    }
    assert qt.parse_pairs("1234 - 5678\n1111, 2222\n(7, 7)") == {(1234, 5678), (1111, 2222)}
    assert qt.parse_pairs("[(1, 2), (3, 4)]") == {(1, 2), (3, 4)}
    gold = {(1, 2), (1, 3), (2, 3), (3, 4)}
    # 2 of 3 predicted are right (precision 2/3), 2 of 4 gold found (recall 1/2): F1 = 4/7
    assert qt.f1({(1, 2), (2, 3), (5, 6)}, gold) == pytest.approx(4 / 7)
    assert qt.f1(gold, gold) == 1.0
    assert qt.f1(set(), gold) == 0.0
    assert qt.f1(set(), set()) == 1.0


# -- end to end -----------------------------------------------------------------------------------
TINY = [
    qt.needle_task(10_000, 0, "dev", "str"),
    next(t for s in range(50) if (t := qt.oolong_task(50, s, "dev", "list")).metric == "numeric"),
    qt.make_tasks("corpus", 20, "dev", 1)[0],
]
EXPECTED = {t.query: t.expected for t in TINY}


def scripted(request: Request) -> str:
    """Plain calls answer in a sentence: the needle read from the prompt, a count one off (so it
    scores 0.75), anything else right. RLM roots run one cell, then FINAL the right answer."""
    query = next(q for q in EXPECTED if q in request.text)
    expected = EXPECTED[query]
    if "```repl" not in request.system:  # a plain call (no REPL)
        if query == TINY[0].query:
            code = re.search(r"access code (?:for the [a-z ]+ is )?(\d{7})", request.text)
            return f"The access code is {code.group(1)}."
        if isinstance(expected, int):
            return f"I count {expected + 1} such messages."
        return f"The answer is {expected}."
    if request.turn == 0:
        return "```repl\nprint(len(context))\n```"
    return f"FINAL({expected})"


@pytest.mark.ray
def test_harness_end_to_end_against_the_scripted_server(model_server, ray_session, tmp_path):
    model_server.reply = scripted
    settings = quality.Settings(
        model="openai/scripted",
        api_base=model_server.url,
        api_key="sk-test",
        max_time_s=60,
        rlm_prompt="paper",
    )
    out = io.StringIO()
    rows = quality.run_benchmark(TINY, ["plain", "rlm", "rlms"], settings, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines == rows and len(rows) == 9
    by = {(r["family"], r["system"]): r for r in rows}
    assert by["needle", "plain"]["score"] == 1.0
    assert by["oolong", "plain"]["score"] == pytest.approx(0.75)
    assert by["needle", "rlm"]["score"] == by["oolong", "rlm"]["score"] == 1.0
    assert by["corpus", "rlm"]["score"] == 1.0 and by["corpus", "rlm"]["input"] == "dir"
    assert all(by[f, "rlm"]["input_tokens"] > 0 for f in ("needle", "oolong", "corpus"))
    if importlib.util.find_spec("rlm") is None:  # the official package: absent is a result too
        assert by["needle", "rlms"]["error"].startswith("rlms not importable")
    table = quality.table(rows)
    assert "| plain | needle | 1 | 1.000 |" in table
    assert "| plain | oolong | 1 | 0.750 |" in table
    assert "| rlm | oolong | 1 | 1.000 |" in table
    assert table.count("\n") == 2 + 9 - 1


class _OfficialStandIn:
    """Stands in for the official package's `RLM` (not a dependency): keeps what it was given."""

    seen: dict[str, object] = {}

    def __init__(self, **kwargs: object) -> None:
        self.seen.update(kwargs)

    def completion(self, context: object, root_prompt: str) -> object:
        self.seen["context"] = context
        return type("Result", (), {"response": "Noor", "usage_summary": None})()


def test_the_official_package_gets_named_inputs_and_the_run_limits(monkeypatch):
    """A two-list question reaches `rlms` as {name: text}, as every other system reads it, and
    the package stops itself at `--max-time` and each call at `--request-timeout`."""
    monkeypatch.setitem(sys.modules, "rlm", type(sys)("rlm"))
    monkeypatch.setattr(sys.modules["rlm"], "RLM", _OfficialStandIn, raising=False)
    settings = quality.Settings(
        model="openai/m", api_base="http://127.0.0.1:9/v1", max_time_s=42, request_timeout_s=7
    )
    (task,) = qt.make_tasks("join", 50, "dev", 1)
    with quality.materialized(task) as context:
        outcome = quality.OfficialRLM(settings).run(task, context)
    seen = _OfficialStandIn.seen
    assert outcome.answer == "Noor" and outcome.error is None
    assert seen["context"] == dict(zip(task.names, task.documents))
    assert seen["max_timeout"] == 42 and seen["backend_kwargs"]["timeout"] == 7  # type: ignore[index]


def test_an_answer_after_the_time_limit_scores_zero():
    task = TINY[0]
    right = quality.Outcome(str(task.expected), time_s=10.0)
    late = quality.Outcome(str(task.expected), time_s=200.0)
    assert quality.make_row(task, "plain", right, 180.0)["score"] == 1.0
    row = quality.make_row(task, "plain", late, 180.0)
    assert (row["score"], row["answer_score"]) == (0.0, 1.0) and "max-time" in row["error"]


def test_the_final_split_lists_the_composite_families_and_refuses_the_others(capsys):
    """`--split final` (issue 27: domains nobody tuned on) lists the composite families by
    default; naming a single-step family with it is a usage error, before any task is run."""
    assert quality.main(["--split", "final", "--records", "50", "--n", "1", "--list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    families = [line.split("-", 1)[0] for line in listed]
    assert families == ["sets", "argmax", "groups", "join", "changed", "files"]
    assert all("-s200000-" in line and "expected ''" not in line for line in listed)
    with pytest.raises(SystemExit):
        quality.main(["--split", "final", "--families", "sets", "oolong", "--list"])
    assert "composite families only" in capsys.readouterr().err
