"""The scripted model's language: requests, replies and the helpers that write reply functions.

A scripted model is a *reply function*: ``Callable[[Request], str | Reply]``, a pure function of
the request. `by_marker` answers by a marker in the prompt, `turns` by root turn, `code` writes a
```` ```repl ```` block, `records` answers the batches of the record operators item by item.
`server.ScriptedServer` plays it over HTTP, `fakes.FakeLLM` in-process. Standard library only.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One chat-completions request, as a reply function sees it.

    `messages` are normalized to ``{"role": ..., "content": str}`` (content parts joined, ``None``
    as ``""``); `body` is the full JSON body as sent; `headers` the HTTP headers it came with
    (``{}`` in-process), e.g. to play an endpoint that echoes its ``Authorization`` header.
    """

    messages: list[dict[str, str]]
    model: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(
        cls, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> Request:
        """Build a `Request` from an OpenAI chat-completions JSON body (and its HTTP headers)."""
        raw = body.get("messages")
        if not isinstance(raw, list):
            raise ValueError("`messages` must be a list of {role, content} objects")
        messages = [_normalize_message(m) for m in raw]
        model = str(body.get("model", ""))
        return cls(messages=messages, model=model, body=dict(body), headers=dict(headers or {}))

    @property
    def system(self) -> str:
        """The text of the first system message, or ``""``."""
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")

    @property
    def first_user(self) -> str:
        """The text of the first user message (the query of an RLM call), or ``""``."""
        return next((m["content"] for m in self.messages if m["role"] == "user"), "")

    @property
    def last_user(self) -> str:
        """The text of the last user message (for a root call: the latest REPL output)."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""

    @property
    def turn(self) -> int:
        """How many assistant messages the request holds: 0 for the first root turn, 1 next..."""
        return sum(1 for m in self.messages if m["role"] == "assistant")

    @property
    def text(self) -> str:
        """Every message's text, joined with newlines."""
        return "\n".join(m["content"] for m in self.messages)

    def has(self, marker: str) -> bool:
        """Whether `marker` occurs anywhere in the messages."""
        return marker in self.text


def _normalize_message(message: Any) -> dict[str, str]:
    if not isinstance(message, Mapping):
        raise ValueError(f"a message must be an object, got {message!r}")
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return {
        "role": str(message.get("role", "")),
        "content": "" if content is None else str(content),
    }


@dataclass(frozen=True)
class Reply:
    """What the scripted model answers, including faults.

    A plain `str` from a reply function means ``Reply(content=that)``. Faults:
    ``Reply(status=429, headers={"Retry-After": "1"})``, ``Reply(status=500, content="boom")``
    (an OpenAI-style error JSON with `content` as its message), ``Reply(raw_body=b"{oops")`` (sent
    as is), ``Reply(delay_s=30)`` (a client timeout), ``Reply(drop_connection=True)`` (the socket
    is closed without any response; after `delay_s` if set).
    """

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] | None = None
    raw_body: bytes | None = None
    drop_connection: bool = False


ReplyFn = Callable[[Request], str | Reply]
"""A scripted model: a pure function from the request to its answer."""

Answer = str | Reply | ReplyFn  # a value in a `by_marker`/`turns` script


def as_reply(value: object) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(content=value)
    raise TypeError(f"a reply function must return str or Reply, got {type(value).__name__}")


def _answer(value: Answer, request: Request) -> str | Reply:
    return value(request) if callable(value) else value


# --------------------------------------------------------------------------- script helpers


def by_marker(rules: Mapping[str, Answer], default: Answer | None = None) -> ReplyFn:
    """A reply function that answers by the first marker found in the request.

    Markers are looked for in the *first user message* only: it holds the prompt of a leaf call
    and the query of an RLM call, while the rest of a conversation (history, REPL output, the
    code that made the sub-calls) quotes other calls' markers. Rules are tried in their order. Without a match, `default` answers; with
    no default, a `LookupError` is raised (an HTTP 500 from `ScriptedServer`).
    """
    return _ByMarker(dict(rules), default)


def turns(*replies: Answer) -> ReplyFn:
    """A reply function for a multi-turn root call: ``replies[request.turn]``.

    Stateless, since the turn is the number of assistant messages already in the request; the
    last reply repeats if the conversation goes on longer.
    """
    if not replies:
        raise ValueError("turns() needs at least one reply")
    return _Turns(replies)


# Classes rather than closures: plain `pickle` can ship them (multiprocessing, not only Ray).
@dataclass(frozen=True)
class _ByMarker:
    rules: dict[str, Answer]
    default: Answer | None

    def __call__(self, request: Request) -> str | Reply:
        for marker, answer in self.rules.items():
            if marker in request.first_user:
                return _answer(answer, request)
        if self.default is None:
            raise LookupError(
                f"by_marker: no marker of {list(self.rules)} occurs in the request and there is "
                f"no default; first user message: {request.first_user[:200]!r}"
            )
        return _answer(self.default, request)


@dataclass(frozen=True)
class _Turns:
    replies: tuple[Answer, ...]

    def __call__(self, request: Request) -> str | Reply:
        return _answer(self.replies[min(request.turn, len(self.replies) - 1)], request)


def records(
    answer: Callable[[str, str], str],
    *,
    garble_above: int | None = None,
    default: Answer | None = None,
) -> ReplyFn:
    """A reply function for record-operator batches (rlm_ray/operators/record_ops.py).

    A batch prompt numbers its items ``[1] ...``; each is answered by ``answer(task, item)``
    (`task`: the prompt's first line, e.g. ``"Condition: ..."`` or ``"Labels: ..."``) on a line
    ``[k] answer``. A prompt of one item (``Item: ...`` and a cue such as ``Answer:``, a
    classification's ``Text: ...`` and ``Label:``, a filter's ``Item: ...`` and its question)
    gets the bare answer, with the same kind of `task`. A
    batch of more than `garble_above` items gets a reply with no numbers (a model that lost
    count). Any other request goes to `default` (e.g. the root's `turns`).
    """
    return _Records(answer, garble_above, default)


_RECORDS_HEAD = "\n\nItems:\n"
_RECORDS_TAIL = "\n\nReply with exactly "
_ITEM_HEAD = "\n\nItem: "
_ITEM_CUES = ("Answer:", "Label:")
_FILTER_QUESTION = "\n\nQuestion: does the item above meet this condition: "
_CLASSIFY_HEAD = "Classify the text below as one of: "
_TEXT_HEAD = "\n\nText: "
_CLASSIFY_CUE = "\nLabel:"
_CLASSIFY_ANSWER = " Answer with the label only."


@dataclass(frozen=True)
class _Records:
    answer: Callable[[str, str], str]
    garble_above: int | None
    default: Answer | None

    def __call__(self, request: Request) -> str | Reply:
        prompt = request.first_user
        if prompt.startswith("Item: ") and _FILTER_QUESTION in prompt:  # a filter's one item
            item, question = prompt[len("Item: ") :].split(_FILTER_QUESTION, 1)
            condition = question.split("? Answer yes only", 1)[0]
            return self.answer(f"Condition: {condition}", item)
        if prompt.startswith(_CLASSIFY_HEAD) and _TEXT_HEAD in prompt:  # a classify's one item
            labels, text = prompt[len(_CLASSIFY_HEAD) :].split(_TEXT_HEAD, 1)
            labels = labels.removesuffix(_CLASSIFY_ANSWER).rstrip(".")
            return self.answer(f"Labels: {labels}", text.removesuffix(_CLASSIFY_CUE))
        if _ITEM_HEAD in prompt and prompt.rsplit("\n", 1)[-1] in _ITEM_CUES:
            task, item = prompt.split(_ITEM_HEAD, 1)
            return self.answer(task.splitlines()[0], item.rsplit("\n", 1)[0])
        if _RECORDS_HEAD not in prompt or _RECORDS_TAIL not in prompt:
            if self.default is None:
                raise LookupError(f"records: not a batch prompt: {prompt[:200]!r}")
            return _answer(self.default, request)
        task, body = prompt.split(_RECORDS_HEAD, 1)
        items = _numbered_items(body.rsplit(_RECORDS_TAIL, 1)[0])
        if self.garble_above is not None and len(items) > self.garble_above:
            return "Sorry, there are too many items; here is a summary instead."
        first = task.splitlines()[0]
        return "\n".join(f"[{k}] {self.answer(first, item)}" for k, item in enumerate(items, 1))


def _numbered_items(body: str) -> list[str]:
    items: list[str] = []
    for line in body.split("\n"):
        if line.startswith(f"[{len(items) + 1}] "):
            items.append(line.split("] ", 1)[1])
        elif items:
            items[-1] += "\n" + line
    return items


def code(src: str) -> str:
    """Wrap Python source as a model reply holding one ```` ```repl ```` block.

    The source is dedented, so a triple-quoted block can be indented with the test.
    """
    return f"```repl\n{textwrap.dedent(src).strip(chr(10))}\n```"


# --------------------------------------------------------------------------- token counts and stops


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def apply_stop(content: str, stop: object) -> str:
    """Cut `content` at the first stop sequence, as a real server does (the stop is not sent)."""
    stops = [stop] if isinstance(stop, str) else list(stop) if isinstance(stop, list) else []
    cuts = [content.find(s) for s in stops if isinstance(s, str) and s]
    cuts = [c for c in cuts if c >= 0]
    return content[: min(cuts)] if cuts else content
