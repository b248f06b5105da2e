"""`ScriptedServer`'s HTTP side: the threaded server and the request handler (routes,
keep-alive, dropped connections). What is answered is `server.ScriptedServer`'s business."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from rlm_ray.testing.responses import error_body


class Scripted(Protocol):
    """What the handler asks of `ScriptedServer` (no import of it: it imports this module)."""

    slots: int | None

    def track_connection(self, conn: socket.socket) -> None: ...

    def untrack_connection(self, conn: socket.socket) -> None: ...

    def saw_request(self, handler: Handler) -> None: ...

    def serve_chat(self, handler: Handler, raw: bytes) -> None: ...

    def serve_embeddings(self, handler: Handler, raw: bytes) -> None: ...

    def slot_states(self) -> list[dict[str, Any]] | None: ...


class HTTPServer(ThreadingHTTPServer):
    # Hundreds of clients connect at once: the default backlog of 5 drops SYNs, and each dropped
    # one costs the client a 1 s retransmit.
    request_queue_size = 1024
    daemon_threads = True
    scripted: Scripted

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up (its timeout, our own stop()) is normal here, not worth a trace.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as litellm's pooled clients expect
    # Headers and body go out in two writes; with Nagle on, keep-alive calls each wait ~40 ms.
    disable_nagle_algorithm = True
    server: HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.scripted.track_connection(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.scripted.untrack_connection(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read the recorded requests instead

    def do_GET(self) -> None:
        self.server.scripted.saw_request(self)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            model = {"id": "scripted", "object": "model", "created": 0, "owned_by": "rlm-ray"}
            self.send_json(200, {"object": "list", "data": [model]})
        elif path in ("/health", "/v1/health"):
            self.send_json(200, {"status": "ok"})
        elif path == "/slots" and self.server.scripted.slots is not None:
            self.send_json(200, self.server.scripted.slot_states())
        else:
            self.send_json(404, error_body(404, f"no route for GET {path}"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.scripted.saw_request(self)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/embeddings", "/embeddings"):
            self.server.scripted.serve_embeddings(self, raw)
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self.send_json(404, error_body(404, f"no route for POST {path}"))
            return
        self.server.scripted.serve_chat(self, raw)

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
