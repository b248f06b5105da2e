"""`ScriptedServer`: an OpenAI-compatible chat-completions server on 127.0.0.1 that plays a
scripted model, with latency, fault injection, a rate limit and llama.cpp-like slots. Standard
library only (its HTTP side is `handler.py`, its bodies and faults `responses.py`)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from rlm_ray.testing import embeddings
from rlm_ray.testing.handler import Handler, HTTPServer
from rlm_ray.testing.responses import (
    FAULTS,
    completion_body,
    draw,
    error_body,
    fault_reply,
    with_timings,
)
from rlm_ray.testing.script import Reply, ReplyFn, Request, apply_stop, as_reply


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

    Slots: with ``slots=N`` the server works on at most N chat requests at once, as a
    llama.cpp server with N slots does: the others wait in its queue (the reply function runs
    and the latency is slept while a slot is held). Each answer then carries llama.cpp's
    ``timings`` (the time its slot was held), GET /slots lists the slots with
    ``is_processing``, and `processing` / `peak_processing` count requests holding a slot.
    Without it, /slots answers 404 and no answer has ``timings``.

    Rate limit: with ``max_requests_per_s`` set, a chat request arriving when that many were
    already accepted in the last second gets HTTP 429 (counted in `rate_limited`), as a
    provider's rate limiter would answer.

    Counters: `request_count` counts chat-completion requests (faults included), `in_flight` /
    `peak_concurrency` count requests between body read and response written, `requests` holds
    every parsed `Request`, `errors` the traceback of every exception the reply function raised
    (each also answered as HTTP 500 with the traceback in the error message), `http_log` every
    HTTP request of any method and path as (method, path, headers): what a client sent, even
    where no chat route answers (a provider's own path under `url`).

    Embeddings: POST /v1/embeddings answers each input with a hashed bag of its words
    (`testing/embeddings.py`), after `embedding_delay_s`; each request is listed in
    `embedding_requests` as (model, inputs). ``embeddings=False``: it answers 404, as a chat
    server without an embedding endpoint does.
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
        slots: int | None = None,
        embeddings: bool = True,
        embedding_delay_s: float = 0.0,
    ) -> None:
        faults = tuple(faults)
        unknown = [f for f in faults if f not in FAULTS]
        if unknown or not faults:
            raise ValueError(f"`faults` must be a non-empty subset of {FAULTS}, got {faults!r}")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"`fault_rate` must be in [0, 1], got {fault_rate!r}")
        self.port = port
        self._settings = {
            "reply": reply,
            "latency_s": latency_s,
            "fault_rate": fault_rate,
            "faults": faults,
            "seed": seed,
            "timeout_fault_s": timeout_fault_s,
            "max_requests_per_s": max_requests_per_s,
            "slots": slots,
            "embeddings": embeddings,
            "embedding_delay_s": embedding_delay_s,
        }
        self.reply = reply
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.faults = faults
        self.seed = seed
        self.timeout_fault_s = timeout_fault_s
        self.max_requests_per_s = max_requests_per_s
        if slots is not None and slots < 1:
            raise ValueError(f"`slots` must be >= 1 or None, got {slots!r}")
        self.slots = slots
        self.embeddings = embeddings
        self.embedding_delay_s = embedding_delay_s
        self._gates: dict[int, threading.BoundedSemaphore] = {}  # one per slot count used
        self.processing = 0
        self._accepted: list[float] = []  # arrival times of requests the rate limit let through
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.in_flight = 0
        self.reset_stats()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> ScriptedServer:
        """Bind 127.0.0.1 and serve in a daemon thread. Returns self."""
        if self._httpd is not None:
            raise RuntimeError("ScriptedServer is already running")
        self._stopping.clear()
        httpd = HTTPServer(("127.0.0.1", self.port), Handler)
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

    def reset(self) -> None:
        """Restore every setting given to the constructor (`reply`, `latency_s`, the faults,
        the rate limit) and zero the counters: a shared server, as good as new for the next test."""
        for name, value in self._settings.items():
            setattr(self, name, value)
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero the counters and forget the recorded requests and errors."""
        with self._lock:
            self.request_count = 0
            self.peak_concurrency = self.in_flight  # requests still running keep counting
            self.peak_processing = self.processing
            self.faults_injected = 0
            self.rate_limited = 0
            self._accepted = []
            self._fault_log: list[tuple[str, Request]] = []
            self._requests: list[Request] = []
            self._errors: list[str] = []
            self._http_log: list[tuple[str, str, dict[str, str]]] = []
            self._embedding_requests: list[tuple[str, int]] = []

    @property
    def embedding_requests(self) -> list[tuple[str, int]]:
        """Every embeddings request answered so far: (model, number of inputs), in order."""
        with self._lock:
            return list(self._embedding_requests)

    @property
    def requests(self) -> list[Request]:
        """The parsed requests received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def http_log(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every HTTP request received, any path: (method, path, headers), in order (a copy)."""
        with self._lock:
            return list(self._http_log)

    def saw_request(self, handler: Handler) -> None:
        with self._lock:
            self._http_log.append((handler.command, handler.path, dict(handler.headers)))

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

    def track_connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
        if self._stopping.is_set():  # accepted just as stop() ran: it missed this one
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def untrack_connection(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    # ----------------------------------------------------------------- one chat request

    def serve_chat(self, handler: Handler, raw: bytes) -> None:
        with self._lock:
            self.request_count += 1
            ordinal = self.request_count
            self.in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        try:
            with self._slot() as held:
                if held is None:  # stopped while queued
                    handler.drop()
                    return
                status, body, headers, reply = self._respond(raw, ordinal, dict(handler.headers))
                delay = self.latency_s + (reply.delay_s if reply else 0.0)
                stopped = delay > 0 and self._stopping.wait(delay)  # True: stop() woke us up
            if status == 200 and reply is not None and reply.raw_body is None:
                body = with_timings(body, held)
        finally:
            # subtle: before the answer leaves. A fast client that has it may send its next
            # request at once, before this thread runs again: counted after the write, both
            # would be "in flight" together and a cap on the client's side would look broken.
            with self._lock:
                self.in_flight -= 1
        if stopped or (reply is not None and reply.drop_connection):
            handler.drop()
        else:
            handler.send_body(status, body, headers)

    def serve_embeddings(self, handler: Handler, raw: bytes) -> None:
        if not self.embeddings:
            handler.send_json(404, error_body(404, "no route for POST /v1/embeddings"))
            return
        status, body, model, inputs = embeddings.answer(raw)
        if self.embedding_delay_s > 0 and self._stopping.wait(self.embedding_delay_s):
            handler.drop()
            return
        if status == 200:
            with self._lock:
                self._embedding_requests.append((model, inputs))
        handler.send_json(status, body)

    @contextlib.contextmanager
    def _slot(self) -> Iterator[list[float] | None]:
        """A slot held while a request is worked on (with `slots` set; else no wait): yields
        a list that holds the seconds it was held once the block ends (None if no slot was
        given: the server stopped)."""
        slots = self.slots
        if slots is None:
            yield []
            return
        with self._lock:
            gate = self._gates.setdefault(slots, threading.BoundedSemaphore(slots))
        while not gate.acquire(timeout=0.05):
            if self._stopping.is_set():
                yield None
                return
        held: list[float] = []
        started = time.monotonic()
        with self._lock:
            self.processing += 1
            self.peak_processing = max(self.peak_processing, self.processing)
        try:
            yield held
        finally:
            with self._lock:
                self.processing -= 1
            held.append(time.monotonic() - started)
            gate.release()

    def slot_states(self) -> list[dict[str, Any]] | None:
        """What GET /slots answers: llama.cpp's list of slots (None without `slots`)."""
        if self.slots is None:
            return None
        busy = self.processing
        return [{"id": i, "is_processing": i < busy} for i in range(self.slots)]

    def _respond(
        self, raw: bytes, ordinal: int, received: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str], Reply | None]:
        """Status, body and headers for one chat request (sent with the `received` headers),
        and the `Reply` behind them."""
        try:
            request = Request.from_body(json.loads(raw), received)
        except (ValueError, AttributeError) as exc:  # bad JSON, or not an object
            return _json_response(400, error_body(400, f"invalid request body: {exc}"))
        with self._lock:
            self._requests.append(request)
        if request.body.get("stream"):
            message = "ScriptedServer does not support stream=true; call without streaming"
            return _json_response(400, error_body(400, message))
        try:
            reply = self._rate_limit() or self._fault(ordinal, request)
            if reply is None:
                # subtle: its own line. The traceback sent back quotes it, and litellm maps an
                # error whose text says "rate_limit" to a RateLimitError.
                reply = as_reply(self.reply(request))
        except Exception:
            trace = traceback.format_exc()
            with self._lock:
                self._errors.append(trace)
            return _json_response(500, error_body(500, f"reply function raised:\n{trace}"))
        headers = dict(reply.headers or {})
        if reply.raw_body is not None:
            return reply.status, reply.raw_body, headers, reply
        if reply.status != 200:
            body = error_body(reply.status, reply.content or f"scripted HTTP {reply.status}")
        else:
            content = apply_stop(reply.content, request.body.get("stop"))
            body = completion_body(request, content, ordinal)
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
        chance, pick = draw(self.seed, ordinal)
        if chance >= self.fault_rate:
            return None
        kind = self.faults[pick % len(self.faults)]
        with self._lock:
            self.faults_injected += 1
            self._fault_log.append((kind, request))
        return fault_reply(kind, self.timeout_fault_s)


def _json_response(status: int, body: object) -> tuple[int, bytes, dict[str, str], None]:
    return status, json.dumps(body).encode(), {}, None
