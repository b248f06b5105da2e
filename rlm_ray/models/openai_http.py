"""The lean model-call path: a direct OpenAI-compatible chat client (the only aiohttp import),
and its `/embeddings` call (`embeddings`, for a cascade's proxy: models/embeddings.py).

litellm spends 4-7 ms of CPU on every call (request mapping, logging objects, pydantic
responses, the OpenAI SDK's httpx client); a gateway making a 1024-wide fan-out on a 2-core
machine is bound by it. For a server that speaks the OpenAI chat API itself (`openai/NAME` or
`hosted_vllm/NAME` with an `api_base`: vLLM, llama.cpp, Ollama, rlm-ray's own local model,
a proxy) there is nothing to map, so `llm.acomplete` sends those calls here: one POST with a
shared aiohttp session per process (one connection pool, no per-call connection), the JSON
read directly. litellm stays the provider layer for everything else and still prices these
calls (`llm.py`). Measured with benchmarks/litellm_floor.py: ~0.2-0.3 ms of CPU a call
against litellm's ~4 ms.

`is_lean(model, api_base, kwargs)` says whether a call may go this way: a plain OpenAI
provider, an `api_base`, and only keywords that go into the request body unchanged.
`chat(...)` makes one attempt (retries are `llm.py`'s) and raises the errors below, which
`llm.py` classifies like litellm's: an HTTP error status, a dropped connection, a timeout or a
body that is not JSON, each with the server's own words in the message.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

LEAN_PROVIDERS = ("openai/", "hosted_vllm/")
# Keywords that go into the JSON body as they are (litellm maps nothing for these providers).
BODY_KEYWORDS = frozenset(
    {"temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n"}
    | {"presence_penalty", "frequency_penalty", "logit_bias", "user", "logprobs", "top_logprobs"}
    # a JSON schema the server enforces (plan turns): OpenAI's form, which llama.cpp's server
    # and vLLM take as they are
    | {"response_format"}
)
# Keywords about the call, not the body: handled by llm.py / ignored here.
CALL_KEYWORDS = frozenset({"timeout", "num_retries", "max_retries"})
OFF_VARIABLE = "RLM_RAY_LEAN_HTTP"  # "0": every call through litellm (to compare, or a bug)


def is_lean(model: str, api_base: str | None, kwargs: dict[str, Any]) -> bool:
    """May this call skip litellm? An OpenAI-compatible server at a known address, plain text
    messages, and no keyword litellm would have to translate (tools, headers, streaming... all
    go the full litellm way; `response_format` goes into the body as it is)."""
    if not api_base or not model.startswith(LEAN_PROVIDERS):
        return False
    if os.environ.get(OFF_VARIABLE, "1") == "0":
        return False
    return all(k in BODY_KEYWORDS or k in CALL_KEYWORDS for k in kwargs)


@dataclass
class ChatReply:
    text: str
    usage: dict[str, Any]  # the server's `usage` object, as sent ({} if none)
    server_s: float | None = None  # the server's own time on it (llama.cpp's `timings`)


class APIStatusError(Exception):
    """The server answered with an HTTP error status (a subclass below names the common ones,
    as the OpenAI SDK and litellm do)."""

    def __init__(self, message: str, status_code: int, headers: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = _Response(headers)  # `llm.py` reads Retry-After from it


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class BadGatewayError(APIStatusError):
    pass


class ServiceUnavailableError(APIStatusError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
}


def status_error(status: int, raw: bytes, headers: Any) -> APIStatusError:
    """The error for an HTTP error answer, named for its status, with the server's message."""
    kind = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    return kind(_error_text(raw), status, headers)


class APIConnectionError(ConnectionError):
    """The connection could not be made, or was dropped before a full response."""


class APITimeoutError(TimeoutError):
    """No response within the request timeout."""


class MalformedResponseError(ValueError):
    """A 200 response whose body is not a chat completion (not JSON, or no choices)."""


@dataclass
class _Response:
    headers: Any


_SESSION: tuple[Any, Any] | None = None  # (event loop, its aiohttp session)


def preload() -> None:
    """Import aiohttp now (~0.15 s of CPU), e.g. in a thread while nothing is asked yet."""
    import aiohttp  # noqa: F401


def _session() -> Any:
    """The shared session of this process's event loop (a gateway has one, for its life): one
    connection pool for every call, kept alive between calls.

    No connection limit of its own: the gateway's per-run semaphore already caps the calls in
    flight, and a wide fan-out must not queue behind a pool size."""
    global _SESSION
    import aiohttp

    loop = asyncio.get_running_loop()
    if _SESSION is None or _SESSION[0] is not loop or _SESSION[1].closed:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        # trust_env: HTTP(S)_PROXY / NO_PROXY apply, as they do to litellm's httpx client
        _SESSION = (loop, aiohttp.ClientSession(connector=connector, trust_env=True))
    return _SESSION[1]


async def aclose() -> None:
    """Close this process's session (a gateway never needs to; a script that runs several
    event loops one after another closes it before its loop ends)."""
    global _SESSION
    if _SESSION is not None:
        session, _SESSION = _SESSION[1], None
        await session.close()


async def chat(
    model: str,
    messages: list[dict[str, Any]],
    *,
    api_base: str,
    api_key: str | None,
    kwargs: dict[str, Any],
    timeout_s: float,
    connect_timeout_s: float,
) -> ChatReply:
    """One chat-completions POST to `api_base`; raises the errors above (one attempt)."""
    body = {"model": model.split("/", 1)[1], "messages": messages}
    body.update((k, v) for k, v in kwargs.items() if k in BODY_KEYWORDS)
    raw = await _post(
        model, api_base, "/chat/completions", body, api_key, timeout_s, connect_timeout_s
    )
    return _parse(raw)


async def embeddings(
    model: str,
    inputs: list[str],
    *,
    api_base: str,
    api_key: str | None,
    timeout_s: float,
    connect_timeout_s: float,
) -> tuple[list[list[float]], dict[str, Any]]:
    """One `/embeddings` POST to `api_base`: each input's vector, in order, and the server's
    `usage`; raises the errors above (one attempt)."""
    body = {"model": model.split("/", 1)[1], "input": inputs, "encoding_format": "float"}
    raw = await _post(model, api_base, "/embeddings", body, api_key, timeout_s, connect_timeout_s)
    try:
        document = json.loads(raw)
        rows = sorted(document["data"], key=lambda row: row.get("index", 0))
        vectors = [list(row["embedding"]) for row in rows]
    except (ValueError, KeyError, TypeError) as exc:
        start = raw[:120].decode("utf-8", "replace")
        raise MalformedResponseError(f"not an embeddings response ({exc}): {start!r}") from None
    if len(vectors) != len(inputs):
        raise MalformedResponseError(f"{len(vectors)} embeddings for {len(inputs)} inputs")
    return vectors, document.get("usage") or {}


async def _post(
    model: str,
    api_base: str,
    path: str,
    body: dict[str, Any],
    api_key: str | None,
    timeout_s: float,
    connect_timeout_s: float,
) -> bytes:
    """One JSON POST to `api_base` + `path`: the body of a 2xx answer, else the errors above."""
    import aiohttp

    headers = {"Content-Type": "application/json"}
    key = api_key or _env_key(model)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = api_base.rstrip("/") + path
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
    data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        async with _session().post(url, data=data, headers=headers, timeout=timeout) as response:
            raw = await response.read()
            status, response_headers = response.status, response.headers
    except asyncio.TimeoutError:  # aiohttp's own timeout errors are TimeoutErrors too
        raise APITimeoutError(f"no response within {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        what = str(exc) or type(exc).__name__
        raise APIConnectionError(f"{type(exc).__name__}: {what}") from None
    if status >= 400:
        raise status_error(status, raw, response_headers)
    return raw


def _env_key(model: str) -> str | None:
    # litellm's own variables for these providers
    name = "HOSTED_VLLM_API_KEY" if model.startswith("hosted_vllm/") else "OPENAI_API_KEY"
    return os.environ.get(name)


def _error_text(raw: bytes) -> str:
    """The server's message: `error.message` of a JSON error body, else the body's start (the
    status is in the error's kind: `llm.failure_kind`)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        document = json.loads(text)
        error = document.get("error", document) if isinstance(document, dict) else document
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            text = str(message)
    except ValueError:
        text = " ".join(text.split())  # an HTML error page on one line
    return text[:300] or "(empty body)"


def _parse(raw: bytes) -> ChatReply:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        start = raw[:80].decode("utf-8", "replace")
        raise MalformedResponseError(f"{exc} (body starts {start!r})") from exc
    try:
        message = document["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        start = raw[:120].decode("utf-8", "replace")
        raise MalformedResponseError(f"no choices[0].message in the response: {start!r}") from None
    usage = document.get("usage") if isinstance(document, dict) else None
    text = message.get("content") or ""
    return ChatReply(text=text, usage=usage or {}, server_s=_server_s(document))


def _server_s(document: Any) -> float | None:
    """The seconds the server says it worked on the request: llama.cpp's `timings` (reading
    the prompt + writing the answer); None if it does not say. What the rest of the call's
    time went to is its wait in the server's queue."""
    timings = document.get("timings") if isinstance(document, dict) else None
    if not isinstance(timings, dict):
        return None
    spent = [timings.get("prompt_ms"), timings.get("predicted_ms")]
    milliseconds = [float(ms) for ms in spent if isinstance(ms, (int, float)) and 0 <= ms < 1e9]
    return sum(milliseconds) / 1000.0 if len(milliseconds) == 2 else None


async def busy_slots(api_base: str, timeout_s: float = 2.0) -> int | None:
    """How many slots a llama.cpp server (rlm-ray's own, or one of yours) says it is working
    on: GET /slots beside its `/v1`. None if it does not say (another server, an error)."""
    import aiohttp

    root = api_base.rstrip("/").removesuffix("/v1")
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with _session().get(root + "/slots", timeout=timeout) as response:
            if response.status != 200:
                return None
            slots = json.loads(await response.read())
    except (asyncio.TimeoutError, aiohttp.ClientError, ValueError):
        return None
    if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
        return None
    # `is_processing` in current llama.cpp; `state` 1 (processing) in older ones
    return sum(1 for s in slots if s.get("is_processing") or s.get("state") == 1)
