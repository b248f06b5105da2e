"""Offline test doubles for rlm-ray pipelines: a scripted model, over HTTP or in-process.

Tests of an RLM pipeline need a model that answers deterministically. Here the model is a *reply
function*: ``Callable[[Request], str | Reply]``, a pure function of the request. Pure matters:
under Ray every worker process unpickles its own copy of whatever plays the model, so a script that
pops replies from a list would restart in each process; a function of the prompt cannot drift.

Two ways to play it:

- `ScriptedServer`: an OpenAI-compatible chat-completions server on 127.0.0.1, for end-to-end tests
  through litellm's real HTTP path (``model="openai/<anything>", api_base=server.url``). It also
  injects latency and faults (HTTP errors, malformed JSON, dropped connections, timeouts).
- `FakeLLM`: the same reply functions called in-process, returning `rlm_ray.types.LLMReply`, for
  unit tests that need no HTTP at all.

Helpers write stateless scripts: `by_marker` (answer by a marker in the prompt), `turns` (answer by
root turn), `code` (a ```` ```repl ```` block), `records` (answer the batches of `llm_map`,
`llm_filter`, `llm_classify` and `rlm_ray.ops` item by item). Example::

    from rlm_ray.testing import ScriptedServer, by_marker, code, turns

    root = turns(code("print(len(context))"), "FINAL(done)")
    with ScriptedServer(by_marker({"SUMMARIZE": "a summary"}, default=root)) as server:
        rlm = RLM(model="openai/scripted", api_base=server.url, api_key="sk-test")
        ...

A demo server for benchmarks: ``python -m rlm_ray.testing serve --port 8000 --latency-ms 200``.

Standard library only (plus `rlm_ray.types` and `rlm_ray.errors` for `FakeLLM`): no litellm, no
Ray, so importing it is cheap and it runs in any process.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import socket
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rlm_ray.errors import LLMError
from rlm_ray.types import LLMReply

__all__ = [
    "FAULTS",
    "FakeLLM",
    "Reply",
    "ReplyFn",
    "Request",
    "ScriptedServer",
    "by_marker",
    "code",
    "records",
    "turns",
]


@dataclass(frozen=True)
class Request:
    """One chat-completions request, as a reply function sees it.

    `messages` are normalized to ``{"role": ..., "content": str}`` (content parts joined, ``None``
    as ``""``); `body` is the full JSON body as sent.
    """

    messages: list[dict[str, str]]
    model: str = ""
    body: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Request:
        """Build a `Request` from an OpenAI chat-completions JSON body."""
        raw = body.get("messages")
        if not isinstance(raw, list):
            raise ValueError("`messages` must be a list of {role, content} objects")
        messages = [_normalize_message(m) for m in raw]
        return cls(messages=messages, model=str(body.get("model", "")), body=dict(body))

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


def _as_reply(value: object) -> Reply:
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
    """A reply function for record-operator batches (rlm_ray/record_ops.py).

    A batch prompt numbers its items ``[1] ...``; each is answered by ``answer(task, item)``
    (`task`: the prompt's first line, e.g. ``"Condition: ..."``) on a line ``[k] answer``. A
    batch of more than `garble_above` items gets a reply with no numbers (a model that lost
    count). Any other request goes to `default` (e.g. the root's `turns`).
    """
    return _Records(answer, garble_above, default)


_RECORDS_HEAD = "\n\nItems:\n"
_RECORDS_TAIL = "\n\nReply with exactly "


@dataclass(frozen=True)
class _Records:
    answer: Callable[[str, str], str]
    garble_above: int | None
    default: Answer | None

    def __call__(self, request: Request) -> str | Reply:
        prompt = request.first_user
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


# --------------------------------------------------------------------------- shared answer logic


def _estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _apply_stop(content: str, stop: object) -> str:
    """Cut `content` at the first stop sequence, as a real server does (the stop is not sent)."""
    stops = [stop] if isinstance(stop, str) else list(stop) if isinstance(stop, list) else []
    cuts = [content.find(s) for s in stops if isinstance(s, str) and s]
    cuts = [c for c in cuts if c >= 0]
    return content[: min(cuts)] if cuts else content


def _completion_body(request: Request, content: str, ordinal: int) -> dict[str, Any]:
    prompt_tokens = _estimate_tokens(request.text)
    completion_tokens = _estimate_tokens(content)
    return {
        "id": f"chatcmpl-scripted-{ordinal}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
    return {"error": {"message": message, "type": kind.get(status, "server_error"), "code": status}}


# --------------------------------------------------------------------------- fault injection

FAULTS = ("429", "500", "502", "timeout", "drop", "malformed")
"""The fault kinds `ScriptedServer(fault_rate=...)` can inject."""


def _fault_reply(kind: str, timeout_s: float) -> Reply:
    if kind == "429":
        # A short, nonzero wait keeps tests fast: the openai SDK ignores "Retry-After: 0" and
        # falls back to its own 0.5 s+ backoff, but honours any delay in (0, 120] s, floats too.
        headers = {"Retry-After": "0.01"}
        return Reply("scripted fault: rate limited", status=429, headers=headers)
    if kind == "500":
        return Reply("scripted fault: internal server error", status=500)
    if kind == "502":  # what a proxy in front of a dead backend sends: HTML, not JSON
        page = b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
        return Reply(status=502, raw_body=page, headers={"Content-Type": "text/html"})
    if kind == "timeout":  # never answers: hangs, then hangs up
        return Reply(delay_s=timeout_s, drop_connection=True)
    if kind == "drop":
        return Reply(drop_connection=True)
    if kind == "malformed":
        return Reply(raw_body=b'{"id": "chatcmpl-broken", "choices": [{"message": ')
    raise ValueError(f"unknown fault {kind!r}; known: {FAULTS}")


def _draw(seed: int, ordinal: int) -> tuple[float, int]:
    """A uniform number in [0, 1) and a small int, both fixed by (seed, request ordinal)."""
    digest = hashlib.sha256(f"{seed}:{ordinal}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, digest[8]


# --------------------------------------------------------------------------- the HTTP server


class _HTTPServer(ThreadingHTTPServer):
    # Hundreds of clients connect at once: the default backlog of 5 drops SYNs, and each dropped
    # one costs the client a 1 s retransmit.
    request_queue_size = 1024
    daemon_threads = True
    scripted: ScriptedServer

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up (its timeout, our own stop()) is normal here, not worth a trace.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as litellm's pooled clients expect
    # Headers and body go out in two writes; with Nagle on, keep-alive calls each wait ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.scripted._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.scripted._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read the recorded requests instead

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            model = {"id": "scripted", "object": "model", "created": 0, "owned_by": "rlm-ray"}
            self.send_json(200, {"object": "list", "data": [model]})
        elif path in ("/health", "/v1/health"):
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json(404, _error_body(404, f"no route for GET {path}"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self.send_json(404, _error_body(404, f"no route for POST {path}"))
            return
        self.server.scripted._serve_chat(self, raw)

    def send_json(self, status: int, body: object) -> None:
        self.send_body(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def send_body(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        names = {k.lower() for k in headers}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drop(self) -> None:
        self.close_connection = True  # finish() then closes the socket: EOF, no response


class ScriptedServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1 that plays a scripted model.

    ``reply`` answers each request (see `Reply` for faults); ``latency_s`` is slept in the
    handler thread before every answer, so concurrent calls really overlap. ``port=0`` picks a
    free port. Use as a context manager, or `start()` / `stop()`.

    Fault injection: with ``fault_rate > 0`` a share of chat requests get one of ``faults``
    (names in `FAULTS`) instead of calling ``reply``. Whether request number *n* (in arrival
    order) is faulted, and with which kind, is fixed by ``sha256(f"{seed}:{n}")``, so a run is
    reproducible and a retry (a new *n*) can succeed. A ``"timeout"`` fault hangs for
    ``timeout_fault_s`` and then closes the connection. Injected faults are counted in
    `faults_injected` and listed, with the request each one answered, in `fault_log`.

    Rate limit: with ``max_requests_per_s`` set, a chat request arriving when that many were
    already accepted in the last second gets HTTP 429 (counted in `rate_limited`), as a
    provider's rate limiter would answer.

    Counters: `request_count` counts chat-completion requests (faults included), `in_flight` /
    `peak_concurrency` count requests between body read and response written, `requests` holds
    every parsed `Request`, `errors` the traceback of every exception the reply function raised
    (each also answered as HTTP 500 with the traceback in the error message).
    """

    def __init__(
        self,
        reply: ReplyFn,
        latency_s: float = 0.0,
        port: int = 0,
        *,
        fault_rate: float = 0.0,
        faults: Iterable[str] = FAULTS,
        seed: int = 0,
        timeout_fault_s: float = 30.0,
        max_requests_per_s: float | None = None,
    ) -> None:
        faults = tuple(faults)
        unknown = [f for f in faults if f not in FAULTS]
        if unknown or not faults:
            raise ValueError(f"`faults` must be a non-empty subset of {FAULTS}, got {faults!r}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"`fault_rate` must be in [0, 1], got {fault_rate!r}")
        self.reply = reply
        self.latency_s = latency_s
        self.port = port
        self.fault_rate = fault_rate
        self.faults = faults
        self.seed = seed
        self.timeout_fault_s = timeout_fault_s
        self.max_requests_per_s = max_requests_per_s
        self._accepted: list[float] = []  # arrival times of requests the rate limit let through
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.in_flight = 0
        self.reset_stats()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> ScriptedServer:
        """Bind 127.0.0.1 and serve in a daemon thread. Returns self."""
        if self._httpd is not None:
            raise RuntimeError("ScriptedServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.scripted = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"ScriptedServer:{httpd.server_address[1]}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake sleeping handlers, close open keep-alive connections, free the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # handlers sleeping out a latency drop their connection at once
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive handlers are blocked reading: unblock them
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to pass as litellm's `api_base`: ``http://127.0.0.1:PORT/v1``."""
        if self._httpd is None:
            raise RuntimeError("ScriptedServer is not running; call start() or use `with`")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # ----------------------------------------------------------------- stats

    def reset_stats(self) -> None:
        """Zero the counters and forget the recorded requests and errors."""
        with self._lock:
            self.request_count = 0
            self.peak_concurrency = self.in_flight  # requests still running keep counting
            self.faults_injected = 0
            self.rate_limited = 0
            self._accepted = []
            self._fault_log: list[tuple[str, Request]] = []
            self._requests: list[Request] = []
            self._errors: list[str] = []

    @property
    def requests(self) -> list[Request]:
        """The parsed requests received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def fault_log(self) -> list[tuple[str, Request]]:
        """Every injected fault as (kind, the request it answered), in arrival order (a copy)."""
        with self._lock:
            return list(self._fault_log)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of the exceptions the reply function raised (a copy)."""
        with self._lock:
            return list(self._errors)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
        if self._stopping.is_set():  # accepted just as stop() ran: it missed this one
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    # ----------------------------------------------------------------- one chat request

    def _serve_chat(self, handler: _Handler, raw: bytes) -> None:
        with self._lock:
            self.request_count += 1
            ordinal = self.request_count
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        try:
            status, body, headers, reply = self._respond(raw, ordinal)
            delay = self.latency_s + (reply.delay_s if reply else 0.0)
            stopped = delay > 0 and self._stopping.wait(delay)  # True: stop() woke us up
            if stopped or (reply is not None and reply.drop_connection):
                handler.drop()
            else:
                handler.send_body(status, body, headers)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, raw: bytes, ordinal: int) -> tuple[int, bytes, dict[str, str], Reply | None]:
        """Status, body and headers for one chat request, and the `Reply` behind them."""
        try:
            request = Request.from_body(json.loads(raw))
        except (ValueError, AttributeError) as exc:  # bad JSON, or not an object
            return _json_response(400, _error_body(400, f"invalid request body: {exc}"))
        with self._lock:
            self._requests.append(request)
        if request.body.get("stream"):
            message = "ScriptedServer does not support stream=true; call without streaming"
            return _json_response(400, _error_body(400, message))
        try:
            reply = (
                self._rate_limit()
                or self._fault(ordinal, request)
                or _as_reply(self.reply(request))
            )
        except Exception:
            trace = traceback.format_exc()
            with self._lock:
                self._errors.append(trace)
            return _json_response(500, _error_body(500, f"reply function raised:\n{trace}"))
        headers = dict(reply.headers or {})
        if reply.raw_body is not None:
            return reply.status, reply.raw_body, headers, reply
        if reply.status != 200:
            body = _error_body(reply.status, reply.content or f"scripted HTTP {reply.status}")
        else:
            content = _apply_stop(reply.content, request.body.get("stop"))
            body = _completion_body(request, content, ordinal)
        return reply.status, json.dumps(body).encode(), headers, reply

    def _rate_limit(self) -> Reply | None:
        if self.max_requests_per_s is None:
            return None
        now = time.monotonic()
        with self._lock:
            self._accepted = [t for t in self._accepted if now - t < 1.0]
            if len(self._accepted) < self.max_requests_per_s:
                self._accepted.append(now)
                return None
            self.rate_limited += 1
        return Reply("scripted rate limit: too many requests per second", status=429)

    def _fault(self, ordinal: int, request: Request) -> Reply | None:
        if self.fault_rate <= 0:
            return None
        draw, pick = _draw(self.seed, ordinal)
        if draw >= self.fault_rate:
            return None
        kind = self.faults[pick % len(self.faults)]
        with self._lock:
            self.faults_injected += 1
            self._fault_log.append((kind, request))
        return _fault_reply(kind, self.timeout_fault_s)


def _json_response(status: int, body: object) -> tuple[int, bytes, dict[str, str], None]:
    return status, json.dumps(body).encode(), {}, None


# --------------------------------------------------------------------------- in-process fake


class FakeLLM:
    """The scripted model in-process: ``fake(messages, model) -> LLMReply``, no HTTP.

    Uses the same reply functions as `ScriptedServer`. A `Reply` that is a fault (status other
    than 200, a raw body, a dropped connection) raises `rlm_ray.errors.LLMError`, as a gateway
    whose retries ran out would; `delay_s` is slept. Exceptions of the reply function propagate.
    `calls` and `requests` count what this object saw; under Ray each worker process has its own
    copy, so count in the driver or use `ScriptedServer` to count across processes.
    """

    def __init__(self, reply: ReplyFn) -> None:
        self.reply = reply
        self.calls = 0
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def __call__(
        self, messages: list[dict[str, Any]], model: str = "fake", *, stop: object = None
    ) -> LLMReply:
        started = time.perf_counter()
        body = {"model": model, "messages": messages, **({"stop": stop} if stop else {})}
        request = Request.from_body(body)
        with self._lock:
            self.calls += 1
            self.requests.append(request)
        reply = _as_reply(self.reply(request))
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        if reply.status != 200 or reply.raw_body is not None or reply.drop_connection:
            fault = "dropped connection" if reply.drop_connection else f"HTTP {reply.status}"
            raise LLMError(
                f"scripted fault: {fault}: {reply.content}", model=model, status_code=reply.status
            )
        text = _apply_stop(reply.content, stop)
        return LLMReply(
            text=text,
            model=model,
            input_tokens=_estimate_tokens(request.text),
            output_tokens=_estimate_tokens(text),
            latency_s=time.perf_counter() - started,
        )

    def __getstate__(self) -> dict[str, Any]:  # a Lock cannot be pickled (Ray ships this)
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


# --------------------------------------------------------------------------- demo CLI


def demo_reply(request: Request) -> str:
    """The CLI's default model: ``FINAL(ok)`` to a call with a system prompt (an RLM root or
    child turn), ``ok`` to a plain call (a leaf `llm_query`), so any RLM run ends in one turn."""
    return "FINAL(ok)" if request.system else "ok"


def echo_reply(request: Request) -> str:
    """The CLI's ``--echo`` model: answers with the last user message."""
    return request.last_user


def main(argv: list[str] | None = None) -> None:
    """``python -m rlm_ray.testing serve --port N --latency-ms M [--echo]``."""
    parser = argparse.ArgumentParser(prog="python -m rlm_ray.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a scripted model on 127.0.0.1 until Ctrl-C")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="sleep before each answer")
    serve.add_argument("--echo", action="store_true", help="answer with the last user message")
    serve.add_argument("--fault-rate", type=float, default=0.0, help="share of injected faults")
    serve.add_argument("--seed", type=int, default=0, help="seed of the fault injection")
    args = parser.parse_args(argv)
    reply = echo_reply if args.echo else demo_reply
    server = ScriptedServer(
        reply,
        latency_s=args.latency_ms / 1000,
        port=args.port,
        fault_rate=args.fault_rate,
        seed=args.seed,
    )
    with server:
        print(f"listening {server.url}  (model: openai/<any name>, any api_key)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"stopped after {server.request_count} requests", flush=True)


if __name__ == "__main__":
    main()
