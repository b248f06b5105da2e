"""`ScriptedServer`: an OpenAI-compatible chat-completions server on 127.0.0.1 that plays a
scripted model, with latency, fault injection and a rate limit. Standard library only."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rlm_ray.testing.script import Reply, ReplyFn, Request, apply_stop, as_reply, estimate_tokens


def _completion_body(request: Request, content: str, ordinal: int) -> dict[str, Any]:
    prompt_tokens = estimate_tokens(request.text)
    completion_tokens = estimate_tokens(content)
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
        self.server.scripted._saw(self)
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
        self.server.scripted._saw(self)
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
    (each also answered as HTTP 500 with the traceback in the error message), `http_log` every
    HTTP request of any method and path as (method, path, headers): what a client sent, even
    where no chat route answers (a provider's own path under `url`).
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
        self.port = port
        self._settings = {
            "reply": reply,
            "latency_s": latency_s,
            "fault_rate": fault_rate,
            "faults": faults,
            "seed": seed,
            "timeout_fault_s": timeout_fault_s,
            "max_requests_per_s": max_requests_per_s,
        }
        self.reply = reply
        self.latency_s = latency_s
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
            self.faults_injected = 0
            self.rate_limited = 0
            self._accepted = []
            self._fault_log: list[tuple[str, Request]] = []
            self._requests: list[Request] = []
            self._errors: list[str] = []
            self._http_log: list[tuple[str, str, dict[str, str]]] = []

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

    def _saw(self, handler: _Handler) -> None:
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
            status, body, headers, reply = self._respond(raw, ordinal, dict(handler.headers))
            delay = self.latency_s + (reply.delay_s if reply else 0.0)
            stopped = delay > 0 and self._stopping.wait(delay)  # True: stop() woke us up
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

    def _respond(
        self, raw: bytes, ordinal: int, received: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str], Reply | None]:
        """Status, body and headers for one chat request (sent with the `received` headers),
        and the `Reply` behind them."""
        try:
            request = Request.from_body(json.loads(raw), received)
        except (ValueError, AttributeError) as exc:  # bad JSON, or not an object
            return _json_response(400, _error_body(400, f"invalid request body: {exc}"))
        with self._lock:
            self._requests.append(request)
        if request.body.get("stream"):
            message = "ScriptedServer does not support stream=true; call without streaming"
            return _json_response(400, _error_body(400, message))
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
            return _json_response(500, _error_body(500, f"reply function raised:\n{trace}"))
        headers = dict(reply.headers or {})
        if reply.raw_body is not None:
            return reply.status, reply.raw_body, headers, reply
        if reply.status != 200:
            body = _error_body(reply.status, reply.content or f"scripted HTTP {reply.status}")
        else:
            content = apply_stop(reply.content, request.body.get("stop"))
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
