"""Model calls: the only module that imports litellm.

`acomplete` makes one chat call with rlm-ray's retry policy (jittered exponential backoff on 429
honouring Retry-After, on any 5xx, on timeouts and on dropped connections; litellm's and the
OpenAI SDK's own retries are turned off so attempts are counted in one place) and returns an
`LLMReply` with tokens and cost from litellm's bundled cost map.

The lean path: a call to an OpenAI-compatible server at an `api_base` (`openai/` or
`hosted_vllm/`, plain keywords: `openai_http.is_lean`) is sent by `openai_http.chat`, one POST
on a shared aiohttp pool, instead of `litellm.acompletion` (~0.3 ms of CPU against ~4-6 ms);
litellm still prices it (`cost_per_token` on the reply's usage: `completion_cost`'s number).
The retry loop, the failure kinds and the `LLMError` fields are the same on both paths.

litellm is imported lazily (it costs 2-6 s of CPU per process): importing this module is cheap,
so the CLI and the REPL processes never pay for it, and a gateway pays it only when a call needs
it (`needs_litellm`), in a thread of its own while its event loop goes on serving the calls that
do not. A call to a model litellm's map does not know (`model_names.surely_unmapped`), on the
lean path, has nothing for litellm to do: no mapping, no price (0, as litellm says for it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from rlm_ray.errors import ConfigError, LLMError
from rlm_ray.models import model_names, openai_http
from rlm_ray.safety.redact import process_secrets, redact
from rlm_ray.types import LLMReply

DEFAULT_CONTEXT_WINDOW = 32_768
CONNECT_TIMEOUT_S = 5.0
_BACKOFF_BASE_S = 0.25
_BACKOFF_CAP_S = 30.0


@dataclass
class LLMRequest:
    """One chat call. `api_key` stays out of traces and reprs."""

    model: str
    messages: list[dict[str, Any]]  # content: str, or corpus prompt parts (see runtime)
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 120.0
    max_retries: int = 4
    # A model rlm-ray serves itself (`model="local"`) has a server on each node: node id -> URL;
    # the gateway that makes the call picks its own node's (see `for_node`).
    api_base_by_node: dict[str, str] | None = None
    # The models the run may call (as requests name them): a gateway refuses any other, so
    # that litellm never takes the key of a provider the user did not configure.
    allowed_models: tuple[str, ...] = ()
    # The longest prompt the model's window allows (`corpus.max_prompt_chars`): a gateway
    # refuses a longer one before any corpus slice in it is read.
    max_prompt_chars: int | None = None
    # An embedding call (rlm_ray/models/embeddings.py): each message's content is one input.
    embed: bool = False

    def for_node(self, node_id: str) -> LLMRequest:
        """This request aimed at the local model server of `node_id` (itself if not local)."""
        if not self.api_base_by_node:
            return self
        api_base = self.api_base_by_node.get(node_id)
        if api_base is None:
            raise LLMError(
                f"no local model server for {self.model!r} on node {node_id[:12]} (the node "
                "joined after the run started?)",
                model=self.model,
            )
        return replace(self, api_base=api_base, api_base_by_node=None)


def _litellm():
    # Never let an import reach the network for the cost map (it would on every process start).
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


_LOADING: concurrent.futures.Future | None = None  # litellm, imported by a thread of its own
_LOADING_LOCK = threading.Lock()


async def litellm_loaded() -> Any:
    """litellm, imported by a thread the first time it is asked for, so that the event loop
    of the process (a gateway's) goes on serving calls that do not need it while it loads."""
    global _LOADING
    with _LOADING_LOCK:
        if _LOADING is None:
            _LOADING = concurrent.futures.Future()
            threading.Thread(
                target=_load_litellm, args=(_LOADING,), name="litellm-import", daemon=True
            ).start()
        loading = _LOADING
    return await asyncio.wrap_future(loading)


def _load_litellm(loading: concurrent.futures.Future) -> None:
    try:
        loading.set_result(_litellm())
    except BaseException as exc:  # every call that needs it will say why
        loading.set_exception(exc)


def preload_lean_path() -> None:
    """Import the lean path's HTTP client and read litellm's model map (~0.2 s of CPU, no
    litellm): a gateway does it in a thread as it starts."""
    openai_http.preload()
    model_names.surely_unmapped("openai/preload")


def needs_litellm(model: str, api_base: str | None, kwargs: dict[str, Any]) -> bool:
    """Whether a call of `model` needs litellm: every call but one on the lean path to a model
    litellm's map does not hold (it would neither map the request nor price the reply)."""
    lean = openai_http.is_lean(model, api_base, kwargs)
    return not (lean and model_names.surely_unmapped(model))


def check_model(model: str) -> None:
    """Raise `ConfigError` if litellm cannot tell which provider serves `model`."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"`model` must be a litellm model string, got {model!r}")
    litellm = _litellm()
    try:
        litellm.get_llm_provider(model)
    except Exception as exc:
        raise ConfigError(
            f"unknown model {model!r}: litellm cannot resolve it to a provider; "
            "use 'provider/name', e.g. 'openai/gpt-4o-mini' (with --api-base for local servers)"
        ) from exc


def context_window(model: str) -> int:
    """The model's input window from litellm's model map, or a conservative default (also for a
    model of an OpenAI-compatible server that the map surely does not hold: litellm not loaded)."""
    if not window_needs_litellm(model):
        return DEFAULT_CONTEXT_WINDOW
    try:
        info = _litellm().get_model_info(model)
        return int(info.get("max_input_tokens") or info.get("max_tokens") or DEFAULT_CONTEXT_WINDOW)
    except Exception:
        return DEFAULT_CONTEXT_WINDOW


def window_needs_litellm(model: str) -> bool:
    """False for a model of an OpenAI-compatible server that litellm's map surely does not hold
    (its window is the default); litellm is asked about every other model."""
    return not (model.startswith(openai_http.LEAN_PROVIDERS) and model_names.surely_unmapped(model))


async def acomplete(request: LLMRequest) -> LLMReply:
    """One model call, retried on transient failures; raises `LLMError` when retries run out.

    An OpenAI-compatible server at an `api_base` is called directly (`openai_http.py`, the lean
    path: no litellm work per call but the price); every other call goes through litellm."""
    lean = openai_http.is_lean(request.model, request.api_base, request.kwargs)
    litellm = None
    if not lean or not model_names.surely_unmapped(request.model):  # `needs_litellm`
        litellm = await litellm_loaded()
    started = time.monotonic()
    for attempt in range(1, request.max_retries + 2):
        try:
            if lean:
                chat = await _lean_chat(request)
            else:
                assert litellm is not None
                response = await litellm.acompletion(**_call_args(request))
        except Exception as exc:
            if attempt > request.max_retries or not _transient(exc):
                raise _as_llm_error(exc, request, attempt) from None
            await asyncio.sleep(_backoff_s(exc, attempt))
            continue
        latency = time.monotonic() - started
        if lean:
            return _lean_reply(litellm, chat, request, attempt, latency)
        return _reply(litellm, response, request, attempt, latency)
    raise AssertionError("unreachable")


def _lean_chat(request: LLMRequest) -> Any:
    assert request.api_base is not None  # `is_lean` checked it
    timeout = request.kwargs.get("timeout", request.timeout_s)
    timeout_s = float(timeout) if isinstance(timeout, (int, float)) else request.timeout_s
    return openai_http.chat(
        request.model,
        request.messages,
        api_base=request.api_base,
        api_key=request.api_key,
        kwargs=request.kwargs,
        timeout_s=timeout_s,
        connect_timeout_s=min(CONNECT_TIMEOUT_S, timeout_s),
    )


def _lean_reply(
    litellm: Any, chat: openai_http.ChatReply, request: LLMRequest, attempts: int, latency_s: float
) -> LLMReply:
    usage = chat.usage
    input_tokens = int(usage.get("prompt_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or 0)
    return LLMReply(
        text=chat.text,
        model=request.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=0.0 if litellm is None else _cost_of_usage(litellm, request.model, usage),
        latency_s=latency_s,
        attempts=attempts,
        server_s=chat.server_s,
    )


def _call_args(request: LLMRequest) -> dict[str, Any]:
    import httpx  # litellm's own HTTP client library

    # A host that drops packets must fail in seconds, not after the whole request timeout.
    connect = min(CONNECT_TIMEOUT_S, request.timeout_s)
    timeout = httpx.Timeout(request.timeout_s, connect=connect)
    args: dict[str, Any] = {"timeout": timeout, **request.kwargs}
    args.update(model=request.model, messages=request.messages, num_retries=0, max_retries=0)
    if request.api_base:
        args["api_base"] = request.api_base
    if request.api_key:
        args["api_key"] = request.api_key
    return args


def _reply(litellm, response, request: LLMRequest, attempts: int, latency_s: float) -> LLMReply:
    usage = getattr(response, "usage", None)
    return LLMReply(
        text=response.choices[0].message.content or "",
        model=request.model,
        input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost_usd=_cost(litellm, response, request.model),
        latency_s=latency_s,
        attempts=attempts,
    )


_UNPRICED: set[str] = set()


def _cost(litellm, response, model: str) -> float:
    """Cost from litellm's bundled map; models it does not know cost 0."""
    if model in _UNPRICED:  # subtle: litellm raises (slowly) on every call for unmapped models
        return 0.0
    try:
        return float(litellm.completion_cost(completion_response=response, model=model) or 0.0)
    except Exception:
        _UNPRICED.add(model)
        return 0.0


def _cost_of_usage(litellm, model: str, usage: dict[str, Any]) -> float:
    """What litellm's `completion_cost` gives for a response with this `usage` (cached prompt
    tokens included), from its price map; models it does not know cost 0 (asked once)."""
    if model in _UNPRICED:
        return 0.0
    try:
        from litellm.types.utils import Usage as LitellmUsage

        try:
            usage_object = LitellmUsage(**usage)
        except Exception:  # a field litellm does not take: the two counts still price it
            usage_object = LitellmUsage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        prompt, completion = litellm.cost_per_token(model=model, usage_object=usage_object)
        return float(prompt + completion)
    except Exception:
        _UNPRICED.add(model)
        return 0.0


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _transient(exc: BaseException) -> bool:
    status = _status(exc)
    if status is not None and (status == 429 or status >= 500):
        return True
    name = type(exc).__name__
    return name in {
        "APIConnectionError",
        "Timeout",
        "APITimeoutError",
        "ServiceUnavailableError",
        "InternalServerError",
        "RateLimitError",
        "BadGatewayError",
        "MalformedResponseError",  # the lean path's; litellm reports it as HTTP 500
    } or isinstance(exc, (asyncio.TimeoutError, ConnectionError))


def _retry_after_s(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return min(float(value), _BACKOFF_CAP_S) if value is not None else None
    except (TypeError, ValueError):
        return None


def _backoff_s(exc: BaseException, attempt: int) -> float:
    retry_after = _retry_after_s(exc)
    if retry_after is not None:
        return retry_after
    ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


# subtle: the OpenAI SDK reports a 200 response whose body is not JSON as an HTTP 500 error
# carrying the decoder's message; these are that message's openings (json.JSONDecodeError's).
_BAD_JSON = ("Expecting value", "Expecting property name", "Unterminated string", "Extra data")


def failure_kind(exc: BaseException) -> str:
    """What failed, in words: rate limited, server error, timeout, dropped connection, bad JSON."""
    text = str(exc)
    if any(marker in text for marker in _BAD_JSON) or _caused_by(exc, json.JSONDecodeError):
        return "malformed response (not valid JSON)"
    # subtle: litellm pins synthetic statuses on failures without a response (408 on a
    # timeout, 500 on a dropped connection), so those are told apart before the status is read.
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if "Connection" in name or "Connection error" in text or isinstance(exc, ConnectionError):
        return "connection failed or dropped"
    status = _status(exc)
    if status == 429:
        return "rate limited (HTTP 429)"
    if status is not None and status >= 500:
        return f"server error (HTTP {status})"
    return f"HTTP {status}" if status else "request failed"


def _caused_by(exc: BaseException, kind: type) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):  # a short chain; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _as_llm_error(exc: BaseException, request: LLMRequest, attempts: int) -> LLMError:
    where = f" at {request.api_base}" if request.api_base else ""
    kind = failure_kind(exc)
    # No HTTP status without an HTTP error response, whatever the client library pinned on it.
    status = _status(exc) if "HTTP" in kind else None
    # A provider may echo the key it refused ("Incorrect API key provided: sk-..."): mask it,
    # and every credential of this process litellm could have sent, before the text is cut.
    text = redact(str(exc).strip(), process_secrets(request.api_key, request.kwargs))
    detail = text.splitlines()[0][:300] if text else type(exc).__name__
    tries = f"after {attempts} attempts" if attempts > 1 else "on the first attempt"
    return LLMError(
        f"model call to {request.model!r}{where} failed {tries}: {kind}: "
        f"{type(exc).__name__}: {detail}",
        model=request.model,
        api_base=request.api_base,
        status_code=status,
        attempts=attempts,
        kind=kind,
    )


async def warm_up() -> None:
    """Import litellm (in a thread) and pay its first-call costs (lazy imports, its per-call
    set-up: ~0.15 s of CPU) now, offline: one mocked call, which sends nothing. A gateway does
    it when a run begins whose models need litellm, so that neither the first turn nor the
    first fan-out pays it on every gateway at once."""
    messages = [{"role": "user", "content": "warm-up"}]
    try:
        litellm = await litellm_loaded()
        await litellm.acompletion(model="openai/warm-up", messages=messages, mock_response="ok")
    except Exception:  # only ever an optimisation: a call that needs litellm will say why
        pass
