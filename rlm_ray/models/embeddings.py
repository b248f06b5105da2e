"""Embedding calls for a cascade's proxy (docs/cascades.md, "Embeddings"): one batch of records
per call, made by a gateway like any model call (the run's model list, budgets, rate limits,
call cache, cancellation).

    request = batch_request(template, texts)   # an `LLMRequest` with `embed=True`: one
                                                # message per input (str or corpus slices)
    reply = await aembed(request)               # an `LLMReply`: tokens, cost, the vectors
    vectors, reply = split(reply)               # float32 rows, and the reply without them

An OpenAI-compatible server at an `api_base` (`openai/`, `hosted_vllm/`) is called directly
(`openai_http.embeddings`, the lean path); every other model through litellm's `aembedding`
(litellm is imported by llm.py only: this asks it for the loaded module). Retries and failure
kinds are llm.py's. The vectors travel in the reply's `text` (base64 of float32 rows), so the
call cache stores and replays them as it does a chat reply; a gateway hands them on as their
own object (`split`), so that the REPL that asked gets only the usage.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from typing import Any

import numpy as np

from rlm_ray.models import llm, model_names, openai_http
from rlm_ray.models.llm import LLMRequest
from rlm_ray.types import LLMReply

BATCH_RECORDS = 64
"""Records per embedding call: hosted APIs take up to 2,048 inputs, llama.cpp's server one
batch of tokens; 64 keeps a call small enough to retry and the calls many enough to overlap."""
INPUT_ROLE = "input"
"""The role of an embedding request's messages (never a chat role: the cache keys differ)."""


def batch_request(template: LLMRequest, inputs: list[Any]) -> LLMRequest:
    """`template` (model, address, key, timeouts, allowed models) asking for `inputs`' vectors:
    each input a str or corpus prompt parts (turned into text by the gateway)."""
    messages = [{"role": INPUT_ROLE, "content": item} for item in inputs]
    return dataclasses.replace(template, messages=messages, embed=True, kwargs={})


async def aembed(request: LLMRequest) -> LLMReply:
    """The vectors of `request`'s inputs (in its reply's `text`: `split` reads them), retried
    on transient failures as a chat call is; raises `LLMError` when retries run out."""
    lean = openai_http.is_lean(request.model, request.api_base, request.kwargs)
    litellm = None
    if not lean or not model_names.surely_unmapped(request.model):
        litellm = await llm.litellm_loaded()
    inputs = [str(m["content"]) for m in request.messages]
    started = time.monotonic()
    for attempt in range(1, request.max_retries + 2):
        try:
            vectors, usage = await _send(litellm, request, inputs, lean)
        except Exception as exc:
            # subtle: llm.py's retry policy and failure kinds, so both kinds of call count
            # attempts and name failures alike (its helpers take any request with these fields)
            if attempt > request.max_retries or not llm._transient(exc):
                raise llm._as_llm_error(exc, request, attempt) from None
            await asyncio.sleep(llm._backoff_s(exc, attempt))
            continue
        tokens = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
        return LLMReply(
            text=encode(np.asarray(vectors, dtype=np.float32)),
            model=request.model,
            input_tokens=tokens,
            cost_usd=_cost(litellm, request.model, tokens),
            latency_s=time.monotonic() - started,
            attempts=attempt,
        )
    raise AssertionError("unreachable")


async def _send(
    litellm: Any, request: LLMRequest, inputs: list[str], lean: bool
) -> tuple[list, dict[str, Any]]:
    timeout_s = request.timeout_s
    if lean:
        assert request.api_base is not None
        return await openai_http.embeddings(
            request.model,
            inputs,
            api_base=request.api_base,
            api_key=request.api_key,
            timeout_s=timeout_s,
            connect_timeout_s=min(llm.CONNECT_TIMEOUT_S, timeout_s),
        )
    args: dict[str, Any] = {"model": request.model, "input": inputs, "timeout": timeout_s}
    args.update(num_retries=0, max_retries=0)
    if request.api_base:
        args["api_base"] = request.api_base
    if request.api_key:
        args["api_key"] = request.api_key
    response = await litellm.aembedding(**args)
    rows = sorted(response.data, key=lambda row: _field(row, "index") or 0)
    usage = getattr(response, "usage", None)
    tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    return [_field(row, "embedding") for row in rows], {"prompt_tokens": tokens}


def _field(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def _cost(litellm: Any, model: str, tokens: int) -> float:
    """litellm's price of `tokens` input tokens of `model` (0 if it does not price it)."""
    if litellm is None or not tokens:
        return 0.0
    try:
        prompt, _ = litellm.cost_per_token(model=model, prompt_tokens=tokens, call_type="embedding")
        return float(prompt)
    except Exception:
        return 0.0


def encode(vectors: np.ndarray) -> str:
    """Float32 rows as text (what the call cache stores): "ROWSxCOLS:" and base64."""
    rows, cols = vectors.shape if vectors.ndim == 2 else (0, 0)
    data = base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode()
    return f"{rows}x{cols}:{data}"


def decode(text: str) -> np.ndarray:
    """`encode`'s rows back."""
    shape, _, data = text.partition(":")
    rows, cols = (int(n) for n in shape.split("x"))
    flat = np.frombuffer(base64.b64decode(data), dtype="<f4")
    return flat.reshape(rows, cols).astype(np.float32)


def split(reply: LLMReply) -> tuple[np.ndarray, LLMReply]:
    """An embedding reply's vectors, and the reply without them (its usage, for the trace)."""
    return decode(reply.text), dataclasses.replace(reply, text="")
