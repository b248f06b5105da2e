"""Reading a sub-model's answers to a record operator's prompt: numbered lines ("[3] yes"),
yes / no, and labels written any way a model writes them (case, punctuation, a number, a unique
prefix, the label's or its meaning's words). Pure: no model, no Ray.

    parse_numbered(reply, n)            {item number: its answer}
    yes_no(text)                        True, False, or UNPARSED
    normalise_label(text, labels)       a label, UNKNOWN, or UNPARSED
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

UNKNOWN = "unknown"  # what llm_classify gives an item that fits no label (or never parsed)
UNPARSED = object()  # an answer that says nothing the operator can use: asked again
_MARK = re.compile(r"^\s*(?:\*\*)?(?:\[(\d+)\]|(\d+)[.):])(?:\*\*)?\s*(.*)$")
_YES = {"yes", "y", "true"}
_NO = {"no", "n", "false"}


def parse_numbered(reply: str, n: int) -> dict[int, str]:
    """Answers by number from lines like "[3] text", "3. text", "3: text" or "3) text".

    Lines without a number continue the answer above them. A number given twice is ambiguous
    and dropped, as are numbers outside 1..n.
    """
    answers: dict[int, str] = {}
    twice: set[int] = set()
    current: int | None = None
    for line in reply.splitlines():
        match = _MARK.match(line)
        k = int(match[1] or match[2]) if match else 0
        if match and 1 <= k <= n:
            if k in answers:
                twice.add(k)
            answers[k], current = match[3].strip(), k
        elif match:
            current = None  # a number out of range: not part of any answer
        elif current is not None and line.strip():
            answers[current] += "\n" + line.strip()
    return {k: v for k, v in answers.items() if k not in twice}


def yes_no(text: str) -> Any:
    words = re.sub(r"[^a-z]+", " ", text.lower()).split()
    if words and words[0] in _YES:
        return True
    if words and words[0] in _NO:
        return False
    return UNPARSED


def normalise_label(text: str, labels: Sequence[str], descriptions: Sequence[str] = ()) -> Any:
    """The label `text` names, tried in this order: the label exactly; ignoring case, quotes,
    punctuation and a "label:" prefix; `UNKNOWN` (or "none") if the model said so; a label's
    number (1 for the first); the one label the answer starts (a unique prefix, "late" of
    "late or lost delivery") or that starts the answer ("billing issue"); the one label named
    as a whole phrase in the answer; the one label whose words, then whose meaning's words, the
    answer shares most ("lost delivery", or "praise" for `other: praise, thanks, a question`).
    Labels may be any strings: several words, punctuation. Else unparsed."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    bare = re.sub(r"^(label|answer|category)\s*:\s*", "", first.strip(_EDGES), flags=re.I)
    bare = bare.strip(_EDGES)
    for candidate in (first.strip(), bare):
        if candidate in labels:
            return candidate
    folded = {label.casefold(): label for label in labels}
    key = bare.casefold()
    if key in folded:
        return folded[key]
    if key in (UNKNOWN, "none", "n/a", "none of them", "none of the above"):
        return UNKNOWN
    if key.isdigit() and 1 <= int(key) <= len(labels):
        return labels[int(key) - 1]
    named = _named(first, labels)
    if len(named) > 1:  # "billing or access": no one label
        return UNPARSED
    for found in (*named, _by_prefix(key, labels), _by_words(key, labels, descriptions)):
        if found is not None:
            return found
    return UNPARSED


_EDGES = " \t*`'\".:;,()[]"
_STOPWORDS = frozenset(
    "a an and are as at be by for from in is it its of on or the this that to with about "
    "item text label it's".split()
)


def _by_prefix(key: str, labels: Sequence[str]) -> str | None:
    """The one label `key` is the start of, or the longest label `key` starts with."""
    if len(key) < 3:
        return None
    starts = [label for label in labels if label.casefold().startswith(key)]
    if len(starts) == 1:
        return starts[0]
    heads = [label for label in labels if re.match(rf"{re.escape(label.casefold())}\b", key)]
    return max(heads, key=len) if heads else None


def _named(answer: str, labels: Sequence[str]) -> list[str]:
    """The labels the answer names as whole phrases (the longest of overlapping ones)."""
    named = [
        label
        for label in labels
        if re.search(rf"(?<!\w){re.escape(label.casefold())}(?!\w)", answer.casefold())
    ]
    return [n for n in named if not any(n != m and n.casefold() in m.casefold() for m in named)]


def _by_words(key: str, labels: Sequence[str], descriptions: Sequence[str]) -> str | None:
    """The one label sharing the most words with the answer: its own words first, then its
    meaning's (a tie, or no word shared, is no answer)."""
    words = _content_words(key)
    if not words:
        return None
    meanings = list(descriptions) + [""] * (len(labels) - len(descriptions))
    for source in (list(labels), meanings):
        scores = [len(words & _content_words(text)) for text in source]
        best = max(scores)
        if best > 0 and scores.count(best) == 1:
            return labels[scores.index(best)]
    return None


def _content_words(text: str) -> set[str]:
    return {
        w for w in re.findall(r"[a-z0-9]+", text.casefold()) if w not in _STOPWORDS and len(w) > 1
    }
