"""The quality benchmark's tasks and scoring: pure functions, standard library only.

Four families, each task generated from (family, size, seed) and a query phrasing:

  needle  S-NIAH: one sentence holding an access code in 10K..1M characters of filler prose
  oolong  OOLONG-style aggregation over distinct customer messages, each with a label that needs a
          semantic judgement (complaint, praise, question, suggestion, cancellation): a label's
          count, the most / least common label, a count restricted to one user or one date
  pairs   OOLONG-Pairs style: every pair of users who both meet a condition on their labels
  corpus  questions over a directory of ticket files: an order number by user and product, a
          label count in one month, the user with the most tickets

Every message is composed from a template x a product x a time phrase, so the messages of a task
are distinct (no asking "each distinct record once" shortcut) and each one's label is known.

Splits: "dev" (seeds from 0, phrasings marked dev: used to tune prompts) and "heldout" (seeds from
100_000, the other phrasings). A third split, "final" (seeds from 200_000, composite_tasks.py), has
the composite families only: asking it for needle, oolong, pairs or corpus raises ValueError,
since those have no phrasings beyond the dev and held-out ones. Scoring follows the papers: exact
match (needle, ids, labels), 0.75^|error| for numbers (OOLONG), F1 over unordered pairs
(OOLONG-Pairs).
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from dataclasses import dataclass

import composite_tasks

SPLIT_SEED_BASE = composite_tasks.SPLIT_SEED_BASE  # dev, heldout, final
SINGLE_STEP = ("needle", "oolong", "pairs", "corpus")
SINGLE_STEP_SPLITS = ("dev", "heldout")
FAMILIES = SINGLE_STEP + composite_tasks.FAMILIES
INPUT_KINDS = ("str", "list", "dir", "table", "dict")


@dataclass(frozen=True)
class Task:
    """One question with its input and the expected answer."""

    family: str
    size: int
    """Characters of input for a needle task, records (files) otherwise."""
    seed: int
    split: str
    phrasing: str
    """The id of the query template, e.g. "oolong.count.d1" (d: dev, h: held out)."""
    input_kind: str
    """How the input reaches the model: "str", "list", "dir" (files, `rlm_ray.load`ed),
    "table" (a pyarrow table, `rlm_ray.load`ed) or "dict" (named texts: `names` -> `documents`,
    two record lists for the join family)."""
    query: str
    documents: tuple[str, ...]
    """The input as documents: joined by `joiner` for "str", the items of "list", one file or
    row each for "dir" / "table"."""
    names: tuple[str, ...]
    """A relative file name per document (for "dir")."""
    joiner: str
    expected: str | int | tuple
    """The answer: a str, an int, pairs of user numbers (pairs), entity names (f1set) or
    (group, count) pairs (groups)."""
    metric: str
    """"exact", "numeric", "label", "f1"; composite families: "f1set", "value", "groups"."""
    labels: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.family}-{self.size}-{self.input_kind}-s{self.seed}-{self.phrasing}"

    def text(self) -> str:
        return self.joiner.join(self.documents)


# -- phrasings ------------------------------------------------------------------------------------
# (id, template). Ids ending in .dN are the dev split's, .hN the held-out split's.
PHRASINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "needle": (
        ("needle.d1", "What is the access code for the {key}?"),
        ("needle.d2", "Find the access code for the {key} in the text. Answer with the code."),
        ("needle.h1", "Somewhere in the input an access code for the {key} is given. Which is it?"),
        ("needle.h2", "Report the {key}'s access code, nothing else."),
    ),
    "oolong.count": (
        ("oolong.count.d1", "How many messages have the label {label}?"),
        ("oolong.count.d2", "Count the messages whose label is {label}."),
        ("oolong.count.h1", "What is the number of {label} messages in the data?"),
        ("oolong.count.h2", "Give the total of messages that would be labelled {label}."),
    ),
    "oolong.most": (
        ("oolong.most.d1", "Which label is the most common among the messages?"),
        ("oolong.most.d2", "Which label occurs most often? Answer with the label."),
        ("oolong.most.h1", "What is the most frequent label in the data?"),
        ("oolong.most.h2", "Name the label that the largest number of messages have."),
    ),
    "oolong.least": (
        ("oolong.least.d1", "Which label is the least common among the messages?"),
        ("oolong.least.d2", "Which label occurs least often? Answer with the label."),
        ("oolong.least.h1", "What is the rarest label in the data?"),
        ("oolong.least.h2", "Name the label that the smallest number of messages have."),
    ),
    "oolong.user": (
        ("oolong.user.d1", "How many messages from user {user} have the label {label}?"),
        ("oolong.user.d2", "Count the {label} messages written by user {user}."),
        ("oolong.user.h1", "For user {user} only: how many of their messages are {label}?"),
        ("oolong.user.h2", "What number of messages by user {user} would be labelled {label}?"),
    ),
    "oolong.date": (
        ("oolong.date.d1", "How many messages dated {date} have the label {label}?"),
        ("oolong.date.d2", "Count the {label} messages sent on {date}."),
        ("oolong.date.h1", "On {date}, how many messages were {label}?"),
        ("oolong.date.h2", "What number of messages from {date} would be labelled {label}?"),
    ),
    "pairs.one": (
        ("pairs.one.d1", "List all pairs of users who both wrote at least one {a} message."),
        ("pairs.one.d2", "Which pairs of users each have at least one message labelled {a}?"),
        ("pairs.one.h1", "Find every pair of distinct users such that each of them sent a {a}."),
        ("pairs.one.h2", "Give all user pairs where both users have a message with label {a}."),
    ),
    "pairs.both": (
        (
            "pairs.both.d1",
            "List all pairs of users who both wrote at least one {a} message and at least one "
            "{b} message.",
        ),
        (
            "pairs.both.d2",
            "Which pairs of users each have messages labelled {a} and messages labelled {b}?",
        ),
        (
            "pairs.both.h1",
            "Find every pair of distinct users such that each of them sent both a {a} and a {b}.",
        ),
        (
            "pairs.both.h2",
            "Give all user pairs where both users have at least one {a} and one {b} message.",
        ),
    ),
    "pairs.none": (
        ("pairs.none.d1", "List all pairs of users of whom neither wrote any {a} message."),
        ("pairs.none.d2", "Which pairs of users both have no message labelled {a}?"),
        ("pairs.none.h1", "Find every pair of distinct users such that neither ever sent a {a}."),
        ("pairs.none.h2", "Give all user pairs where no message of either user has label {a}."),
    ),
    "corpus.order": (
        (
            "corpus.order.d1",
            "What is the order number on the ticket in which user {user} wrote about the "
            "{product}?",
        ),
        ("corpus.order.d2", "Find user {user}'s ticket about the {product}: which order number?"),
        (
            "corpus.order.h1",
            "Which order number did user {user} give when writing about the {product}?",
        ),
        ("corpus.order.h2", "Report the order number of user {user}'s {product} ticket."),
    ),
    "corpus.month": (
        ("corpus.month.d1", "How many tickets filed in {month} are {label} messages?"),
        ("corpus.month.d2", "Count the {month} tickets whose message is a {label}."),
        ("corpus.month.h1", "Of the tickets dated in {month}, how many are a {label}?"),
        ("corpus.month.h2", "What number of {label} tickets were filed during {month}?"),
    ),
    "corpus.top": (
        ("corpus.top.d1", "Which user filed the most tickets? Answer with the user number."),
        ("corpus.top.d2", "Who wrote the largest number of tickets (give the user number)?"),
        ("corpus.top.h1", "Find the user with more tickets than anyone else; give their number."),
        ("corpus.top.h2", "Report the user number of the most frequent ticket writer."),
    ),
}


def phrasings(group: str, split: str) -> tuple[tuple[str, str], ...]:
    mark = "d" if split == "dev" else "h"
    return tuple(p for p in PHRASINGS[group] if p[0].rsplit(".", 1)[1].startswith(mark))


# -- vocabulary -----------------------------------------------------------------------------------
LABELS = ("complaint", "praise", "question", "suggestion", "cancellation")
LABEL_HELP = (
    "Each message has exactly one label: complaint (the writer is unhappy about a problem), "
    "praise (happy with a product or the service), question (asks for information), "
    "suggestion (proposes an improvement), cancellation (wants an order stopped)."
)
PRODUCTS = (
    "blender", "rain jacket", "desk lamp", "coffee grinder", "pair of hiking boots", "phone case",
    "office chair", "toaster", "backpack", "electric kettle", "yoga mat", "bookshelf",
    "winter coat", "wireless speaker", "garden hose", "rice cooker", "bike helmet",
    "set of towels", "wall clock", "laptop stand",
)  # fmt: skip
WHEN = (
    "last week", "on Monday", "two days ago", "this morning", "in March", "over the weekend",
    "yesterday", "a month ago",
)  # fmt: skip
TEMPLATES = {
    "complaint": (
        "The {product} I bought {when} stopped working after a day and I want this fixed.",
        "I received the {product} {when} and it was scratched all over, really disappointing.",
        "Nobody has replied about the {product} I ordered {when}; worst service I have had.",
        "The {product} delivered {when} is missing half its parts. Unacceptable.",
        "I am fed up: the {product} I got {when} already broke and your hotline hangs up on me.",
        "Your courier left the {product} in the rain {when} and now it is ruined.",
        "I was charged twice for the {product} I ordered {when} and nobody will sort it out.",
        "The {product} I got {when} smells of burnt plastic and the manual is useless.",
    ),
    "praise": (
        "The {product} I bought {when} works perfectly, thank you!",
        "Just wanted to say the {product} that arrived {when} is even better than the pictures.",
        "Your staff helped me choose a {product} {when} and they were wonderful.",
        "Delivery of my {product} {when} was fast and the packaging was lovely.",
        "I have used the {product} every day since I got it {when} and I love it.",
        "Five stars for the {product} I got {when}, great value.",
        "The {product} I ordered {when} made my mother very happy, well done.",
        "Really impressed with how sturdy the {product} I bought {when} is.",
    ),
    "question": (
        "Does the {product} I saw {when} come in other colours?",
        "Could you tell me if the {product} advertised {when} is still in stock?",
        "How long is the warranty on the {product} I ordered {when}?",
        "Can I pick up the {product} I reserved {when} at the city store?",
        "Is the {product} I looked at {when} suitable for children?",
        "What are the dimensions of the {product} I asked about {when}?",
        "Do you ship the {product} I put in my basket {when} to Norway?",
        "Which batteries does the {product} I bought {when} need?",
    ),
    "suggestion": (
        "It would be nice if the {product} I bought {when} came with a carrying bag.",
        "You should offer the {product} I saw {when} in a larger size.",
        "Maybe add a gift-wrap option for items like the {product} I ordered {when}.",
        "I'd suggest printing clearer instructions for the {product} I got {when}.",
        "Consider selling spare parts for the {product} I bought {when}.",
        "A recycled packaging option for the {product} I ordered {when} would be a good idea.",
        "Please think about a cheaper version of the {product} I looked at {when}.",
        "Your app could show the delivery time for the {product} I ordered {when} more clearly.",
    ),
    "cancellation": (
        "Please cancel my order for the {product} I placed {when}.",
        "I no longer need the {product} I ordered {when}; stop the shipment.",
        "I changed my mind about the {product} I bought {when}, please call off the order.",
        "Kindly withdraw the order for the {product} I made {when}.",
        "Don't send the {product} I ordered {when}, I found one elsewhere.",
        "I want to end my order for the {product} I placed {when} before it ships.",
        "Cancel the {product} I added to my subscription {when}, please.",
        "Scrap the {product} order I placed {when}.",
    ),
}
MESSAGES_PER_LABEL = len(TEMPLATES["complaint"]) * len(PRODUCTS) * len(WHEN)  # 1,280
COLOURS = ("amber", "cobalt", "crimson", "ivory", "jade", "silver", "violet", "ochre")
PLACES = ("vault", "archive", "boathouse", "observatory", "greenhouse", "tower", "cellar")
FILLER_SUBJECTS = (
    "The old harbour", "A travelling baker", "The village council", "Our neighbour",
    "The river", "A tired farmer", "The night train", "The school choir", "A small lantern",
    "The winter market", "The mill owner", "A stray dog",
)  # fmt: skip
FILLER_VERBS = (
    "waited beside", "talked about", "walked past", "remembered", "painted", "looked for",
    "complained about", "sang near", "forgot", "repaired",
)  # fmt: skip
FILLER_OBJECTS = (
    "the stone bridge", "a field of barley", "the empty station", "the autumn festival",
    "a broken fence", "the long road north", "the market square", "an unread letter",
    "the lighthouse", "the orchard", "a quiet chapel", "the flooded meadow",
)  # fmt: skip
FILLER_TAILS = (
    "before the rain came", "as the bells rang", "for most of the afternoon",
    "without saying a word", "while the tide went out", "until the lamps were lit", "again",
    "in the early spring",
)  # fmt: skip
MONTHS = ("January", "February", "March", "April")


# -- generation -----------------------------------------------------------------------------------
def make_tasks(
    family: str, size: int, split: str, n: int, input_kinds: tuple[str, ...] = ("str",)
) -> list[Task]:
    """The first `n` tasks of `family` at `size` in `split`; task i gets input kind
    ``input_kinds[i % len(input_kinds)]`` (the corpus family always reads a directory)."""
    if split not in SPLIT_SEED_BASE:
        raise ValueError(f"split must be one of {', '.join(SPLIT_SEED_BASE)}, got {split!r}")
    if family in composite_tasks.FAMILIES:  # their own input kinds, by domain
        return composite_tasks.make(family, size, split, n, Task)
    if split not in SINGLE_STEP_SPLITS:
        raise ValueError(
            f"split {split!r} has the composite families only "
            f"({', '.join(composite_tasks.FAMILIES)}), not {family!r}"
        )
    build = {"needle": needle_task, "oolong": oolong_task, "pairs": pairs_task}
    tasks = []
    for i in range(n):
        seed = SPLIT_SEED_BASE[split] + i
        if family == "corpus":
            tasks.append(corpus_task(size, seed, split))
        else:
            tasks.append(build[family](size, seed, split, input_kinds[i % len(input_kinds)]))
    return tasks


def _rng(family: str, size: int, seed: int) -> random.Random:
    return random.Random(f"{family}:{size}:{seed}")  # str seeds are stable across runs


def _pick(rng: random.Random, group: str, split: str) -> tuple[str, str]:
    return rng.choice(phrasings(group, split))


def filler_sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(FILLER_SUBJECTS)} {rng.choice(FILLER_VERBS)} "
        f"{rng.choice(FILLER_OBJECTS)} {rng.choice(FILLER_TAILS)}."
    )


def needle_task(chars: int, seed: int, split: str, input_kind: str = "str") -> Task:
    rng = _rng("needle", chars, seed)
    key = f"{rng.choice(COLOURS)} {rng.choice(PLACES)}"
    code = str(rng.randrange(1_000_000, 10_000_000))
    needle = rng.choice(
        (
            f"The access code for the {key} is {code}.",
            f"Remember this: the {key} opens with access code {code}.",
        )
    )
    paragraphs: list[str] = []
    total = 0
    while total < chars:
        paragraph = " ".join(filler_sentence(rng) for _ in range(rng.randrange(8, 20)))
        paragraphs.append(paragraph)
        total += len(paragraph) + 2
    at = rng.randrange(len(paragraphs))
    sentences = paragraphs[at].split(". ")
    sentences.insert(rng.randrange(len(sentences) + 1), needle.rstrip("."))
    paragraphs[at] = ". ".join(sentences).rstrip(".") + "."
    phrasing, template = _pick(rng, "needle", split)
    return Task(
        family="needle",
        size=chars,
        seed=seed,
        split=split,
        phrasing=phrasing,
        input_kind=input_kind,
        query=template.format(key=key),
        documents=tuple(paragraphs),
        names=tuple(f"part-{i:05d}.txt" for i in range(len(paragraphs))),
        joiner="\n\n",
        expected=code,
        metric="exact",
    )


@dataclass(frozen=True)
class Record:
    date: str
    user: int
    label: str
    product: str
    message: str

    def line(self) -> str:
        return f"{self.date} | user {self.user} | {self.message}"


def message(label: str, index: int) -> tuple[str, str]:
    """The `index`-th distinct message of `label` (0 <= index < MESSAGES_PER_LABEL), and its
    product."""
    template, rest = divmod(index, len(PRODUCTS) * len(WHEN))
    product, when = divmod(rest, len(WHEN))
    text = TEMPLATES[label][template].format(product=PRODUCTS[product], when=WHEN[when])
    return text[0].upper() + text[1:], PRODUCTS[product]


def make_records(rng: random.Random, n: int, users: int, dates: list[str]) -> list[Record]:
    """`n` records (distinct lines; their messages distinct up to 1,280 of a label) with label
    counts whose most and least common labels are unique."""
    while True:
        weights = [rng.uniform(0.4, 3.0) for _ in LABELS]
        labels = rng.choices(LABELS, weights, k=n)
        tally = Counter(labels)
        counts = sorted(tally[label] for label in LABELS)
        if counts[0] != counts[1] and counts[-1] != counts[-2]:
            break
    # past MESSAGES_PER_LABEL of one label a message repeats (with another date and user, so
    # the record lines stay distinct); up to it the same seed gives the same records as before
    picks = {
        label: itertools.cycle(rng.sample(range(MESSAGES_PER_LABEL), min(n, MESSAGES_PER_LABEL)))
        for label in LABELS
    }
    user_ids = rng.sample(range(1000, 10_000), users)
    records = []
    for label in labels:
        text, product = message(label, next(picks[label]))
        records.append(Record(rng.choice(dates), rng.choice(user_ids), label, product, text))
    return records


def _dates(month: int = 3, days: int = 14) -> list[str]:
    return [f"2026-{month:02d}-{day:02d}" for day in range(1, days + 1)]


def oolong_task(records: int, seed: int, split: str, input_kind: str = "str") -> Task:
    rng = _rng("oolong", records, seed)
    data = make_records(rng, records, max(5, records // 8), _dates())
    counts = Counter(r.label for r in data)
    kind = rng.choice(("count", "most", "least", "user", "date"))
    phrasing, template = _pick(rng, f"oolong.{kind}", split)
    label = rng.choice(LABELS)
    chosen = rng.choice(data)  # a user and a date that occur
    expected: str | int
    if kind == "most":
        expected, metric = max(LABELS, key=lambda x: counts[x]), "label"
    elif kind == "least":
        expected, metric = min(LABELS, key=lambda x: counts[x]), "label"
    elif kind == "count":
        expected, metric = counts[label], "numeric"
    elif kind == "user":
        expected = sum(r.user == chosen.user and r.label == label for r in data)
        metric = "numeric"
    else:
        expected = sum(r.date == chosen.date and r.label == label for r in data)
        metric = "numeric"
    question = template.format(label=label, user=chosen.user, date=chosen.date)
    return Task(
        family="oolong",
        size=records,
        seed=seed,
        split=split,
        phrasing=phrasing,
        input_kind=input_kind,
        query=_record_query(question),
        documents=tuple(r.line() for r in data),
        names=tuple(f"message-{i:05d}.txt" for i in range(records)),
        joiner="\n",
        expected=expected,
        metric=metric,
        labels=LABELS,
    )


def _record_query(question: str) -> str:
    return (
        "The input holds customer messages, one per line: date | user number | message. "
        f"{LABEL_HELP} {question}"
    )


def pairs_task(records: int, seed: int, split: str, input_kind: str = "str") -> Task:
    rng = _rng("pairs", records, seed)
    data = make_records(rng, records, min(max(6, records // 4), 40), _dates())
    by_user: dict[int, set[str]] = {}
    for r in data:
        by_user.setdefault(r.user, set()).add(r.label)
    kind = rng.choice(("one", "both", "none"))
    a, b = rng.sample(LABELS, 2)

    def qualifies(labels: set[str], a: str, b: str) -> bool:
        if kind == "one":
            return a in labels
        if kind == "both":
            return a in labels and b in labels
        return a not in labels

    # The condition whose qualifying users are closest to 40 %: not empty, not everyone.
    options = [(x, y) for x in LABELS for y in LABELS if x != y]
    rng.shuffle(options)
    a, b = min(
        options,
        key=lambda ab: abs(sum(qualifies(s, *ab) for s in by_user.values()) / len(by_user) - 0.4),
    )
    users = sorted(u for u, labels in by_user.items() if qualifies(labels, a, b))
    pairs = tuple((u, v) for i, u in enumerate(users) for v in users[i + 1 :])
    phrasing, template = _pick(rng, f"pairs.{kind}", split)
    question = template.format(a=a, b=b) + " Answer with pairs of user numbers like (1234, 5678)."
    return Task(
        family="pairs",
        size=records,
        seed=seed,
        split=split,
        phrasing=phrasing,
        input_kind=input_kind,
        query=_record_query(question),
        documents=tuple(r.line() for r in data),
        names=tuple(f"message-{i:05d}.txt" for i in range(records)),
        joiner="\n",
        expected=pairs,
        metric="f1",
        labels=LABELS,
    )


def corpus_task(files: int, seed: int, split: str) -> Task:
    rng = _rng("corpus", files, seed)
    dates = [d for m in range(1, len(MONTHS) + 1) for d in _dates(m, 28)]
    data = make_records(rng, files, max(5, files // 6), dates)
    _unique_top_user(data)
    orders = rng.sample(range(100_000, 1_000_000), files)
    kind = rng.choice(("order", "month", "top"))
    phrasing, template = _pick(rng, f"corpus.{kind}", split)
    expected: str | int
    if kind == "order":
        seen = Counter((r.user, r.product) for r in data)
        i = rng.choice([i for i, r in enumerate(data) if seen[r.user, r.product] == 1])
        expected, metric = str(orders[i]), "exact"
        question = template.format(user=data[i].user, product=data[i].product)
    elif kind == "month":
        month, label = rng.randrange(len(MONTHS)), rng.choice(LABELS)
        prefix = f"2026-{month + 1:02d}-"
        expected = sum(r.date.startswith(prefix) and r.label == label for r in data)
        metric = "numeric"
        question = template.format(month=f"{MONTHS[month]} 2026", label=label)
    else:
        expected, metric = str(Counter(r.user for r in data).most_common(1)[0][0]), "exact"
        question = template
    documents, names = [], []
    for i, r in enumerate(data):
        body = " ".join(filler_sentence(rng) for _ in range(rng.randrange(2, 6)))
        documents.append(
            f"Ticket {i + 1:05d}\nFrom: user {r.user}\nDate: {r.date}\nOrder: {orders[i]}\n"
            f"Subject: {r.product}\n\n{r.message}\n\n(Earlier in our chat: {body})\n"
        )
        names.append(f"tickets/{r.date[:7]}/ticket-{i + 1:05d}.txt")
    return Task(
        family="corpus",
        size=files,
        seed=seed,
        split=split,
        phrasing=phrasing,
        input_kind="dir",
        query=(
            "The input is a directory of customer support tickets, one file each (user number, "
            f"date, order number, product, message). {LABEL_HELP} {question}"
        ),
        documents=tuple(documents),
        names=tuple(names),
        joiner="\n\n",
        expected=expected,
        metric=metric,
        labels=LABELS,
    )


def _unique_top_user(data: list[Record]) -> None:
    """Make the user with the most records unique: a tie is broken by moving one record of
    another user to the first tied user (in place; the records stay distinct)."""
    counts = Counter(r.user for r in data).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        top = counts[0][0]
        i = next(i for i, r in enumerate(data) if r.user != top and r.user != counts[1][0])
        r = data[i]
        data[i] = Record(r.date, top, r.label, r.product, r.message)


# -- answer parsing and scoring -------------------------------------------------------------------
_WORD_NUMBERS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?![\d,])|(?<![\w.])-?\d+(?:\.\d+)?")
_MARKED = re.compile(
    r"(?:FINAL\(\s*|answer\s*(?:is|:|=)\s*\**|total\s*(?:is|:|=)\s*|count\s*(?:is|:|=)\s*)"
    r"(-?\d[\d,]*(?:\.\d+)?)",
    re.IGNORECASE,
)
_NOT_COUNTS = re.compile(r"\d{4}-\d{2}-\d{2}|user\s*#?\d+|\b\d{4,}\b", re.IGNORECASE)


def parse_number(answer: str) -> float | None:
    """The number an answer gives: a marked one ("answer: 27", "FINAL(27)"), else the first
    (so "27 of the 50 messages" is 27). Dates, user numbers and ids (4+ digits) are not counts;
    "twelve" is 12 when no digit is left."""
    marked = _MARKED.search(answer)
    if marked:
        return float(marked.group(1).replace(",", ""))
    text = _NOT_COUNTS.sub(" ", answer)
    numbers = [float(m.replace(",", "")) for m in _NUMBER.findall(text)]
    if numbers:
        return numbers[0]
    words = [_WORD_NUMBERS[w] for w in re.findall(r"[a-z]+", answer.lower()) if w in _WORD_NUMBERS]
    return float(words[0]) if words else None


def score_numeric(answer: str, expected: int) -> float:
    """OOLONG's numeric score: 0.75 ** |expected - answer|; 0 without a number."""
    got = parse_number(answer)
    return 0.0 if got is None else 0.75 ** abs(got - expected)


def _normalize(text: str) -> str:
    text = re.sub(r"^\s*FINAL\((.*)\)\s*$", r"\1", text.strip(), flags=re.DOTALL)
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def score_exact(answer: str, expected: str) -> float:
    """Exact match after normalization (case, punctuation). For a numeric code or id, also right
    when it is the only number of its length in the answer: "The code is 4417293." is right,
    "4417293 or 5512093" is not."""
    if _normalize(answer) == _normalize(expected):
        return 1.0
    if expected.isdigit():
        same_length = {n for n in re.findall(r"\d+", answer) if len(n) == len(expected)}
        return float(same_length == {expected})
    return 0.0


def parse_label(answer: str, labels: tuple[str, ...]) -> str | None:
    """The label an answer names first (whole word, any case, plural allowed)."""
    found = []
    for label in labels:
        m = re.search(rf"\b{re.escape(label)}s?\b", answer, re.IGNORECASE)
        if m:
            found.append((m.start(), label))
    return min(found)[1] if found else None


def score_label(answer: str, expected: str, labels: tuple[str, ...]) -> float:
    return float(parse_label(answer, labels) == expected)


_PAIR = re.compile(
    r"[(\[{]\s*(?:user\s*)?['\"]?(\d+)['\"]?\s*[,;&]\s*(?:user\s*)?['\"]?(\d+)['\"]?\s*[)\]}]",
    re.IGNORECASE,
)
_LINE_PAIR = re.compile(
    r"^\W*(?:user\s*)?(\d+)\s*(?:,|&|and|-|–)\s*(?:user\s*)?(\d+)\W*$", re.IGNORECASE
)


def parse_pairs(answer: str) -> set[tuple[int, int]]:
    """Unordered pairs of user numbers: "(1234, 5678)", "[1234, 5678]", "(user 1234 & user
    5678)", or one pair per line "1234 - 5678". Self-pairs are dropped."""
    found = []
    for line in answer.splitlines():
        bracketed = _PAIR.findall(line)
        found += bracketed or [m.groups() for m in [_LINE_PAIR.match(line)] if m]
    pairs = {tuple(sorted((int(a), int(b)))) for a, b in found}
    return {(a, b) for a, b in pairs if a != b}


def f1(predicted: set, gold: set) -> float:
    """F1 of two sets; 1.0 when both are empty."""
    if not predicted and not gold:
        return 1.0
    hits = len(predicted & gold)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(gold)
    return 2 * precision * recall / (precision + recall)


def score(task: Task, answer: str) -> float:
    """The task's score of `answer`, in [0, 1]."""
    if task.family in composite_tasks.FAMILIES:
        return composite_tasks.score(task, answer)
    if task.metric == "numeric":
        assert isinstance(task.expected, int)
        return score_numeric(answer, task.expected)
    if task.metric == "label":
        assert isinstance(task.expected, str)
        return score_label(answer, task.expected, task.labels)
    if task.metric == "f1":
        assert isinstance(task.expected, tuple)
        return f1(parse_pairs(answer), set(task.expected))
    assert isinstance(task.expected, str)
    return score_exact(answer, task.expected)
