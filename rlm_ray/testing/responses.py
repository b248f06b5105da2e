"""What `ScriptedServer` sends: chat-completion and error bodies (llama.cpp's `timings`
included when asked), and the faults it can inject. Standard library only."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from rlm_ray.testing.script import Reply, Request, estimate_tokens


def completion_body(request: Request, content: str, ordinal: int) -> dict[str, Any]:
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


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
    return {"error": {"message": message, "type": kind.get(status, "server_error"), "code": status}}


# --------------------------------------------------------------------------- fault injection

FAULTS = ("429", "500", "502", "timeout", "drop", "malformed")
"""The fault kinds `ScriptedServer(fault_rate=...)` can inject."""


def fault_reply(kind: str, timeout_s: float) -> Reply:
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


def draw(seed: int, ordinal: int) -> tuple[float, int]:
    """A uniform number in [0, 1) and a small int, both fixed by (seed, request ordinal)."""
    digest = hashlib.sha256(f"{seed}:{ordinal}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, digest[8]


def with_timings(body: bytes, held: list[float]) -> bytes:
    """A completion `body` with llama.cpp's `timings` (milliseconds) for a request that held a
    slot for `held[0]` seconds: half reading the prompt, half writing the answer (only their
    sum means anything here). `held` empty: no slots, the body as it is."""
    if not held:
        return body
    document = json.loads(body)
    usage, half_ms = document.get("usage") or {}, held[0] * 500.0
    document["timings"] = {
        "prompt_n": usage.get("prompt_tokens", 0),
        "prompt_ms": half_ms,
        "predicted_n": usage.get("completion_tokens", 0),
        "predicted_ms": half_ms,
    }
    return json.dumps(document).encode()
