"""`FakeLLM`: the scripted model called in-process, returning `LLMReply`; no HTTP, no Ray."""

from __future__ import annotations

import threading
import time
from typing import Any

from rlm_ray.errors import LLMError
from rlm_ray.testing.script import ReplyFn, Request, apply_stop, as_reply, estimate_tokens
from rlm_ray.types import LLMReply

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
        self, messages: list[dict[str, Any]], model: str = "fake", *, stop: object = None, **kw: Any
    ) -> LLMReply:
        started = time.perf_counter()
        body = {"model": model, "messages": messages, **({"stop": stop} if stop else {}), **kw}
        request = Request.from_body(body)
        with self._lock:
            self.calls += 1
            self.requests.append(request)
        reply = as_reply(self.reply(request))
        if reply.delay_s > 0:
            time.sleep(reply.delay_s)
        if reply.status != 200 or reply.raw_body is not None or reply.drop_connection:
            fault = "dropped connection" if reply.drop_connection else f"HTTP {reply.status}"
            raise LLMError(
                f"scripted fault: {fault}: {reply.content}", model=model, status_code=reply.status
            )
        text = apply_stop(reply.content, stop)
        return LLMReply(
            text=text,
            model=model,
            input_tokens=estimate_tokens(request.text),
            output_tokens=estimate_tokens(text),
            latency_s=time.perf_counter() - started,
        )

    def __getstate__(self) -> dict[str, Any]:  # a Lock cannot be pickled (Ray ships this)
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
